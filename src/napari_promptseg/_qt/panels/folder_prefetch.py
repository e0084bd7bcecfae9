"""The "Image folder" panel's read-ahead: the next image's embedding, computed meanwhile.

While the user annotates image i, the embedding of image i+1 is computed in a background
worker, so that Next finds it in the session's cache. The prefetch starts once the current
image's embedding is ready (once per image shown and model), holds while the session
computes an embedding of its own, and is cancelled when the folder, the model or the panel
closes. If the user moves on to the image being prefetched, the session waits for it
(:meth:`FolderPrefetch.claim`) rather than computing the same embedding twice.

The panel (:mod:`.folder_panel`) owns the layers and the session's signals and forwards
what the prefetch needs to know; this module touches no layer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from ..._napari.folder_layers import display_limits, is_rgb
from ..._napari.slices import LayerSnapshot, SliceRef, slice_rgb
from ...core.errors import ImageError
from ...core.storage.folder import SKIPPED, ImageFolder
from ..workers import WorkerSlot


def next_to_prefetch(folder: ImageFolder | None, index: int | None) -> int | None:
    """The first image after ``index`` that is not skipped, or None."""
    if folder is None or index is None:
        return None
    for candidate in range(index + 1, len(folder)):
        if folder.state(candidate).state != SKIPPED:
            return candidate
    return None


class FolderPrefetch:
    """Embeds the next image of a folder in a background worker.

    Parameters
    ----------
    session
        The :class:`~napari_promptseg._qt.session.SegmentationSession` (its segmenter
        and cache; errors go to its ``report``).
    prefetched
        Called with an image index once that image's embedding is in the cache.
    handed_over
        Called when the image shown, which waited for its prefetch (see :meth:`claim`),
        may be handed to the session: its embedding is cached, or the prefetch stopped.
    """

    def __init__(
        self,
        session,
        *,
        prefetched: Callable[[int], None],
        handed_over: Callable[[], None],
        owner=None,
    ) -> None:
        self.session = session
        self.slot = WorkerSlot(owner)  # cancelled when Qt deletes the panel
        self._running_index: int | None = None  # the image the running prefetch embeds
        self.done_for: tuple | None = None  # (index, model id, slice) cached already
        self.handoff = False  # the session waits for the prefetch of the image shown
        self._image: tuple[int, np.ndarray] | None = None  # read by a prefetch, not yet shown
        self._shown: int | None = None  # the image the panel shows
        self._armed = False  # a prefetch may start at the next embedding_ready
        self._hold = threading.Event()  # set while the session embeds: the prefetch waits
        self._prefetched = prefetched
        self._handed_over = handed_over

    @property
    def busy(self) -> bool:
        """Whether a prefetch is running."""
        return self.slot.running

    @property
    def index(self) -> int | None:
        """The image whose embedding the last prefetch put in the cache (this model)."""
        return None if self.done_for is None else self.done_for[0]

    def image(self, index: int) -> np.ndarray | None:
        """Image ``index`` as the prefetch read it, or None (read it from the folder)."""
        if self._image is not None and self._image[0] == index:
            return self._image[1]
        return None

    # -- what the panel tells it ----------------------------------------------------------

    def claim(self, index: int) -> bool:
        """Image ``index`` is about to be shown. True: its prefetch runs on and the session
        must wait for :attr:`handed_over`; False: any other prefetch was cancelled."""
        self.handoff = self.slot.running and self._running_index == index
        if not self.handoff:
            self.cancel()
        return self.handoff

    def shown(self, index: int) -> None:
        """Image ``index`` is shown now: prefetch for it at its next embedding_ready."""
        self._shown, self._image = index, None
        self._armed = True

    def forget(self) -> None:
        """The folder closed: stop, and forget what was prefetched."""
        self.cancel()
        self.done_for = self._image = self._shown = None

    def model_changed(self) -> None:
        self.cancel()  # computing for the old model: wasted
        self.done_for = None
        self._armed = True

    def hold(self, busy: bool) -> None:
        """The session is (not) computing an embedding: pause (resume) the prefetch."""
        if busy:
            self._hold.set()
        else:
            self._hold.clear()

    def embedding_ready(self, folder: ImageFolder, target: int | None) -> None:
        """The image shown has its embedding: start prefetching ``target`` if not done yet.

        Once per image shown (and model): browsing a stack's slices must not embed the
        next image's slices one by one. The plane prefetched is the one shown now.
        """
        segmenter, ref = self.session.segmenter, self.session.current_slice
        if not self._armed or self.slot.running or segmenter is None:
            return
        if ref is None or target is None:
            return
        self._armed = False
        if (target, segmenter.model_id, ref) != self.done_for:
            self._start(folder, target, segmenter, ref)

    def cancel(self) -> None:
        """Stop the running prefetch (at its next encoder block)."""
        self.slot.cancel()
        self._running_index = None
        if self.handoff:
            self._hand_over()

    # -- the worker -----------------------------------------------------------------------

    def _start(self, folder: ImageFolder, index: int, segmenter, ref: SliceRef) -> None:
        hold = self._hold

        def job():
            image = folder.load_image(index)
            # converted as the session will once the image is in the layer
            rgb = slice_rgb(LayerSnapshot(image, is_rgb(image), display_limits(image)), ref)
            steps = segmenter.iter_embed(rgb)
            try:
                while True:
                    step = next(steps)
                    yield step
                    while hold.is_set():  # the session is embedding: give it the CPU
                        time.sleep(0.05)
                        yield step  # lets a cancel through
            except StopIteration as finished:
                return image, finished.value

        wanted = (index, segmenter.model_id, ref)
        self.slot.start(
            job,
            background=True,
            returned=lambda result: self._on_prefetched(wanted, result),
            errored=self._on_failed,
            finished=self._on_finished,
        )
        self._running_index = index

    def _on_prefetched(self, wanted: tuple, result) -> None:
        image, _embedding = result
        self.done_for = wanted
        if self._shown != wanted[0]:
            self._image = (wanted[0], image)  # Next need not read it again
        self._prefetched(wanted[0])

    def _on_failed(self, error: BaseException) -> None:
        if not isinstance(error, ImageError):
            # An unreadable next image is reported when the user gets there.
            self.session.report(f"prefetching the next embedding failed: {error}", error)

    def _on_finished(self) -> None:
        self._running_index = None
        if self.handoff:
            self._hand_over()

    def _hand_over(self) -> None:
        # The image shown waited for its prefetch: the session now finds it cached.
        self.handoff = False
        self._handed_over()
