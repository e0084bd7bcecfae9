"""The "Along" choice shared by the panels that walk a stack: the image's slider axes."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox

from ..._napari.slices import spatial_shape


def fill_axis_combo(combo: QComboBox, viewer, ref, image_layer, preferred: int | None) -> list[int]:
    """List the slider axes of ``ref`` (the plane shown) in ``combo`` as "axis N (label)".

    ``preferred`` is selected when it is among them, else the first. Returns the axes
    (layer axes; empty in 2D). The combo's signals are blocked while it is refilled.
    """
    axes = [] if ref is None else [a for a, i in enumerate(ref.index) if i is not None]
    combo.blockSignals(True)
    combo.clear()
    names = list(viewer.dims.axis_labels)
    for axis in axes:
        at = layer_to_viewer_offset(viewer, image_layer) + axis
        name = names[at] if 0 <= at < len(names) else str(axis)
        combo.addItem(f"axis {axis} ({name})", axis)
    index = combo.findData(preferred)
    combo.setCurrentIndex(index if index >= 0 else 0)
    combo.blockSignals(False)
    return axes


def layer_to_viewer_offset(viewer, image_layer) -> int:
    """Viewer dims before the layer's first axis (a layer with fewer dims than the viewer)."""
    return viewer.dims.ndim - (len(spatial_shape(image_layer)) if image_layer is not None else 0)
