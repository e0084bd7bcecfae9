"""Dock-widget section: follow objects through z or t with SAM 2.1's memory.

"Propagate" feeds each chosen object's mask on the frame shown to a
:class:`~napari_promptseg.core.workflows.tracking.memory.MemoryTracker` and tracks it along
one slider axis in a background worker (progress bar, Cancel). "Correct here and
re-propagate" feeds the prompts on the frame shown (or, without prompts, the object's mask
there) to the same tracker — one per (image layer, labels layer, axis, model), so its memory
and the frames' embeddings are reused — and tracks again from that frame.

Results are written by :func:`napari_promptseg._napari.tracking.write_masks`: one undo step,
the object's own id, other objects spared unless "overwrite", frames made by hand kept
unless "overwrite hand-made frames". A cancelled run writes the frames it finished. The
lineage, the Tracks layer, track edits and exports are in :mod:`.tracking_tracks`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..._napari import layers as prompt_layers
from ..._napari import objects
from ..._napari.slices import LayerSnapshot, slice_rgb, spatial_shape
from ..._napari.tracking import TrackTarget, write_masks
from ...core.errors import PromptSegError
from ...core.sam.engine import PromptSegmenter
from ...core.sam.families.base import FamilyError
from ...core.sam.prompts import Prompts
from ...core.workflows.tracking.memory import MemoryTracker
from ...core.workflows.tracking.results import TrackRun, TrackStep
from ..workers import WorkerSlot
from .registry import disconnect, say
from .slider_axes import fill_axis_combo
from .tracking_tracks import TracksBox

LAST_COMMITTED = "last committed object"
SELECTED_LABEL = "label selected in the labels layer"
ALL_ON_FRAME = "all objects on this frame"
DIRECTIONS = (("both directions", "both"), ("forward (+)", "forward"), ("backward (−)", "backward"))
FALLBACK = "Use 'Propagate through slices' (above) with this model."


@dataclass
class _Job:
    """A propagation, captured on the main thread: what to feed and where to write."""

    key: tuple
    target: TrackTarget
    labels_layer: object
    obj_ids: list[int]
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # obj → mask on the frame
    prompts: Prompts | None = None  # a correction by prompts (one object)


def memory_problem(segmenter: PromptSegmenter | None) -> str | None:
    """Why ``segmenter`` cannot track with memory (the FamilyError message), or None."""
    if segmenter is None:
        return "load a SAM 2.1 model first"
    try:
        MemoryTracker(segmenter, lambda frame: np.zeros((1, 1, 3), np.uint8), 1)
    except FamilyError as error:
        return f"{error} {FALLBACK}"
    return None


class TrackingPanel(QWidget):
    """Track objects through a stack with SAM 2.1 memory; edit and export the tracks."""

    done = Signal(str)  # a run ended (written, nothing written, cancelled or failed)

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer, self.session = viewer, session
        self._slot = WorkerSlot(self)
        self._stop = threading.Event()
        self._trackers: dict[tuple, MemoryTracker] = {}
        self._outcome = ""
        self.last_run: TrackRun | None = None
        self._build()
        session.slice_changed.connect(self._refresh)
        session.model_changed.connect(self._refresh)
        session.objects_changed.connect(self._on_objects_changed)
        self._refresh()
        self.tracks.refresh()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        form = QFormLayout(self)
        self.object_combo = QComboBox()
        self.object_combo.addItems([LAST_COMMITTED, SELECTED_LABEL, ALL_ON_FRAME])
        form.addRow("Objects", self.object_combo)
        self.axis_combo = QComboBox()
        self.axis_combo.setToolTip("the slider axis to track along (z or t)")
        form.addRow("Along", self.axis_combo)
        self.direction_combo = QComboBox()
        for text, value in DIRECTIONS:
            self.direction_combo.addItem(text, value)
        form.addRow("Direction", self.direction_combo)
        self.max_spin = QSpinBox()
        self.max_spin.setRange(0, 100_000)
        self.max_spin.setSpecialValueText("no limit")
        self.max_spin.setToolTip("at most this many frames in each direction")
        form.addRow("Max frames", self.max_spin)
        self.lost_check = QCheckBox("stop where the object is lost")
        self.lost_check.setChecked(True)
        self.lost_check.setToolTip("end a direction at the first frame SAM 2.1 sees no object")
        form.addRow(self.lost_check)
        self.hand_check = QCheckBox("overwrite hand-made frames")
        self.hand_check.setToolTip(
            "also replace frames you committed or edited yourself (else they stay as they are)"
        )
        form.addRow(self.hand_check)
        buttons = QHBoxLayout()
        self.propagate_button = QPushButton("Propagate")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.propagate_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        self.correct_button = QPushButton("Correct here and re-propagate")
        self.correct_button.setToolTip(
            "the prompts on this frame (or, without prompts, the object's mask here) correct "
            "the track; then it is tracked again from this frame"
        )
        form.addRow(self.correct_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        form.addRow(self.progress_bar)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        form.addRow(self.status_label)
        self.stops_label = QLabel("")
        self.stops_label.setWordWrap(True)
        form.addRow(self.stops_label)
        form.addRow(QLabel("<b>Tracks</b>"))
        self.tracks = TracksBox(self.viewer, self.session, self.place)
        form.addRow(self.tracks)

        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.correct_button.clicked.connect(lambda: self.correct())
        self.cancel_button.clicked.connect(self.cancel)
        self.axis_combo.currentIndexChanged.connect(lambda _i: self.tracks.refresh())

    # -- choices --------------------------------------------------------------------------

    def axis(self) -> int | None:
        data = self.axis_combo.currentData()
        return None if data is None else int(data)

    def place(self) -> tuple | None:
        """(labels layer, axis) the tracks live on now, or None."""
        labels, axis = self.session.labels_layer, self.axis()
        if labels is None or labels not in self.viewer.layers or axis is None:
            return None
        if labels.data.ndim < 3 or axis >= labels.data.ndim:
            return None
        return labels, axis

    def object_ids(self) -> list[int]:
        """The objects chosen: last committed, the labels' selection, or all on this frame."""
        labels, ref = self.session.labels_layer, self.session.current_slice
        if labels is None or labels not in self.viewer.layers or ref is None:
            return []
        choice = self.object_combo.currentText()
        if choice == SELECTED_LABEL:
            selected = int(labels.selected_label)
            return [selected] if selected > 0 else []
        if choice == ALL_ON_FRAME:
            return [int(i) for i in np.unique(objects.plane_of(labels, ref)) if i != 0]
        ids = [int(row["id"]) for row in objects.object_rows(labels)]
        return [max(ids)] if ids else []

    def _refresh(self, *_) -> None:
        ref, image = self.session.current_slice, self.session.image_layer
        axes = fill_axis_combo(self.axis_combo, self.viewer, ref, image, self.axis())
        idle = bool(axes) and not self._slot.running
        self.propagate_button.setEnabled(idle)
        self.correct_button.setEnabled(idle)
        problem = memory_problem(self.session.segmenter)
        if problem is not None and self.session.segmenter is not None:
            self.status_label.setText(problem)
        elif not self._slot.running and self.status_label.text().startswith("memory"):
            self.status_label.setText("")

    def _on_objects_changed(self) -> None:
        self.tracks.refresh()

    # -- starting -------------------------------------------------------------------------

    def propagate(self):
        """Track the chosen objects from their masks on the frame shown; the worker or None."""
        job = self._make_job(correct=False)
        return None if job is None else self._start(job)

    def correct(self):
        """Correct the object on the frame shown (prompts, else its mask) and track again."""
        job = self._make_job(correct=True)
        return None if job is None else self._start(job)

    def _make_job(self, *, correct: bool) -> _Job | None:
        session = self.session
        ref, image, labels = session.current_slice, session.image_layer, session.labels_layer
        axis, ids = self.axis(), self.object_ids()
        problem = memory_problem(session.segmenter)
        if self._slot.running:
            problem = "a propagation is already running"
        elif problem is None and (image is None or ref is None):
            problem = "choose an image and show it in 2D"
        elif problem is None and axis is None:
            problem = f"{image.name!r} is a single 2D image: there are no frames to track through"
        elif problem is None and (labels is None or labels not in self.viewer.layers):
            problem = "commit an object first: there is no labels layer yet"
        elif problem is None and tuple(labels.data.shape) != spatial_shape(image):
            problem = f"the labels layer {labels.name!r} has shape {labels.data.shape}, the image {spatial_shape(image)}"
        elif problem is None and not ids:
            problem = "select a label or commit an object first"
        prompts = None
        if problem is None and correct:
            prompts = prompt_layers.read_prompts(self.viewer, ref)
            if len(ids) != 1:
                problem = (
                    "a correction is for one object: choose the last committed or selected one"
                )
            elif prompts.is_empty:
                prompts = None
        if problem is not None:
            self._say(f"cannot track: {problem}.", problem=True)
            return None
        target = TrackTarget(ref, axis)
        plane = objects.plane_of(labels, ref)
        masks = {i: plane == i for i in ids}
        missing = [i for i in ids if not masks[i].any()]
        if missing and prompts is None:
            self._say(
                f"cannot track: object {missing[0]} has no pixels on the frame shown "
                f"({ref.describe()}); go to a frame where it is, or click on it.",
                problem=True,
            )
            return None
        key = (image.unique_id, labels.unique_id, axis, target.key(), id(session.segmenter))
        alive = {layer.unique_id for layer in self.viewer.layers}
        gone = [k for k in self._trackers if not {k[0], k[1]} <= alive or k[4] != key[4]]
        for old in gone:  # layers removed or another model: free the states (and the model)
            del self._trackers[old]
        if key not in self._trackers:
            snapshot = LayerSnapshot.of(image)  # the worker reads no layer

            def frame_rgb(frame: int) -> np.ndarray:  # as the session converts: shared cache
                return slice_rgb(snapshot, target.ref_at(frame))

            n_frames = spatial_shape(image)[axis]
            self._trackers[key] = MemoryTracker(session.segmenter, frame_rgb, n_frames)
        return _Job(key, target, labels, ids, {} if prompts is not None else masks, prompts)

    def _start(self, job: _Job):
        tracker = self._trackers[job.key]
        frame, stop = job.target.start, self._stop
        options = {
            "start": frame,
            "direction": self.direction_combo.currentData(),
            "max_frames": self.max_spin.value() or None,
            "stop_when_lost": self.lost_check.isChecked(),
            "should_stop": stop.is_set,
        }

        def work():
            if job.prompts is not None:
                tracker.add_prompts(frame, job.obj_ids[0], job.prompts)
            for obj_id, mask in job.masks.items():
                tracker.add_mask(frame, obj_id, mask)
            yield TrackStep(0, 0, frame, job.obj_ids[0], "", "frames encoded, tracking…")
            return (yield from tracker.iter_propagate(job.obj_ids, **options))

        stop.clear()
        self._outcome = ""
        worker = self._slot.start(
            work,
            background=True,
            yielded=self._on_step,
            returned=lambda run: self._on_returned(job, run),
            errored=self._on_errored,
            finished=self._on_finished,
        )
        for button in (self.propagate_button, self.correct_button):
            button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setVisible(True)
        what = "correcting and re-tracking" if job.prompts is not None else "tracking"
        ids = ", ".join(map(str, job.obj_ids))
        self._say(f"{what} object(s) {ids} from frame {frame} with SAM 2.1 memory…")
        return worker

    def cancel(self) -> None:
        """Stop after the frame in progress; the frames done are written."""
        if self._slot.running:
            self._stop.set()
            self._say("cancelling after this frame…")

    @property
    def worker(self):
        return self._slot.worker

    # -- results --------------------------------------------------------------------------

    def _on_step(self, step: TrackStep) -> None:
        if step.total:
            self.progress_bar.setRange(0, step.total)
            self.progress_bar.setValue(step.done)
        self.status_label.setText(step.message)

    def _on_returned(self, job: _Job, run: TrackRun) -> None:
        self.last_run = run
        layer = job.labels_layer
        if layer not in self.viewer.layers:
            self._outcome = f"nothing written: the labels layer {layer.name!r} was removed"
            return
        masks = {o: {f: m.mask for f, m in per.items()} for o, per in run.masks.items()}
        force = frozenset((o, job.target.start) for o in job.obj_ids if job.prompts is not None)
        try:
            report = write_masks(
                layer,
                job.target,
                masks,
                overwrite=bool(self.session.overwrite),
                replace_hand_made=self.hand_check.isChecked(),
                force=force,
            )
        except PromptSegError as error:
            self._outcome = f"nothing written: {error}"
            return
        self.stops_label.setText(run.summary())
        head = "cancelled: wrote the frames done. " if run.cancelled else ""
        self._outcome = head + report.describe() + " (one Ctrl+Z undoes it)"
        if report.n_written:
            self.tracks.track_spin.setValue(job.obj_ids[0])
            self.session.notify_objects_changed()
        if job.prompts is not None:
            prompt_layers.clear_prompts(self.viewer, job.target.ref)

    def _on_errored(self, error: BaseException) -> None:
        self._outcome = f"tracking failed: {error}"
        self.session.report(self._outcome, error)

    def _on_finished(self) -> None:
        self.cancel_button.setEnabled(False)
        self.progress_bar.setVisible(False)
        self._refresh()
        self._say(self._outcome or "tracking stopped: nothing written")
        self.done.emit(self._outcome)

    def _say(self, message: str, *, problem: bool = False) -> None:
        say(self.session, self.status_label, message, problem=problem)

    def close(self) -> bool:
        """Stop a running propagation (nothing more is written) and stop listening."""
        self._stop.set()
        self._slot.cancel()
        disconnect(
            (self.session.slice_changed, self._refresh),
            (self.session.model_changed, self._refresh),
            (self.session.objects_changed, self._on_objects_changed),
        )
        self._trackers.clear()
        return super().close()
