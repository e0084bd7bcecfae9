"""npe2 writer: a Labels layer → an OME-Zarr label image plus its objects table as CSV.

``File > Save Selected Layer(s)`` with a ``.zarr`` name (e.g. ``cells.ome.zarr``) writes the
labels as NGFF 0.5 on zarr v3 (uint16 when the ids fit, else uint32; axes y x / z y x /
t z y x) and ``cells_objects.csv`` beside it (one row per object present in the image, from
the layer's features), both atomically. See core.storage.ome_zarr.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._writer import _feature_rows
from .core.storage.ome_zarr import write_labels_ome_zarr


def write_labels_ome_zarr_layer(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer as OME-Zarr; returns the paths written (napari shows them)."""
    labels = np.asarray(data)
    rows = _feature_rows(meta.get("features"))
    if rows:
        present = set(np.unique(labels).tolist())
        rows = [row for row in rows if int(row.get("id", row.get("index", 0))) in present]
    written, table = write_labels_ome_zarr(
        path, labels, rows if rows else None, name=meta.get("name") or None
    )
    return [str(written)] + ([str(table)] if table is not None else [])
