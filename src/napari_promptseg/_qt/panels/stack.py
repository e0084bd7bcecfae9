"""Precompute the embedding of every slice of a stack, so browsing it never waits for SAM.

The planes are the ones the session would embed when the user moves to them: the same two
displayed axes, every position of the other axes, the layer's contrast limits at the time
the button is pressed. Results land in the session's memory cache and, if "keep
embeddings on disk" is on, in the store; the session finds them by content when the
slice is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..._napari.slices import LayerSnapshot, SliceRef, slice_rgb, spatial_shape
from ...core.workflows.stack import PrecomputeSummary, cached_planes, iter_embed_planes
from ..workers import BarProgress, WorkerSlot
from .registry import disconnect, plane_ready


class LayerPlanes(Sequence):
    """Every plane of an image layer as lazy ``(SliceRef, rgb)`` pairs, nearest first.

    The layer's data, rgb flag and contrast limits are read once, on the main thread, so a
    worker never reads a layer napari may be changing.
    """

    def __init__(self, layer, current: SliceRef) -> None:
        self._snapshot = LayerSnapshot.of(layer)
        shape = spatial_shape(layer)
        ranges = [
            [None] if position is None else range(shape[axis])
            for axis, position in enumerate(current.index)
        ]
        refs = [SliceRef(tuple(index), current.displayed) for index in product(*ranges)]
        here = np.array([p for p in current.index if p is not None])
        # nearest planes first: the ones the user is about to look at are ready soonest
        self.refs = sorted(
            refs,
            key=lambda ref: float(np.abs(np.array(ref.fixed) - here).sum()) if ref.fixed else 0,
        )

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index):  # type: ignore[override]
        ref = self.refs[index]
        return ref, slice_rgb(self._snapshot, ref)

    def __iter__(self):
        for ref in self.refs:
            yield ref, slice_rgb(self._snapshot, ref)


class StackPanel(QWidget):
    """ "The "Precompute all slices" button with progress and Cancel, and how many slices are embedded."""

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.precompute_button = QPushButton("Precompute all slices")
        self.precompute_button.setToolTip(
            "embed every slice in the background (at the current contrast limits), so moving "
            "through the stack needs no waiting"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cached_label = QLabel("no image")
        self.cached_label.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.precompute_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.cached_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        layout.addWidget(self.progress_bar)

        self.summary: PrecomputeSummary | None = None  # of the last finished precompute
        self.computed = 0  # planes the running (or last) precompute ran the encoder for
        self._computing: set[SliceRef] = set()
        self._precompute = WorkerSlot(self)
        self._progress: BarProgress | None = None
        self._count = WorkerSlot(self)  # only the latest count reports
        self._signature = None  # what the cached set was counted for
        self._cached: set[SliceRef] = set()
        self._total = 0

        self.precompute_button.clicked.connect(self.precompute)
        self.cancel_button.clicked.connect(self.cancel)
        session.slice_changed.connect(self._on_slice_changed)
        session.model_changed.connect(self._on_slice_changed)
        session.embedding_ready.connect(self._on_embedding_ready)
        self.refresh_count()

    @property
    def running(self) -> bool:
        return self._precompute.running

    @property
    def cached_count(self) -> tuple[int, int]:
        """(slices embedded, slices in the stack) for the current image, model and contrast."""
        return len(self._cached), self._total

    # -- precompute -----------------------------------------------------------------------

    def precompute(self) -> None:
        """Embed every plane of the session's image layer in a background worker."""
        session = self.session
        if self.running:
            return
        if not plane_ready(session, "precompute"):
            return
        planes = LayerPlanes(session.image_layer, session.current_slice)
        self._signature = self._current_signature()
        self.summary, self.computed, self._computing = None, 0, set()
        self._progress = BarProgress(self.progress_bar, total=len(planes))
        self._precompute.start(
            iter_embed_planes,
            session.segmenter,
            planes,
            background=True,
            yielded=self._on_step,
            returned=self._on_returned,
            errored=self._on_errored,
            aborted=self._on_aborted,
            finished=self._on_finished,
        )
        self.precompute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        session.say(f"precomputing the embeddings of {len(planes)} slices…")

    def cancel(self) -> None:
        """Stop the precompute after the current encoder block; what is done is kept."""
        if self.running:
            self._precompute.quit()  # its aborted and finished report what was kept
            self.cancel_button.setEnabled(False)

    def _on_step(self, step) -> None:
        if self._progress is None:
            return
        done, total, ref = step
        if done == self._progress.n:
            self._computing.add(ref)  # an encoder block of this plane finished
            self.computed = len(self._computing)
        else:
            self._progress.update(done - self._progress.n)
            if self._signature == self._current_signature():
                self._cached.add(ref)
        self.cached_label.setText(f"precomputing: {done} / {total} slices done")

    def _on_returned(self, summary: PrecomputeSummary) -> None:
        self.summary, self.computed = summary, summary.computed
        self.session.say(
            f"precomputed {summary.total} slices: {summary.computed} embedded, "
            f"{summary.reused} were ready"
        )

    def _on_errored(self, error: BaseException) -> None:
        self.session.report(f"precompute stopped: {error}", error)

    def _on_aborted(self) -> None:
        done = self._progress.n if self._progress is not None else 0
        self.session.say(f"precompute cancelled; the {done} slices ready so far are kept")

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.precompute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.refresh_count()

    # -- how many slices are embedded -----------------------------------------------------

    def _current_signature(self):
        session, layer = self.session, self.session.image_layer
        if layer is None or session.segmenter is None or session.current_slice is None:
            return None
        return (
            id(layer),
            session.current_slice.displayed,
            tuple(float(v) for v in layer.contrast_limits),
            session.segmenter.model_id,
            id(session.segmenter.store),
        )

    def _on_slice_changed(self, *args) -> None:
        signature = self._current_signature()
        if signature == self._signature:
            return  # only the position moved: the count still holds
        # the store (last item) changing only needs a recount; the rest makes the planes moot
        if self.running and (signature is None or signature[:-1] != self._signature[:-1]):
            self.cancel()
            self.session.say(
                "precompute stopped: the image, model or contrast changed; press it again"
            )
        self.refresh_count()

    def _on_embedding_ready(self, embedding) -> None:
        ref = self.session.current_slice
        if ref is not None and self._signature == self._current_signature() and self._total:
            self._cached.add(ref)
            self._show_count()

    def refresh_count(self) -> None:
        """Recount the embedded slices in the background (memory cache and disk store)."""
        self._count.cancel()
        self._signature = self._current_signature()
        self._cached, self._total = set(), 0
        if self._signature is None:
            self.cached_label.setText("no image or model")
            return
        session = self.session
        planes = LayerPlanes(session.image_layer, session.current_slice)
        self._total = len(planes)
        self.cached_label.setText(f"counting embedded slices of {self._total}…")
        self._count.start(
            _count_cached,
            session.segmenter,
            planes,
            returned=self._on_counted,
            errored=self._on_count_failed,
        )

    def _on_counted(self, found: set[SliceRef]) -> None:
        self._cached |= found
        self._show_count()

    def _on_count_failed(self, error: BaseException) -> None:
        self.cached_label.setText(f"cannot count the embedded slices: {error}")

    def _show_count(self) -> None:
        if self.running:
            return  # the progress line is shown instead
        cached, total = self.cached_count
        self.cached_label.setText(f"{cached} / {total} slices embedded")

    def close(self) -> bool:
        """Stop the workers and disconnect from the session (the dock widget is closing)."""
        self._precompute.cancel()
        self._count.cancel()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        disconnect(
            (self.session.slice_changed, self._on_slice_changed),
            (self.session.model_changed, self._on_slice_changed),
            (self.session.embedding_ready, self._on_embedding_ready),
        )
        return super().close()


def _count_cached(segmenter, planes: LayerPlanes):
    """Worker body: the planes already embedded; yields once per plane so it can be quit."""
    found: set[SliceRef] = set()
    for ref, cached in cached_planes(segmenter, planes):
        if cached:
            found.add(ref)
        yield
    return found
