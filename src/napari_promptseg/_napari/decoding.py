"""Decoding in the session: prompts on the layers → masks, newest request wins.

A mixin of :class:`~napari_promptseg._qt.session.SegmentationSession`. Decoding runs on
a :class:`~napari_promptseg.core.latest.LatestOnlyRunner`; a result is shown only if it
belongs to the image, slice and model in view and to the prompts now on the layers. A
left click starts decoding at mouse press, with the point napari adds on release.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import PromptError
from ..core.latest import JobOutcome
from ..core.sam.decode import DecodeResult
from ..core.sam.prompts import NEGATIVE, Prompts
from . import layers as prompt_layers


class Decoding:
    """Request, receive and show decodes for the session."""

    def _on_prompts_changed(self, event=None) -> None:
        action = str(getattr(event, "action", "")).lower()
        if action.endswith(("adding", "removing", "changing")):
            return  # the data is not there yet; the matching *ed event follows
        self.request_decode()

    def request_decode(self) -> None:
        """Decode the prompts on the current slice (in the background; newest wins)."""
        if self._current_target() is None:
            return
        prompts = prompt_layers.read_prompts(self.viewer, self.current_slice)
        if prompts.is_empty:
            self._decoder.cancel_pending()
            self._submitted = self._early = None
            self._set_result(None)
            return
        if self.embedding is None and self.tiled is None:
            self.status.emit("prompts wait for the image embedding…")
            return
        if self._early is not None and prompts.same_as(self._early[1]):
            self._show_decoded(*self._early)  # decoded from the mouse press already
            return
        self._submit(prompts)

    def _submit(self, prompts: Prompts) -> None:
        if prompts.same_as(self._submitted):
            return  # already decoding (or decoded) exactly these prompts
        target = self._current_target()
        segmenter, embedding, tiled, multimask = (
            self.segmenter, self.embedding, self.tiled, self.multimask
        )  # fmt: skip
        self._submitted, self._early = prompts, None

        def job():
            if tiled is None:
                return target, prompts, segmenter.predict(embedding, prompts, multimask=multimask)
            needed = tiled.tiles_needed(prompts, multimask)
            if needed:  # embedding is slow: done in the embedding worker, not here
                return target, prompts, needed
            return target, prompts, tiled.predict(prompts, multimask, embed_missing=False)

        self._decoder.submit(job)

    def _on_decoded(self, outcome: JobOutcome) -> None:
        if outcome.stale or not self._decoder.is_current(outcome.ticket):
            return  # superseded, or refresh()/clear() cancelled it after it finished
        if outcome.error is not None:
            self._submitted = None
            if isinstance(outcome.error, PromptError):
                self.status.emit(f"prompt problem: {outcome.error}")
                self._set_result(None)
            else:
                self.report(f"decoding failed: {outcome.error}", outcome.error)
            return
        target, prompts, result = outcome.result
        if target != self._current_target():
            return
        if isinstance(result, list):  # tiles to embed first (large image)
            self._embed_tiles(result)
            return
        if self.embedding is None and self.tiled is None:
            return  # the image changed after this decode started
        if self.embedding is not None and result.key != self.embedding.key:
            return
        on_layers = prompt_layers.read_prompts(self.viewer, self.current_slice)
        if not prompts.same_as(on_layers):
            self._early = outcome.result  # decoded on press; the point lands on release
            return
        self._show_decoded(target, prompts, result)

    def _show_decoded(self, target, prompts: Prompts, result: DecodeResult) -> None:
        self._early = None
        self._result_target, self._result_prompts = target, prompts
        self._set_result(result)

    def _set_result(self, result: DecodeResult | None) -> None:
        self.result = result
        self.candidate = 0 if result is None else result.best
        if result is None:
            self._result_target = self._result_prompts = None
        self._show_preview()
        self.result_changed.emit()

    def select_candidate(self, index: int) -> None:
        """Show candidate mask ``index`` (one of SAM's alternatives for ambiguous prompts)."""
        if self.result is None or not 0 <= index < len(self.result.masks):
            return
        self.candidate = index
        self._show_preview()
        self.result_changed.emit()

    def next_candidate(self) -> None:
        if self.result is not None:
            self.select_candidate((self.candidate + 1) % len(self.result.masks))

    def _show_preview(self) -> None:
        preview = prompt_layers.find_layer(self.viewer, "preview")
        if self.result is None:
            if preview is not None and preview.data.any():
                preview.data[...] = 0
                preview.refresh()
            return
        if self.image_layer is None or self.current_slice is None:
            return
        if preview is None or preview.data.shape != self.result.masks.shape[1:]:
            preview = prompt_layers.ensure_preview_layer(
                self.viewer, self.image_layer, self.current_slice
            )
            self._keep_prompt_layers_on_top()
        # in place: half the cost of assigning a new array (napari re-derives less)
        preview.data[...] = self.result.masks[self.candidate]
        preview.refresh()

    def _keep_prompt_layers_on_top(self) -> None:
        for role in ("preview", "boxes", "scribbles", "points"):
            layer = prompt_layers.find_layer(self.viewer, role)
            if layer is not None:
                index = self.viewer.layers.index(layer)
                self.viewer.layers.move(index, len(self.viewer.layers))

    def _choose_label_on_click(self, layer, event):
        # Right click or Ctrl+click adds a negative prompt; otherwise the toggled label.
        negative = event.button == 2 or "Control" in event.modifiers
        label = NEGATIVE if negative else self.next_label
        prompt_layers.set_next_label(layer, label)
        if layer.metadata.get(prompt_layers.TAG) == "points" and str(layer.mode) == "add":
            self._decode_on_press(layer, event, label)
        yield

    def _decode_on_press(self, layer, event, label: int) -> None:
        """Start decoding with the point napari will add on release: saves the click's time.

        If the press turns into a drag (no point added), the early result is never shown:
        results are shown only for the prompts actually on the layers.
        """
        if self.embedding is None or self.current_slice is None:
            return
        position = np.asarray(layer.world_to_data(event.position), dtype=float)
        if not self.current_slice.on_plane(position[None])[0]:
            return
        prompts = prompt_layers.read_prompts(self.viewer, self.current_slice)
        self._submit(prompts.with_point(self.current_slice.to_plane(position[None])[0], label))
