"""The napari layers the plugin creates: prompts, preview and output labels.

Layers are found again by a tag in ``layer.metadata`` (users may rename them) and are
created with the image layer's transform, so their data coordinates are the image's.

* points (``promptseg points``): left click = positive (green), right click or
  Ctrl+click = negative (red); key N flips the label of the next clicks.
* boxes (``promptseg boxes``): rectangles; the newest one on the slice is the box prompt.
* scribbles (``promptseg scribbles``): freehand paths, positive or negative like points.
* preview (``promptseg preview``): the current mask, translucent, 2D.
* objects: the output Labels layer.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..core.sam.prompts import NEGATIVE, POSITIVE, Prompts, Scribble
from .slices import SliceRef, spatial_shape

TAG = "promptseg"
POSITIVE_COLOR = "#39ff14"
NEGATIVE_COLOR = "#ff2d2d"
PREVIEW_COLOR = "#ffd400"
LABEL_NAMES = {POSITIVE: "positive", NEGATIVE: "negative"}


@contextmanager
def keeping_selection(viewer):
    """Adding a layer selects it; keep the user's active layer (e.g. points in add mode)."""
    active = viewer.layers.selection.active
    try:
        yield
    finally:
        if active is not None and active in viewer.layers:
            viewer.layers.selection.active = active


def find_layer(viewer, role: str):
    """The layer tagged with ``role`` (points, boxes, scribbles, preview), if any."""
    for layer in viewer.layers:
        if layer.metadata.get(TAG) == role:
            return layer
    return None


def _transform_of(image_layer) -> dict:
    return {
        "scale": image_layer.scale,
        "translate": image_layer.translate,
        "rotate": image_layer.rotate,
        "shear": image_layer.shear,
        "affine": image_layer.affine,
    }


def ensure_points_layer(viewer, image_layer):
    layer = find_layer(viewer, "points")
    if layer is not None and layer.ndim == len(spatial_shape(image_layer)):
        return layer
    if layer is not None:  # made for an image of other dimensionality
        viewer.layers.remove(layer)
    ndim = len(spatial_shape(image_layer))
    layer = viewer.add_points(
        np.empty((0, ndim)),
        name="promptseg points",
        ndim=ndim,
        features={"label": np.empty(0, dtype=object)},
        feature_defaults={"label": LABEL_NAMES[POSITIVE]},
        face_color=POSITIVE_COLOR,
        border_color="white",
        border_width=0.15,
        size=max(6.0, min(spatial_shape(image_layer)[-2:]) / 60),
        metadata={TAG: "points"},
        **_transform_of(image_layer),
    )
    layer.mode = "add"
    return layer


def _ensure_shapes_layer(viewer, image_layer, role: str, name: str, color: str):
    layer = find_layer(viewer, role)
    ndim = len(spatial_shape(image_layer))
    if layer is not None and layer.ndim == ndim:
        return layer
    if layer is not None:
        viewer.layers.remove(layer)
    return viewer.add_shapes(
        ndim=ndim,
        name=name,
        features={"label": np.empty(0, dtype=object)},
        feature_defaults={"label": LABEL_NAMES[POSITIVE]},
        edge_color=color,
        face_color="transparent",
        edge_width=max(1.5, min(spatial_shape(image_layer)[-2:]) / 250),
        metadata={TAG: role},
        **_transform_of(image_layer),
    )


def ensure_boxes_layer(viewer, image_layer):
    return _ensure_shapes_layer(viewer, image_layer, "boxes", "promptseg boxes", "#00e5ff")


def ensure_scribbles_layer(viewer, image_layer):
    return _ensure_shapes_layer(
        viewer, image_layer, "scribbles", "promptseg scribbles", POSITIVE_COLOR
    )


def set_next_label(layer, label: int) -> None:
    """Make the next point or scribble added to ``layer`` positive or negative."""
    color = POSITIVE_COLOR if label == POSITIVE else NEGATIVE_COLOR
    defaults = layer.feature_defaults
    defaults["label"] = LABEL_NAMES[label]
    layer.feature_defaults = defaults
    if layer.metadata.get(TAG) == "points":
        layer.current_face_color = color
    else:
        layer.current_edge_color = color


def _labels_of(layer) -> np.ndarray:
    if "label" not in layer.features or len(layer.features) == 0:
        return np.full(len(layer.data), POSITIVE)
    names = layer.features["label"].astype(str).to_numpy()
    return np.where(names == LABEL_NAMES[NEGATIVE], NEGATIVE, POSITIVE)


def read_prompts(viewer, ref: SliceRef) -> Prompts:
    """All prompts on the plane ``ref``, in its (row, col) frame."""
    points_rc, labels = np.zeros((0, 2)), np.zeros(0, dtype=int)
    points = find_layer(viewer, "points")
    if points is not None and len(points.data):
        keep = ref.on_plane(points.data)
        points_rc = ref.to_plane(points.data[keep])
        labels = _labels_of(points)[keep]

    box = None
    boxes = find_layer(viewer, "boxes")
    if boxes is not None:
        for shape, kind in zip(reversed(boxes.data), reversed(boxes.shape_type), strict=True):
            if kind == "rectangle" and ref.on_plane(shape).all():
                corners = ref.to_plane(shape)
                box = (*corners.min(axis=0), *corners.max(axis=0))
                break

    scribbles = []
    strokes = find_layer(viewer, "scribbles")
    if strokes is not None and len(strokes.data):
        stroke_labels = _labels_of(strokes)
        for shape, label in zip(strokes.data, stroke_labels, strict=True):
            if ref.on_plane(shape).all():
                scribbles.append(Scribble(ref.to_plane(shape), positive=bool(label == POSITIVE)))
    return Prompts(points=points_rc, labels=labels, box=box, scribbles=tuple(scribbles))


def clear_prompts(viewer, ref: SliceRef | None) -> None:
    """Remove the prompts on plane ``ref`` (all prompts if None)."""
    points = find_layer(viewer, "points")
    if points is not None and len(points.data):
        keep = ~ref.on_plane(points.data) if ref is not None else np.zeros(len(points.data), bool)
        if not keep.all():
            points.selected_data = set(np.flatnonzero(~keep).tolist())
            points.remove_selected()
    for role in ("boxes", "scribbles"):
        shapes = find_layer(viewer, role)
        if shapes is None or not len(shapes.data):
            continue
        doomed = [i for i, s in enumerate(shapes.data) if ref is None or ref.on_plane(s).all()]
        if doomed:
            shapes.selected_data = set(doomed)
            shapes.remove_selected()


def ensure_preview_layer(viewer, image_layer, ref: SliceRef):
    """A 2D translucent Labels layer over the displayed plane of ``image_layer``."""
    from napari.utils.colormaps import DirectLabelColormap

    shape = spatial_shape(image_layer)
    plane_shape = (shape[ref.displayed[0]], shape[ref.displayed[1]])
    layer = find_layer(viewer, "preview")
    if layer is not None and layer.data.shape == plane_shape:
        return layer
    if layer is not None:
        viewer.layers.remove(layer)
    axes = list(ref.displayed)
    with keeping_selection(viewer):
        layer = viewer.add_labels(
            np.zeros(plane_shape, dtype=np.uint8),
            name="promptseg preview",
            opacity=0.55,
            scale=np.asarray(image_layer.scale)[axes],
            translate=np.asarray(image_layer.translate)[axes],
            colormap=DirectLabelColormap(
                color_dict={None: "transparent", 0: "transparent", 1: PREVIEW_COLOR}
            ),
            metadata={TAG: "preview"},
        )
    return layer


def new_labels_layer(viewer, image_layer):
    """An empty uint32 Labels layer the shape of ``image_layer``, for committed objects."""
    with keeping_selection(viewer):
        return viewer.add_labels(
            np.zeros(spatial_shape(image_layer), dtype=np.uint32),
            name=f"{image_layer.name} objects",
            metadata={TAG: "objects"},
            **_transform_of(image_layer),
        )


def keep_prompt_layers_on_top(viewer) -> None:
    """Move the preview and the prompt layers above every other layer (in that order)."""
    for role in ("preview", "boxes", "scribbles", "points"):
        layer = find_layer(viewer, role)
        if layer is not None:
            index = viewer.layers.index(layer)
            viewer.layers.move(index, len(viewer.layers))
