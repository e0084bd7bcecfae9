"""Embedding jobs of the session: one plane, or the tiles of a large plane, in a worker.

A mixin of :class:`~napari_promptseg._qt.session.SegmentationSession` (it uses the
session's attributes and signals); split out so each file owns one concern.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._napari.slices import SliceRef, slice_rgb, spatial_shape
from ..core.sam.embedding import ImageEmbedding
from ..core.workflows.tiling.tiled_image import TiledImage
from .workers import connected_worker

# Planes whose longest side exceeds this are embedded by tiles (SAM sees 1024 px at most:
# beyond ~2x downscaling small objects vanish). See docs/tiling.md.
TILE_ABOVE = 2048


@dataclass(frozen=True)
class Target:
    """What an embedding or a decode belongs to."""

    layer_id: int
    ref: SliceRef
    model_id: str


class EmbeddingJobs:
    """Start, cancel and receive embedding work for the plane in view."""

    def _start_embedding(self) -> None:
        segmenter, layer, ref = self.segmenter, self.image_layer, self.current_slice
        target = Target(id(layer), ref, segmenter.model_id)
        shape = spatial_shape(layer)
        if max(shape[ref.displayed[0]], shape[ref.displayed[1]]) > self.tile_above:
            self._start_tiled(target)
            return

        def job():
            rgb = slice_rgb(layer, ref)
            embedding = yield from segmenter.iter_embed(rgb)
            segmenter.decoder.prepare(embedding)
            return embedding

        where = f" ({ref.describe()})" if ref.fixed else ""
        self._run_embedding_job(
            job,
            len(segmenter.sam.image_encoder.blocks) + 2,
            lambda embedding: self._on_embedded(target, embedding),
            f"computing the image embedding{where}… you can place prompts meanwhile",
        )

    def _start_tiled(self, target: Target) -> None:
        """A plane too large for one embedding: tiles are embedded when prompts need them."""
        segmenter, layer, ref = self.segmenter, self.image_layer, self.current_slice

        def job():
            yield 0, 1
            return TiledImage(segmenter, slice_rgb(layer, ref))

        self._run_embedding_job(
            job, 1, lambda tiled: self._on_tiled_ready(target, tiled), "reading the large image…"
        )

    def _embed_tiles(self, tiles) -> None:
        target, tiled = self._current_target(), self.tiled

        def job():
            return (yield from tiled.iter_embed(tiles))

        def done(_):
            if self._current_target() == target and self.tiled is tiled:
                self._submitted = None
                self.request_decode()

        n = len(tiles)
        self._run_embedding_job(
            job, len(self.segmenter.sam.image_encoder.blocks) * n + 2 * n, done,
            f"embedding {n} tile{'s' if n > 1 else ''} of the large image for these prompts…",
        )  # fmt: skip

    def _run_embedding_job(self, job, total: int, on_returned, message: str) -> None:
        """Run a generator ``job`` yielding (done, total) in a napari worker, cancellable.

        The worker runs below the GUI's priority: the encoder must not make napari stutter.
        Progress goes to the widget's bar (``progress`` signal), ``total`` steps.
        """
        self._cancel_embedding()
        worker = connected_worker(job, background=True)
        worker.yielded.connect(lambda step: self._on_embed_progress(worker, step))
        worker.returned.connect(lambda value: worker is self._embed_worker and on_returned(value))
        worker.errored.connect(lambda error: self._on_embed_failed(worker, error))
        worker.finished.connect(lambda: self._on_embed_finished(worker))
        self._embed_worker = worker
        self.busy_changed.emit(True)
        self.status.emit(message)
        worker.start()

    def _cancel_embedding(self) -> None:
        if self._embed_worker is not None:
            self._embed_worker.quit()  # stops at the next encoder block
            self._embed_worker = None
            self.busy_changed.emit(False)

    def _on_embed_progress(self, worker, step) -> None:
        if worker is self._embed_worker:
            self.progress.emit(*step)

    def _on_embedded(self, target: Target, embedding: ImageEmbedding) -> None:
        if target != self._current_target():
            return  # belongs to an image, slice or model no longer selected
        self.embedding = embedding
        self.progress.emit(0, 0)
        self.embedding_ready.emit(embedding)
        self.status.emit(f"ready: {self._describe_image()}")
        self.request_decode()  # prompts placed while embedding decode now

    def _on_tiled_ready(self, target: Target, tiled: TiledImage) -> None:
        if target != self._current_target():
            return
        self.tiled = tiled
        self.progress.emit(0, 0)
        rows, cols = tiled.rgb.shape[:2]
        self.status.emit(
            f"large image ({rows}x{cols}): {len(tiled.grid)} tiles of {tiled.grid.tile} px, "
            "each embedded when a prompt needs it"
        )
        self.request_decode()

    def _on_embed_failed(self, worker, error: BaseException) -> None:
        if worker is self._embed_worker:
            self.report(f"cannot compute the embedding: {error}", error)

    def _on_embed_finished(self, worker) -> None:
        if worker is self._embed_worker:
            self._embed_worker = None
            self.busy_changed.emit(False)

    def _current_target(self) -> Target | None:
        if self.image_layer is None or self.current_slice is None or self.segmenter is None:
            return None
        return Target(id(self.image_layer), self.current_slice, self.segmenter.model_id)

    def _describe_image(self) -> str:
        if self.image_layer is None:
            return ""
        return f"{self.image_layer.name} {self.current_slice.describe() if self.current_slice else ''}".strip()
