"""The session: one annotation session in one viewer, made of collaborators wired by signals.

* :class:`~napari_promptseg._napari.state.SessionState` — what is in use (image, plane,
  model, embedding); plain data;
* :class:`~napari_promptseg._qt.embedding.EmbeddingController` — the plane's embedding in a
  background worker;
* :class:`~napari_promptseg._napari.decoding.DecodeController` — prompts → the mask shown,
  newest request wins, nothing stale shown;
* a :class:`~napari_promptseg._qt.workers.WorkerSlot` for model loading.

The session holds the Qt signals the dock widget and the panels listen to, writes the state,
and does what spans collaborators: choosing the image and plane, commit, clear, undo. It owns
no widgets. Layers are touched only on the main thread (worker results arrive through Qt
signals). Panels call the methods of :class:`~napari_promptseg._qt.panels.registry.SessionAPI`
and never emit the session's signals.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Signal

from .._napari import layers as prompt_layers
from .._napari import objects
from .._napari.decoding import DecodeController
from .._napari.editing import EditingPromptView, ObjectEditor
from .._napari.prompt_view import LayersPromptView, label_on_click
from .._napari.slices import SliceRef, slice_in_view, spatial_shape
from .._napari.state import SessionState, Target
from ..core.errors import PromptSegError
from ..core.models.loading import warm_up_building
from ..core.sam.decode import DecodeResult
from ..core.sam.embedding import EmbeddingCache, ImageEmbedding
from ..core.sam.engine import PromptSegmenter
from ..core.sam.prompts import NEGATIVE, POSITIVE
from ..core.workflows.tiling import TiledImage
from .embedding import EmbeddingController
from .long_lived import freeze_long_lived_objects
from .workers import WorkerSlot, let_idle_workers_exit

log = logging.getLogger(__name__)


class SegmentationSession(QObject):
    """State of one annotation session in one viewer."""

    status = Signal(str)  # a line for the user
    problem = Signal(str)  # something went wrong: shown as a napari notification too
    progress = Signal(int, int)  # embedding progress (done, total); (0, 0) when idle
    result_changed = Signal()  # a new mask, candidate or scores (or none)
    model_changed = Signal(str)
    objects_changed = Signal()  # a commit, undo or redo
    busy_changed = Signal(bool)  # an embedding or model load is running
    slice_changed = Signal()  # another image, slice or model: per-slice state is reset
    embedding_ready = Signal(object)  # the ImageEmbedding of the current slice
    _decoded = Signal(object)  # JobOutcome from the decode thread
    _download = Signal(object, object)  # bytes: vit_h is larger than a Qt int

    def __init__(self, viewer: Any, cache: EmbeddingCache | None = None) -> None:
        super().__init__()
        self.viewer = viewer
        self.cache = cache if cache is not None else EmbeddingCache()
        self.state = SessionState()
        self.decoding = DecodeController(
            self.state,
            EditingPromptView(LayersPromptView(viewer, self.state), self.state),
            post=self._decoded.emit,
            on_result=self.result_changed.emit,
            status=self.status.emit,
            problem=self.report,
            tiles_needed=self._embed_tiles,
        )
        self.editing = ObjectEditor(  # edits objects already in a labels layer (Shift+click)
            viewer,
            self.state,
            self.decoding,
            self.decoding.view,
            status=self.status.emit,
            problem=self.report,
            changed=self.objects_changed.emit,
            use_labels=self.set_labels_layer,
        )
        self.embedder = EmbeddingController(
            self.state,
            embedded=self._on_embedded,
            tiled=self._on_tiled_ready,
            tiles_embedded=self._on_tiles_embedded,
            progress=self.progress.emit,
            busy=self.busy_changed.emit,
            status=self.status.emit,
            problem=self.report,
            warm_up=self.decoding.warm_up,
            owner=self,
        )
        self._model_slot = WorkerSlot(self)
        warm_up_building()  # here, not in the loading worker: there it would freeze the GUI
        let_idle_workers_exit()  # their torch thread teams would slow decodes on this thread
        self._connected_prompt_layers: list = []
        self._on_click = label_on_click(self.state, self.decoding.decode_on_press)
        self._decoded.connect(self.decoding.on_decoded)
        self._download.connect(self._on_download_progress)
        # first: if napari's own slicing of a lazy layer fails, we still hear of the move
        viewer.dims.events.current_step.connect(self._on_view_changed, position="first")
        viewer.dims.events.ndisplay.connect(self._on_view_changed)
        viewer.layers.events.removed.connect(self._on_layer_removed)

    # -- the state, as panels and tests read it -------------------------------------------

    segmenter = property(lambda self: self.state.segmenter)
    image_layer = property(lambda self: self.state.image_layer)
    labels_layer = property(lambda self: self.state.labels_layer)
    current_slice = property(lambda self: self.state.current_slice)
    embedding = property(lambda self: self.state.embedding)
    tiled = property(lambda self: self.state.tiled)
    next_label = property(lambda self: self.state.next_label)

    @property
    def overwrite(self) -> bool:
        return self.state.overwrite

    @overwrite.setter
    def overwrite(self, on: bool) -> None:
        self.state.overwrite = bool(on)

    @property
    def multimask(self) -> bool | None:
        return self.state.multimask

    @multimask.setter
    def multimask(self, value: bool | None) -> None:
        self.state.multimask = value

    @property
    def tile_above(self) -> int:
        return self.embedder.tile_above

    @tile_above.setter
    def tile_above(self, pixels: int) -> None:
        self.embedder.tile_above = int(pixels)

    @property
    def result(self) -> DecodeResult | None:
        return self.decoding.result

    @property
    def candidate(self) -> int:
        return self.decoding.candidate

    # -- what panels may call (SessionAPI) ------------------------------------------------

    def say(self, message: str) -> None:
        """Show ``message`` in the status line."""
        self.status.emit(message)

    def report(self, message: str, error: BaseException | None = None) -> None:
        """Show ``message`` in the status line and as a napari warning (a problem)."""
        if error is not None and not isinstance(error, PromptSegError):
            log.error("promptseg: %s", message, exc_info=error)
        self.status.emit(message)
        self.problem.emit(message)

    def current_target(self) -> Target | None:
        """The image, plane and model shown now (what a result must belong to)."""
        return self.state.current_target()

    def notify_objects_changed(self) -> None:
        """The labels layer's objects changed (a panel wrote them): listeners refresh."""
        self.objects_changed.emit()

    # -- model ----------------------------------------------------------------------------

    def set_segmenter(self, segmenter: PromptSegmenter) -> None:
        """Use an engine made elsewhere (tests, scripts). Restarts the embedding."""
        segmenter.cache = self.cache
        self.state.segmenter = segmenter
        self.model_changed.emit(segmenter.name)
        self.status.emit(f"model {segmenter.name} ready")
        self.refresh()

    def load_model(
        self,
        name: str | None = None,
        *,
        checkpoint: str | Path | None = None,
        model_type: str | None = None,
        device: str | None = None,
    ) -> None:
        """Load a model in the background; the current one stays usable until it arrives."""
        from ..core.models.loading import load_model
        from ..core.workflows.instances.clicks import use_instance_clicks

        label = str(checkpoint) if checkpoint else (name or "vit_b")
        cache = self.cache

        def job() -> PromptSegmenter:
            model = load_model(
                name,
                checkpoint=checkpoint,
                model_type=model_type,
                device=device,
                progress=lambda done, total: self._download.emit(int(done), int(total or 0)),
            )
            segmenter = PromptSegmenter.from_model(model, cache=cache)  # set up off the GUI too
            use_instance_clicks(segmenter)  # the demo model: clicks select its AIS objects
            return segmenter

        self._model_slot.start(job, returned=self._on_model_loaded, errored=self._on_model_failed)
        self.status.emit(f"loading model {label}…")
        self.busy_changed.emit(True)

    def _on_model_loaded(self, segmenter: PromptSegmenter) -> None:
        self.busy_changed.emit(False)
        self.set_segmenter(segmenter)

    def _on_model_failed(self, error: BaseException) -> None:
        self.busy_changed.emit(False)
        self.report(f"cannot load the model: {error}", error)

    def _on_download_progress(self, done: int, total: int) -> None:
        if total:
            self.status.emit(f"downloading model: {done / 1e6:.0f} / {total / 1e6:.0f} MB")

    # -- image and slice ------------------------------------------------------------------

    def set_image_layer(self, layer: Any) -> None:
        """Segment ``layer`` (an Image layer); None stops."""
        if layer is not None:
            shape = spatial_shape(layer)
            if len(shape) < 2 or min(shape) == 0:
                self.set_image_layer(None)  # detach the previous image completely
                self.report(
                    f"the layer {layer.name!r} has shape {shape}: SAM needs a 2D image or a stack of them."
                )
                return
        previous = self.state.image_layer
        if previous is not None:
            for event in ("data", "contrast_limits"):
                getattr(previous.events, event).disconnect(self._on_image_changed)
        self.state.image_layer = layer
        if layer is not None:
            layer.events.data.connect(self._on_image_changed)
            layer.events.contrast_limits.connect(self._on_image_changed)
            self.ensure_prompt_layers()
        self.refresh()
        if layer is not None and self.state.current_slice is not None:
            # made now, not by the first mask: adding a Labels layer costs napari ~0.5 s, which
            # the first click would otherwise wait for
            prompt_layers.ensure_preview_layer(self.viewer, layer, self.state.current_slice)
            prompt_layers.keep_prompt_layers_on_top(self.viewer)

    def ensure_prompt_layers(self) -> None:
        """Create the prompt layers if missing and listen to them."""
        image = self.state.image_layer
        if image is None:
            return
        keep_selected = self.viewer.layers.selection.active
        created = [
            prompt_layers.ensure_boxes_layer(self.viewer, image),
            prompt_layers.ensure_scribbles_layer(self.viewer, image),
            prompt_layers.ensure_points_layer(self.viewer, image),
        ]
        for layer in created:
            if layer not in self._connected_prompt_layers:
                layer.events.data.connect(self.decoding.on_prompts_changed)
                layer.mouse_drag_callbacks.insert(0, self._on_click)
                self._connected_prompt_layers.append(layer)
        prompt_layers.set_next_label(created[0], POSITIVE)
        for layer in created[1:]:
            prompt_layers.set_next_label(layer, self.state.next_label)
        if keep_selected is None or keep_selected.metadata.get(prompt_layers.TAG) is None:
            self.viewer.layers.selection.active = created[-1]  # points, in add mode

    def toggle_next_label(self) -> int:
        """Flip positive/negative for the next points and scribbles (key N)."""
        label = NEGATIVE if self.state.next_label == POSITIVE else POSITIVE
        self.state.next_label = label
        for role in ("points", "scribbles"):
            layer = prompt_layers.find_layer(self.viewer, role)
            if layer is not None:
                prompt_layers.set_next_label(layer, label)
        self.status.emit(f"next prompts are {'negative' if label == NEGATIVE else 'positive'}")
        return label

    def request_decode(self) -> None:
        """Decode the prompts on the plane in view (in the background; newest wins)."""
        self.decoding.request()

    def select_candidate(self, index: int) -> None:
        self.decoding.select_candidate(index)

    def next_candidate(self) -> None:
        self.decoding.next_candidate()

    def _on_image_changed(self, event: Any = None) -> None:
        self.refresh()

    def _on_view_changed(self, event: Any = None) -> None:
        if self.state.image_layer is None:
            return
        try:
            ref: SliceRef | None = slice_in_view(self.viewer, self.state.image_layer)
        except PromptSegError:
            ref = None
        if ref != self.state.current_slice:
            self.refresh()

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        if layer is self.state.image_layer:
            self.state.image_layer = None
            self.refresh()
            self.status.emit(f"the image layer {layer.name!r} was removed; choose another image")
        elif layer is self.state.labels_layer:
            self.state.labels_layer = None
            self.status.emit(
                f"the labels layer {layer.name!r} was removed; the next commit makes a new one"
            )
        elif layer in self._connected_prompt_layers:
            self._connected_prompt_layers.remove(layer)
            if layer.metadata.get(prompt_layers.TAG) == "preview":
                return
            self.decoding.request()

    def refresh(self) -> None:
        """The image, slice or model changed: drop what belongs to the old one, embed the new."""
        state = self.state
        self.embedder.cancel()
        state.embedding = state.tiled = None
        self.decoding.reset()
        state.current_slice = None
        if state.image_layer is None:
            self.progress.emit(0, 0)
            return
        try:
            state.current_slice = slice_in_view(self.viewer, state.image_layer)
        except PromptSegError as error:
            self.status.emit(str(error))
            return
        self.slice_changed.emit()
        if state.segmenter is None:
            self.status.emit("choose a model to start")
            return
        self.embedder.start()

    # -- embeddings arriving --------------------------------------------------------------

    def _on_embedded(self, target: Target, embedding: ImageEmbedding) -> None:
        if target != self.state.current_target():
            return  # belongs to an image, slice or model no longer selected
        self.state.embedding = embedding
        freeze_long_lived_objects()  # napari, Qt, torch and the model: no full GC in a click
        self.progress.emit(0, 0)
        self.embedding_ready.emit(embedding)
        self.status.emit(f"ready: {self.state.describe_image()}")
        self.decoding.request()  # prompts placed while embedding decode now

    def _on_tiled_ready(self, target: Target, tiled: TiledImage) -> None:
        if target != self.state.current_target():
            return
        self.state.tiled = tiled
        self.progress.emit(0, 0)
        rows, cols = tiled.rgb.shape[:2]
        self.status.emit(
            f"large image ({rows}x{cols}): {len(tiled.grid)} tiles of {tiled.grid.tile} px, "
            "each embedded when a prompt needs it"
        )
        self.decoding.request()

    def _embed_tiles(self, tiles: list) -> None:
        self.embedder.embed_tiles(tiles)

    def _on_tiles_embedded(self, target: Target, tiled: TiledImage) -> None:
        if self.state.current_target() == target and self.state.tiled is tiled:
            self.decoding.retry()

    # -- commit, clear, undo --------------------------------------------------------------

    def commit(self) -> dict | None:
        """Write the shown mask into the labels layer as a new object. Returns its row."""
        if self.editing.active:  # an object picked for editing: replace it in place
            return self.editing.commit()
        state, decoding = self.state, self.decoding
        result, index = decoding.result, decoding.candidate
        if result is None or decoding.result_target is None or state.segmenter is None:
            self.report("nothing to commit: place a prompt and wait for the mask.")
            return None
        stale_pixels = state.embedding is not None and result.key != state.embedding.key
        if decoding.result_target != state.current_target() or stale_pixels:
            self.report(
                "the mask belongs to another image, slice or model; place the prompts again."
            )
            return None
        labels = self.ensure_labels_layer()
        if labels is None or state.current_slice is None:
            return None
        prompts = decoding.result_prompts
        try:
            row = objects.commit_mask(
                labels,
                state.current_slice,
                result.masks[index],
                overwrite=state.overwrite,
                predicted_iou=float(result.iou[index]),
                stability=float(result.stability[index]),
                prompts=prompts.summary() if prompts is not None else "",
                candidate=index,
                model=state.segmenter.name,
                class_name=state.object_class,
            )
        except objects.LabelsError as error:
            self.report(str(error))
            return None
        self.clear()
        self.objects_changed.emit()
        self.status.emit(
            f"committed object {row['id']} ({self.score_name()} {row['predicted_iou']:.2f}, {row['area']} px)"
        )
        return row

    def ensure_labels_layer(self) -> Any:
        """The labels layer commits go to (a new one if none); None if it does not fit the image."""
        state = self.state
        shape = spatial_shape(state.image_layer)
        if state.labels_layer is not None and state.labels_layer not in self.viewer.layers:
            state.labels_layer = None
        if state.labels_layer is None:
            state.labels_layer = prompt_layers.new_labels_layer(self.viewer, state.image_layer)
            prompt_layers.keep_prompt_layers_on_top(self.viewer)
            self._bind_labels_undo(state.labels_layer)
        labels = state.labels_layer
        if tuple(labels.data.shape) != shape:
            self.report(
                f"the labels layer {labels.name!r} has shape {labels.data.shape}, "
                f"the image {shape}: choose a matching labels layer or 'new labels layer'."
            )
            return None
        return labels

    def set_labels_layer(self, layer: Any) -> None:
        """Commit into ``layer`` (an existing Labels layer) or, with None, into a new one."""
        self.state.labels_layer = layer
        if layer is not None:
            self._bind_labels_undo(layer)

    def _bind_labels_undo(self, layer: Any) -> None:
        # napari's own Ctrl+Z on this layer would leave the features table behind
        layer.bind_key("Control-z", lambda _layer: self.undo(), overwrite=True)
        layer.bind_key("Control-Shift-z", lambda _layer: self.redo(), overwrite=True)

    def clear(self) -> None:
        """Drop the prompts and the preview on the current slice (and an edit: nothing written)."""
        if self.editing.active:
            self.editing.end(f"edit of {self.editing.edit.describe()} cancelled: nothing written")
        self.decoding.cancel_pending()
        prompt_layers.clear_prompts(self.viewer, self.state.current_slice)
        self.decoding.set_result(None)

    def undo(self) -> None:
        """Undo the last change of the labels layer (a commit is one step)."""
        if self.state.labels_layer is None:
            self.status.emit("nothing to undo")
            return
        objects.undo(self.state.labels_layer)
        self.objects_changed.emit()

    def redo(self) -> None:
        if self.state.labels_layer is not None:
            objects.redo(self.state.labels_layer)
            self.objects_changed.emit()

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop threads and disconnect from the viewer (the widget is closing)."""
        self.embedder.cancel()
        self._model_slot.cancel()
        # The embedding job stops at its next encoder block or warm-up decode: wait for it,
        # so no torch work of a closed viewer runs on in this process (a crash once in CI).
        if not self.embedder.wait_idle(10.0):
            log.warning("the embedding worker did not stop within 10 s of closing")
        self.decoding.close()
        self.editing.close()
        for layer in self._connected_prompt_layers:
            layer.events.data.disconnect(self.decoding.on_prompts_changed)
            if self._on_click in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.remove(self._on_click)
        self._connected_prompt_layers.clear()
        self.viewer.dims.events.current_step.disconnect(self._on_view_changed)
        self.viewer.dims.events.ndisplay.disconnect(self._on_view_changed)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)

    def score_name(self) -> str:
        """What a mask's score is: SAM's predicted IoU, or the decoder's own (the demo's
        mean foreground)."""
        decoder = getattr(self.segmenter, "decoder", None)
        return getattr(decoder, "score_name", "predicted IoU")
