"""Taking the user to a committed object: its slice, centred and zoomed, selected."""

from __future__ import annotations

import numpy as np


def jump_to_object(viewer, labels_layer, row: dict) -> None:
    """Show object ``row`` (a features row): move to its slice and frame its bounding box."""
    ndim = labels_layer.data.ndim
    fixed = [int(i) for i in str(row.get("slice", "")).split(",") if i != ""]
    r0, c0, r1, c1 = (float(row[k]) for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1"))
    # data position of the box centre; the plane axes are the layer's last two
    centre = np.zeros(ndim)
    centre[: len(fixed)] = fixed
    centre[-2:] = ((r0 + r1) / 2, (c0 + c1) / 2)
    world = np.asarray(labels_layer.data_to_world(centre))
    offset = viewer.dims.ndim - ndim
    if fixed:
        viewer.dims.set_point(
            [offset + axis for axis in range(len(fixed))], [world[a] for a in range(len(fixed))]
        )
    _camera(viewer).center = tuple(world[-2:])
    extent = max(r1 - r0, c1 - c0, 1.0) * float(np.max(np.abs(labels_layer.scale[-2:])))
    canvas = min(viewer._canvas_size) if hasattr(viewer, "_canvas_size") else 600
    _camera(viewer).zoom = 0.5 * canvas / extent
    labels_layer.selected_label = int(row["id"])


def _camera(viewer):
    """napari 0.9 moved the camera to ``viewer.scene.camera``; older versions have ``viewer.camera``."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
