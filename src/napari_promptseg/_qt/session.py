"""The controller between napari layers and the engine.

It owns no widgets: the dock widget shows its state and calls its methods; tests and the
benchmark drive it directly. Threads:

* model loading and image embedding run in napari workers (the GUI never waits for them);
  each job carries the identity of what it was started for, and a result that no longer
  matches the selected image, slice or model is dropped;
* decoding runs on a :class:`~napari_promptseg.core.latest.LatestOnlyRunner`: the newest
  prompt state wins and stale results are dropped;
* layers are touched only on the main thread (worker results arrive through Qt signals).
"""

from __future__ import annotations

import logging

from qtpy.QtCore import QObject, Signal

from .._napari import layers as prompt_layers
from .._napari import objects
from .._napari.decoding import Decoding
from .._napari.slices import SliceRef, slice_in_view, spatial_shape
from ..core.errors import PromptSegError
from ..core.latest import LatestOnlyRunner
from ..core.sam.decode import DecodeResult
from ..core.sam.embedding import EmbeddingCache, ImageEmbedding
from ..core.sam.engine import PromptSegmenter
from ..core.sam.prompts import NEGATIVE, POSITIVE, Prompts
from ..core.workflows.tiling.tiled_image import TiledImage
from .embedding import TILE_ABOVE, EmbeddingJobs, Target

log = logging.getLogger(__name__)


class SegmentationSession(EmbeddingJobs, Decoding, QObject):
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

    def __init__(self, viewer, cache: EmbeddingCache | None = None) -> None:
        super().__init__()
        self.viewer = viewer
        self.cache = cache if cache is not None else EmbeddingCache()
        self.segmenter: PromptSegmenter | None = None
        self.image_layer = None
        self.labels_layer = None
        self.overwrite = False
        self.multimask: bool | None = None  # None: SAM's advice (3 masks for a lone point)
        self.next_label = POSITIVE
        self.result: DecodeResult | None = None
        self.candidate = 0
        self.embedding: ImageEmbedding | None = None
        self.current_slice: SliceRef | None = None  # the plane shown, None if none
        self._result_target: Target | None = None
        self._result_prompts: Prompts | None = None
        self._submitted: Prompts | None = None  # the prompts last sent to the decoder
        self._early: tuple | None = None  # a result decoded before its point landed
        self._embed_worker = None
        self.tiled: TiledImage | None = None  # set instead of embedding for large planes
        self.tile_above = TILE_ABOVE
        self._model_worker = None
        self._connected_prompt_layers: list = []
        self._decoder = LatestOnlyRunner(self._decoded.emit, name="promptseg-decode")
        self._decoded.connect(self._on_decoded)
        self._download.connect(self._on_download_progress)
        # first: if napari's own slicing of a lazy layer fails, we still hear of the move
        viewer.dims.events.current_step.connect(self._on_view_changed, position="first")
        viewer.dims.events.ndisplay.connect(self._on_view_changed)
        viewer.layers.events.removed.connect(self._on_layer_removed)

    # -- model ----------------------------------------------------------------------------

    def set_segmenter(self, segmenter: PromptSegmenter) -> None:
        """Use an engine made elsewhere (tests, scripts). Restarts the embedding."""
        segmenter.cache = self.cache
        self.segmenter = segmenter
        self.model_changed.emit(segmenter.name)
        self.status.emit(f"model {segmenter.name} ready")
        self.refresh()

    def load_model(self, name=None, *, checkpoint=None, model_type=None, device=None) -> None:
        """Load a model in the background; the current one stays usable until it arrives."""
        from napari.qt.threading import create_worker

        from ..core.models.loading import load_model

        if self._model_worker is not None:
            self._model_worker.quit()
        label = str(checkpoint) if checkpoint else (name or "vit_b")
        self.status.emit(f"loading model {label}…")
        self.busy_changed.emit(True)

        cache = self.cache

        def job():
            model = load_model(
                name,
                checkpoint=checkpoint,
                model_type=model_type,
                device=device,
                progress=lambda done, total: self._download.emit(int(done), int(total or 0)),
            )
            return PromptSegmenter.from_model(model, cache=cache)  # its set-up off the GUI too

        worker = create_worker(
            job,
            _ignore_errors=True,  # no napari activity item: see _napari/workers.py
        )
        worker.returned.connect(lambda segmenter: self._on_model_loaded(worker, segmenter))
        worker.errored.connect(lambda error: self._on_model_failed(worker, error))
        self._model_worker = worker
        worker.start()

    def _on_model_loaded(self, worker, segmenter: PromptSegmenter) -> None:
        if worker is not self._model_worker:
            return  # a newer request replaced this one
        self._model_worker = None
        self.busy_changed.emit(False)
        self.set_segmenter(segmenter)

    def _on_model_failed(self, worker, error: BaseException) -> None:
        if worker is not self._model_worker:
            return
        self._model_worker = None
        self.busy_changed.emit(False)
        self.report(f"cannot load the model: {error}", error)

    def _on_download_progress(self, done: int, total: int) -> None:
        if total:
            self.status.emit(f"downloading model: {done / 1e6:.0f} / {total / 1e6:.0f} MB")

    # -- image and slice --------------------------------------------------------------------

    def set_image_layer(self, layer) -> None:
        """Segment ``layer`` (an Image layer); None stops."""
        if layer is not None:
            shape = spatial_shape(layer)
            if len(shape) < 2 or min(shape) == 0:
                self.set_image_layer(None)  # detach the previous image completely
                self.report(
                    f"the layer {layer.name!r} has shape {shape}: SAM needs a 2D image or a stack of them."
                )
                return
        if self.image_layer is not None:
            for event in ("data", "contrast_limits"):
                getattr(self.image_layer.events, event).disconnect(self._on_image_changed)
        self.image_layer = layer
        if layer is not None:
            layer.events.data.connect(self._on_image_changed)
            layer.events.contrast_limits.connect(self._on_image_changed)
            self.ensure_prompt_layers()
        self.refresh()

    def ensure_prompt_layers(self) -> None:
        """Create the prompt layers if missing and listen to them."""
        if self.image_layer is None:
            return
        keep_selected = self.viewer.layers.selection.active
        created = [
            prompt_layers.ensure_boxes_layer(self.viewer, self.image_layer),
            prompt_layers.ensure_scribbles_layer(self.viewer, self.image_layer),
            prompt_layers.ensure_points_layer(self.viewer, self.image_layer),
        ]
        for layer in created:
            if layer not in self._connected_prompt_layers:
                layer.events.data.connect(self._on_prompts_changed)
                layer.mouse_drag_callbacks.insert(0, self._choose_label_on_click)
                self._connected_prompt_layers.append(layer)
        prompt_layers.set_next_label(created[0], POSITIVE)
        for layer in created[1:]:
            prompt_layers.set_next_label(layer, self.next_label)
        if keep_selected is None or keep_selected.metadata.get(prompt_layers.TAG) is None:
            self.viewer.layers.selection.active = created[-1]  # points, in add mode

    def toggle_next_label(self) -> int:
        """Flip positive/negative for the next points and scribbles (key N)."""
        self.next_label = NEGATIVE if self.next_label == POSITIVE else POSITIVE
        for role in ("points", "scribbles"):
            layer = prompt_layers.find_layer(self.viewer, role)
            if layer is not None:
                prompt_layers.set_next_label(layer, self.next_label)
        self.status.emit(
            f"next prompts are {'negative' if self.next_label == NEGATIVE else 'positive'}"
        )
        return self.next_label

    def _on_image_changed(self, event=None) -> None:
        self.refresh()

    def _on_view_changed(self, event=None) -> None:
        if self.image_layer is None:
            return
        try:
            ref = slice_in_view(self.viewer, self.image_layer)
        except PromptSegError:
            ref = None
        if ref != self.current_slice:
            self.refresh()

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if layer is self.image_layer:
            self.image_layer = None
            self.refresh()
            self.status.emit(f"the image layer {layer.name!r} was removed; choose another image")
        elif layer is self.labels_layer:
            self.labels_layer = None
            self.status.emit(
                f"the labels layer {layer.name!r} was removed; the next commit makes a new one"
            )
        elif layer in self._connected_prompt_layers:
            self._connected_prompt_layers.remove(layer)
            if layer.metadata.get(prompt_layers.TAG) == "preview":
                return
            self.request_decode()

    def refresh(self) -> None:
        """The image, slice or model changed: drop what belongs to the old one, embed the new."""
        self._cancel_embedding()
        self._decoder.cancel_pending()
        self._submitted = self._early = None
        self.embedding = None
        self.tiled = None
        self._set_result(None)
        self.current_slice = None
        if self.image_layer is None:
            self.progress.emit(0, 0)
            return
        try:
            self.current_slice = slice_in_view(self.viewer, self.image_layer)
        except PromptSegError as error:
            self.status.emit(str(error))
            return
        self.slice_changed.emit()
        if self.segmenter is None:
            self.status.emit("choose a model to start")
            return
        self._start_embedding()

    # -- commit, clear, undo --------------------------------------------------------------

    def commit(self) -> dict | None:
        """Write the shown mask into the labels layer as a new object. Returns its row."""
        if self.result is None or self._result_target is None:
            self.report("nothing to commit: place a prompt and wait for the mask.")
            return None
        stale_pixels = self.embedding is not None and self.result.key != self.embedding.key
        if self._result_target != self._current_target() or stale_pixels:
            self.report(
                "the mask belongs to another image, slice or model; place the prompts again."
            )
            return None
        labels = self.ensure_labels_layer()
        if labels is None:
            return None
        result, index = self.result, self.candidate
        try:
            row = objects.commit_mask(
                labels,
                self.current_slice,
                result.masks[index],
                overwrite=self.overwrite,
                predicted_iou=float(result.iou[index]),
                stability=float(result.stability[index]),
                prompts=self._result_prompts.summary() if self._result_prompts else "",
                candidate=index,
                model=self.segmenter.name,
            )
        except objects.LabelsError as error:
            self.report(str(error))
            return None
        self.clear()
        self.objects_changed.emit()
        self.status.emit(
            f"committed object {row['id']} (predicted IoU {row['predicted_iou']:.2f}, {row['area']} px)"
        )
        return row

    def ensure_labels_layer(self):
        """The labels layer commits go to (a new one if none); None if it does not fit the image."""
        shape = spatial_shape(self.image_layer)
        if self.labels_layer is not None and self.labels_layer not in self.viewer.layers:
            self.labels_layer = None
        if self.labels_layer is None:
            self.labels_layer = prompt_layers.new_labels_layer(self.viewer, self.image_layer)
            self._keep_prompt_layers_on_top()
            self._bind_labels_undo(self.labels_layer)
        if tuple(self.labels_layer.data.shape) != shape:
            self.report(
                f"the labels layer {self.labels_layer.name!r} has shape {self.labels_layer.data.shape}, "
                f"the image {shape}: choose a matching labels layer or 'new labels layer'."
            )
            return None
        return self.labels_layer

    def set_labels_layer(self, layer) -> None:
        """Commit into ``layer`` (an existing Labels layer) or, with None, into a new one."""
        self.labels_layer = layer
        if layer is not None:
            self._bind_labels_undo(layer)

    def _bind_labels_undo(self, layer) -> None:
        # napari's own Ctrl+Z on this layer would leave the features table behind
        layer.bind_key("Control-z", lambda _layer: self.undo(), overwrite=True)
        layer.bind_key("Control-Shift-z", lambda _layer: self.redo(), overwrite=True)

    def clear(self) -> None:
        """Drop the prompts and the preview on the current slice."""
        self._decoder.cancel_pending()
        prompt_layers.clear_prompts(self.viewer, self.current_slice)
        self._set_result(None)

    def undo(self) -> None:
        """Undo the last change of the labels layer (a commit is one step)."""
        if self.labels_layer is None:
            self.status.emit("nothing to undo")
            return
        objects.undo(self.labels_layer)
        self.objects_changed.emit()

    def redo(self) -> None:
        if self.labels_layer is not None:
            objects.redo(self.labels_layer)
            self.objects_changed.emit()

    # -- helpers --------------------------------------------------------------------------

    def report(self, message: str, error: BaseException | None = None) -> None:
        if error is not None and not isinstance(error, PromptSegError):
            log.error("promptseg: %s", message, exc_info=error)
        self.status.emit(message)
        self.problem.emit(message)

    def close(self) -> None:
        """Stop threads and disconnect from the viewer (the widget is closing)."""
        self._cancel_embedding()
        if self._model_worker is not None:
            self._model_worker.quit()
        self._decoder.close()
        for layer in self._connected_prompt_layers:
            layer.events.data.disconnect(self._on_prompts_changed)
            if self._choose_label_on_click in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.remove(self._choose_label_on_click)
        self._connected_prompt_layers.clear()
        self.viewer.dims.events.current_step.disconnect(self._on_view_changed)
        self.viewer.dims.events.ndisplay.disconnect(self._on_view_changed)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
