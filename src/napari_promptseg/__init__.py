"""napari-promptseg: interactive prompted segmentation with Segment Anything in napari.

The engine lives in :mod:`napari_promptseg.core` and needs neither Qt nor napari.
Importing this package stays cheap (no torch, no napari) so napari starts fast.
"""

__version__ = "0.1.0"
