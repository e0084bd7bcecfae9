"""The decode controller's window on napari: prompts from the prompt layers, the mask in the
preview layer, and the mouse press that starts a decode before napari adds the point."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from ..core.sam.prompts import NEGATIVE, Prompts
from . import layers as prompt_layers
from .slices import SliceRef
from .state import SessionState


class LayersPromptView:
    """:class:`~.decoding.PromptView` on a viewer's prompt layers and preview layer."""

    def __init__(self, viewer: Any, state: SessionState) -> None:
        self.viewer = viewer
        self.state = state

    def read_prompts(self, ref: SliceRef) -> Prompts:
        return prompt_layers.read_prompts(self.viewer, ref)

    def show_mask(self, mask: np.ndarray | None) -> None:
        preview = prompt_layers.find_layer(self.viewer, "preview")
        if mask is None:
            if preview is not None and preview.data.any():
                preview.data[...] = 0
                preview.refresh()
            return
        state = self.state
        if state.image_layer is None or state.current_slice is None:
            return
        if preview is None or preview.data.shape != mask.shape:
            preview = prompt_layers.ensure_preview_layer(
                self.viewer, state.image_layer, state.current_slice
            )
            prompt_layers.keep_prompt_layers_on_top(self.viewer)
        # in place: half the cost of assigning a new array (napari re-derives less)
        preview.data[...] = mask
        preview.refresh()


def label_on_click(
    state: SessionState, on_point_press: Callable[[np.ndarray, int], None]
) -> Callable[[Any, Any], Generator[None, None, None]]:
    """A mouse-drag callback for the prompt layers choosing the label of what the click adds.

    Right click or Ctrl+click adds a negative prompt; otherwise ``state.next_label``. A press
    in add mode on the points layer calls ``on_point_press(data position, label)`` at once.
    """

    def callback(layer: Any, event: Any) -> Generator[None, None, None]:
        negative = event.button == 2 or "Control" in event.modifiers
        label = NEGATIVE if negative else state.next_label
        prompt_layers.set_next_label(layer, label)
        if layer.metadata.get(prompt_layers.TAG) == "points" and str(layer.mode) == "add":
            on_point_press(np.asarray(layer.world_to_data(event.position), dtype=float), label)
        yield

    return callback
