"""Which object a click picks, in which labels layer, and the click that picks it.

A pick looks at the visible labels layers (not our preview): the session's labels layer
first, then the others from the top of the layer list, and takes the first with an object
under the cursor on the plane in view. The click position is mapped into each layer's data
with that layer's own scale and translate. Only a labels layer the size of the image (pixel
for pixel, as commits are) with integer labels can be edited.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

import numpy as np

from ..core.editing import EditError, object_at
from . import layers as prompt_layers
from .objects import plane_of
from .slices import SliceRef, spatial_shape
from .state import SessionState

PICK_MODIFIER = "Shift"
DRAG_PIXELS = 5  # a press that moves further (canvas pixels) is a drag (pan), not a pick


class Picker(Protocol):
    armed: bool  # the next plain click picks (key K)

    def pick_at(self, position: np.ndarray) -> bool: ...


def labels_layers(viewer: Any, preferred: Any = None) -> list:
    """Visible labels layers, ``preferred`` first, then from the top of the layer list."""
    from napari.layers import Labels

    found = [
        layer
        for layer in reversed(viewer.layers)
        if isinstance(layer, Labels)
        and layer.visible
        and layer.metadata.get(prompt_layers.TAG) != "preview"
    ]
    if preferred in found:
        found.remove(preferred)
        found.insert(0, preferred)
    return found


def layer_problem(layer: Any, image: Any, ref: SliceRef | None) -> str | None:
    """Why objects of labels ``layer`` cannot be edited against ``image``; None if they can."""
    if image is None or ref is None:
        return "choose an image layer and a 2D view to edit objects."
    if getattr(layer, "multiscale", False):
        return f"{layer.name!r} is multiscale: edit a single-resolution labels layer."
    if not np.issubdtype(np.dtype(layer.data.dtype), np.integer):
        return f"{layer.name!r} has dtype {layer.data.dtype}: labels must be integers."
    shape, image_shape = tuple(layer.data.shape), spatial_shape(image)
    if shape != image_shape:
        return (
            f"the labels layer {layer.name!r} has shape {shape}, the image {image_shape}: only "
            "a labels layer the size of the image can be edited."
        )
    return None


def object_under(viewer: Any, position: np.ndarray, state: SessionState) -> tuple[Any, int]:
    """(labels layer, object id) under world ``position`` on the plane in view.

    Raises
    ------
    EditError
        No image or plane, no labels layer, or no object there (the first layer's reason:
        background, another shape, another plane).
    """
    ref, image = state.current_slice, state.image_layer
    if image is None or ref is None:
        raise EditError("choose an image layer and a 2D view to edit objects.")
    layers = labels_layers(viewer, state.labels_layer)
    if not layers:
        raise EditError("no labels layer to edit: open one, or commit objects first.")
    position = np.asarray(position, dtype=float)
    reasons = []
    for layer in layers:
        problem = layer_problem(layer, image, ref)
        coords = np.asarray(layer.world_to_data(position), dtype=float)[None]
        if problem is None and not ref.on_plane(coords)[0]:
            problem = f"{layer.name!r} shows another plane than the image here."
        if problem is not None:
            reasons.append(problem)
            continue
        row, col = ref.to_plane(coords)[0]
        try:
            return layer, object_at(plane_of(layer, ref), row, col, layer_name=layer.name)
        except EditError as error:
            reasons.append(str(error))
    raise EditError(reasons[0])


def pick_on_click(picker: Picker) -> Callable[[Any, Any], Generator[None, None, None]]:
    """A viewer mouse-drag callback: Shift+click (or a click while K is armed) picks.

    napari runs the viewer's callbacks before the active layer's: for a pick this one puts
    that layer in pan/zoom mode until the release, so the click adds no point, shape or
    paint stroke. A press that turns into a drag pans and picks nothing.
    """

    def callback(viewer: Any, event: Any) -> Generator[None, None, None]:
        if event.button != 1 or not (PICK_MODIFIER in event.modifiers or picker.armed):
            return
        layer = viewer.layers.selection.active
        mode = getattr(layer, "mode", None)
        switched = mode is not None and str(mode) != "pan_zoom"
        if switched:
            layer.mode = "pan_zoom"
        start, position = np.asarray(event.pos, dtype=float), np.asarray(event.position)
        yield
        while event.type == "mouse_move":
            yield
        if switched and layer in viewer.layers:
            layer.mode = mode
        if np.linalg.norm(np.asarray(event.pos, dtype=float) - start) <= DRAG_PIXELS:
            picker.pick_at(position)

    return callback
