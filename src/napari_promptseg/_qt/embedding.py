"""Computing the embedding of the plane in view, in a background worker, one at a time.

:class:`EmbeddingController` owns its worker slot and nothing else: it reads the session's
:class:`~napari_promptseg._napari.state.SessionState` when asked to start and reports back
through callbacks, each result tagged with the :class:`Target` it was computed for (the
session drops it if the user has moved on). Planes larger than :data:`TILE_ABOVE` are
embedded by tiles, only those that prompts need.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

from .._napari.slices import slice_rgb, spatial_shape
from .._napari.state import SessionState, Target
from ..core.sam.embedding import ImageEmbedding
from ..core.sam.engine import PromptSegmenter
from ..core.workflows.tiling import TILE_ABOVE, Tile, TiledImage
from .workers import WorkerSlot

# Planes whose longest side exceeds TILE_ABOVE (2048) are embedded by tiles; the engine owns
# the threshold so `promptseg embed` tiles the same planes (docs/tiling.md, docs/scale.md).


class EmbeddingController:
    """Start, cancel and receive embedding work for the plane in view.

    Parameters
    ----------
    state
        The session's state; read when a job starts, never written.
    embedded
        ``(target, embedding)`` when the plane's embedding is ready.
    tiled
        ``(target, tiled_image)`` when a large plane is ready for tiles to be embedded.
    tiles_embedded
        ``(target, tiled_image)`` when tiles requested with :meth:`embed_tiles` are ready.
    progress
        ``(done, total)`` steps of the running job; ``(0, 0)`` when none runs.
    busy
        True when a job starts, False when it ends or is cancelled.
    status, problem
        A status line; a failure (message, exception).
    warm_up
        Run in the worker after each embedding (prepares and times the decoder); default
        ``segmenter.warm_up_decoder(embedding)``.
    owner
        The QObject the callbacks belong to (see :class:`~.workers.WorkerSlot`).
    """

    def __init__(
        self,
        state: SessionState,
        *,
        embedded: Callable[[Target, ImageEmbedding], None],
        tiled: Callable[[Target, TiledImage], None],
        tiles_embedded: Callable[[Target, TiledImage], None],
        progress: Callable[[int, int], None],
        busy: Callable[[bool], None],
        status: Callable[[str], None],
        problem: Callable[[str, BaseException | None], None],
        warm_up: Callable[..., None] | None = None,
        owner: Any = None,
    ) -> None:
        self.state = state
        self.tile_above = TILE_ABOVE
        self.slot = WorkerSlot(owner)
        self._embedded, self._tiled, self._tiles_embedded = embedded, tiled, tiles_embedded
        self._progress, self._busy = progress, busy
        self._status, self._problem = status, problem
        self._warm_up = warm_up or _warm_up
        # Set by cancel() for the running job (the warm-up after the last encoder block has
        # no `yield` to stop at); `_idle` is set when no job's thread is computing.
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        return self.slot.running

    def start(self) -> None:
        """Embed the plane in view (or get its tiles ready, for a large plane)."""
        state = self.state
        target, segmenter, layer = state.current_target(), state.segmenter, state.image_layer
        if target is None or segmenter is None:
            return
        ref = target.ref
        shape = spatial_shape(layer)
        if max(shape[ref.displayed[0]], shape[ref.displayed[1]]) > self.tile_above:
            self._start_tiled(target)
            return

        def job(stop: threading.Event) -> Generator[tuple[int, int], None, ImageEmbedding]:
            rgb = slice_rgb(layer, ref)
            embedding = yield from segmenter.iter_embed(rgb)
            # the first click pays for neither; timed; stops between decodes when cancelled
            self._warm_up(segmenter, embedding, should_stop=stop.is_set)
            return embedding

        where = f" ({ref.describe()})" if ref.fixed else ""
        self._run(
            job,
            lambda embedding: self._embedded(target, embedding),
            f"computing the image embedding{where}… you can place prompts meanwhile",
        )

    def embed_tiles(self, tiles: list[Tile]) -> None:
        """Embed ``tiles`` of the large plane in view; then ``tiles_embedded`` is called."""
        target, tiled = self.state.current_target(), self.state.tiled
        if target is None or tiled is None:
            return

        def job(_stop: threading.Event) -> Generator[tuple[int, int], None, None]:
            yield from tiled.iter_embed(tiles)

        n = len(tiles)
        self._run(
            job,
            lambda _: self._tiles_embedded(target, tiled),
            f"embedding {n} tile{'s' if n > 1 else ''} of the large image for these prompts…",
        )

    def cancel(self) -> None:
        """Stop the running job at its next encoder block; nothing it computed is reported."""
        self._stop.set()
        if self.slot.running:
            self.slot.cancel()
            self._busy(False)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no job of this controller computes (after :meth:`cancel`: at most one
        encoder block or decode); False if ``timeout`` seconds passed first.

        A closing session waits so no torch work of a closed viewer runs on.
        """
        return self._idle.wait(timeout)

    def _start_tiled(self, target: Target) -> None:
        """A plane too large for one embedding: tiles are embedded when prompts need them."""
        segmenter, layer = self.state.segmenter, self.state.image_layer

        def job(_stop: threading.Event) -> Generator[tuple[int, int], None, TiledImage]:
            yield 0, 1
            return TiledImage(segmenter, slice_rgb(layer, target.ref))

        self._run(job, lambda tiled: self._tiled(target, tiled), "reading the large image…")

    def _run(
        self,
        job: Callable[[threading.Event], Generator],
        on_returned: Callable[[Any], None],
        message: str,
    ) -> None:
        """Run a generator ``job(stop)`` yielding (done, total) in the slot's worker,
        cancellable: at its next ``yield``, and where it checks ``stop`` (set by :meth:`cancel`).

        The worker runs below the GUI's priority: the encoder must not make napari stutter.
        """
        self.cancel()
        stop = self._stop = threading.Event()
        idle = self._idle = threading.Event()

        def tracked() -> Generator:
            # `idle` is set while the job waits at a yield (a cancelled worker never resumes
            # it: superqt leaves the generator suspended) and when it ends; cancel() sets
            # `stop` before quitting, so a resumed job that sees it computes nothing more.
            steps = job(stop)
            try:
                while True:
                    idle.clear()
                    if stop.is_set():
                        return None
                    try:
                        step = next(steps)
                    except StopIteration as end:
                        return end.value
                    idle.set()
                    yield step
            finally:
                idle.set()

        self.slot.start(
            tracked,
            background=True,
            yielded=lambda step: self._progress(*step),
            returned=on_returned,
            errored=lambda error: self._problem(f"cannot compute the embedding: {error}", error),
            finished=lambda: self._busy(False),
        )
        self._busy(True)
        self._status(message)


def _warm_up(
    segmenter: PromptSegmenter,
    embedding: ImageEmbedding,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    segmenter.warm_up_decoder(embedding, should_stop=should_stop)
