"""Dock-widget section: extend a committed object through the slices of a stack (z or t).

The object's mask on the slice shown is propagated plane by plane along one slider axis by
:func:`napari_promptseg.core.workflows.propagation.propagate.iter_propagate` in a background worker (napari
progress bar, Cancel). When it returns, every new plane is written into the labels layer
in ONE undo step with the object's own id, sparing other objects unless the session's
"overwrite" is on, and the object's features row gets ``slices``, ``slice_ious`` and
``slice_axis`` columns (see docs/propagation.md).

Undo: napari's history removes the pixels, and ``objects.reconcile`` puts back the row as
it was before the propagation (the propagated row again on redo): the row is written with
``objects.replace_row``. The row itself is :func:`core.labels.propagated_row`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..._napari import objects
from ..._napari.slices import LayerSnapshot, SliceRef, slice_rgb, spatial_shape
from ...core.labels import object_row
from ...core.workflows.propagation.propagate import (
    Propagation,
    PropagationStep,
    format_ranges,
    iter_propagate,
)
from ...core.workflows.propagation.rows import propagated_row
from ..workers import WorkerSlot
from .registry import disconnect, say
from .slider_axes import fill_axis_combo, layer_to_viewer_offset

LAST_COMMITTED = "last committed object"
SELECTED_LABEL = "label selected in the labels layer"
DIRECTIONS = (("both directions", "both"), ("forward (+)", "forward"), ("backward (−)", "backward"))


@dataclass(frozen=True)
class _Job:
    """Everything a propagation needs, captured on the main thread when it starts."""

    labels_layer: object
    image_layer: object
    start: SliceRef
    axis: int
    object_id: int
    start_mask: np.ndarray
    n_planes: int

    @property
    def start_index(self) -> int:
        return int(self.start.index[self.axis])

    def ref_at(self, index: int) -> SliceRef:
        """The plane at ``index`` along the propagation axis, other positions as at the start."""
        positions = list(self.start.index)
        positions[self.axis] = int(index)
        return SliceRef(tuple(positions), self.start.displayed)


class PropagationPanel(QWidget):
    """Propagate an object through z or t.

    Parameters
    ----------
    viewer
        The napari viewer.
    session
        The :class:`~napari_promptseg._qt.session.SegmentationSession` of the dock widget.
    """

    done = Signal(str)  # a propagation ended (written, nothing to write, cancelled or failed)

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self._slot = WorkerSlot(self)
        self._outcome = ""
        self._axis_picked = False  # the user chose an axis: don't follow the sliders
        self._build()
        session.slice_changed.connect(self._refresh_axes)
        session.objects_changed.connect(self._show_object)
        viewer.dims.events.last_used.connect(self._refresh_axes)
        self._refresh_axes()
        self._show_object()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        form = QFormLayout(self)
        self.object_combo = QComboBox()
        self.object_combo.addItems([LAST_COMMITTED, SELECTED_LABEL])
        self.object_label = QLabel()
        self.object_label.setWordWrap(True)
        form.addRow("Object", self.object_combo)
        form.addRow("", self.object_label)
        self.axis_combo = QComboBox()
        self.axis_combo.setToolTip("the slider axis to propagate along (z, t…)")
        form.addRow("Along", self.axis_combo)
        self.direction_combo = QComboBox()
        for text, value in DIRECTIONS:
            self.direction_combo.addItem(text, value)
        form.addRow("Direction", self.direction_combo)
        self.iou_spin = QDoubleSpinBox()
        self.iou_spin.setRange(0.0, 1.0)
        self.iou_spin.setSingleStep(0.05)
        self.iou_spin.setDecimals(2)
        self.iou_spin.setValue(0.7)
        self.iou_spin.setToolTip("stop at the first slice whose predicted IoU is lower")
        form.addRow("Min predicted IoU", self.iou_spin)
        self.max_spin = QSpinBox()
        self.max_spin.setRange(0, 100_000)
        self.max_spin.setSpecialValueText("no limit")
        self.max_spin.setToolTip("at most this many new slices in each direction")
        form.addRow("Max slices each way", self.max_spin)
        buttons = QHBoxLayout()
        self.propagate_button = QPushButton("Propagate")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.propagate_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        form.addRow(self.progress_bar)
        self.status_label = QLabel("commit an object on a slice of a stack, then propagate it")
        self.status_label.setWordWrap(True)
        form.addRow(self.status_label)

        self.propagate_button.clicked.connect(self.propagate)
        self.cancel_button.clicked.connect(self.cancel)
        self.object_combo.currentIndexChanged.connect(self._show_object)
        self.axis_combo.activated.connect(self._on_axis_picked)

    # -- choices --------------------------------------------------------------------------

    def object_id(self) -> int | None:
        """The object to propagate: the last committed one, or the labels layer's selection."""
        labels = self.session.labels_layer
        if labels is None or labels not in self.viewer.layers:
            return None
        if self.object_combo.currentText() == SELECTED_LABEL:
            selected = int(labels.selected_label)
            return selected if selected > 0 else None
        ids = [int(row["id"]) for row in objects.object_rows(labels)]
        return max(ids) if ids else None

    def axis(self) -> int | None:
        """The layer axis to propagate along, or None for a 2D image."""
        data = self.axis_combo.currentData()
        return None if data is None else int(data)

    def _show_object(self, *_) -> None:
        object_id = self.object_id()
        self.object_label.setText("no object yet" if object_id is None else f"object {object_id}")

    def _on_axis_picked(self, *_) -> None:
        self._axis_picked = True

    def _refresh_axes(self, *_) -> None:
        """List the slider axes of the image; follow the slider last used until one is picked."""
        ref, layer = self.session.current_slice, self.session.image_layer
        offset = layer_to_viewer_offset(self.viewer, layer)
        preferred = self.axis() if self._axis_picked else self.viewer.dims.last_used - offset
        axes = fill_axis_combo(self.axis_combo, self.viewer, ref, layer, preferred)
        self.propagate_button.setEnabled(bool(axes) and not self._slot.running)

    # -- running --------------------------------------------------------------------------

    def propagate(self):
        """Start propagating the chosen object; returns the worker, or None (reported why)."""
        if self._slot.running:
            self._say("a propagation is already running")
            return None
        job = self._make_job()
        if job is None:
            return None
        return self._start(job)

    def _make_job(self) -> _Job | None:
        session = self.session
        ref, image, labels = session.current_slice, session.image_layer, session.labels_layer
        object_id, axis = self.object_id(), self.axis()
        problem = None
        if session.segmenter is None:
            problem = "load a model first"
        elif image is None or ref is None:
            problem = "choose an image and show it in 2D"
        elif axis is None or axis not in [a for a, i in enumerate(ref.index) if i is not None]:
            problem = (
                f"{image.name!r} is a single 2D image: there are no slices to propagate through"
            )
        elif labels is None or labels not in self.viewer.layers:
            problem = "commit an object first: there is no labels layer yet"
        elif tuple(labels.data.shape) != spatial_shape(image):
            problem = f"the labels layer {labels.name!r} has shape {labels.data.shape}, the image {spatial_shape(image)}"
        elif object_id is None:
            problem = (
                "select a label in the labels layer"
                if self.object_combo.currentText() == SELECTED_LABEL
                else "commit an object first"
            )
        if problem is not None:
            self._say(f"cannot propagate: {problem}.", problem=True)
            return None
        start_mask = objects.plane_of(labels, ref) == object_id
        if not start_mask.any():
            self._say(
                f"cannot propagate: object {object_id} has no pixels on the slice shown "
                f"({ref.describe()}); go to a slice where it is.",
                problem=True,
            )
            return None
        n_planes = spatial_shape(image)[axis]
        return _Job(labels, image, ref, axis, object_id, start_mask, n_planes)

    def _start(self, job: _Job):
        segmenter = self.session.segmenter
        snapshot = LayerSnapshot.of(job.image_layer)  # the worker reads no layer
        options = {
            "n_planes": job.n_planes,
            "direction": self.direction_combo.currentData(),
            "min_iou": float(self.iou_spin.value()),
            "max_steps": self.max_spin.value() or None,
        }

        def plane_rgb(index: int) -> np.ndarray:
            # the same conversion as the session's, so embeddings are shared
            return slice_rgb(snapshot, job.ref_at(index))

        def work():
            return (
                yield from iter_propagate(
                    segmenter, plane_rgb, job.start_index, job.start_mask, **options
                )
            )

        self._outcome = ""
        worker = self._slot.start(
            work,
            background=True,
            yielded=self._on_step,
            returned=lambda result: self._on_returned(job, result),
            errored=self._on_errored,
            aborted=self._on_aborted,
            finished=self._on_finished,
        )
        self.propagate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setVisible(True)
        self._say(f"propagating object {job.object_id} from {job.start.describe()}…")
        return worker

    def cancel(self) -> None:
        """Stop the running propagation; nothing is written."""
        if self._slot.running:
            self._slot.quit()  # at the next step (an encoder block at most); finished reports
            self._say("cancelling…")

    @property
    def worker(self):
        """The running propagation's worker, or None."""
        return self._slot.worker

    def _on_step(self, step: PropagationStep) -> None:
        self.progress_bar.setRange(0, step.total)
        self.progress_bar.setValue(step.done)
        self.status_label.setText(step.message)

    def _on_returned(self, job: _Job, result: Propagation) -> None:
        self._outcome = self._write(job, result)

    def _on_errored(self, error: BaseException) -> None:
        self._outcome = f"propagation failed: {error}"
        self.session.report(self._outcome, error)

    def _on_aborted(self) -> None:
        self._outcome = "propagation cancelled: the labels are unchanged"

    def _on_finished(self) -> None:
        self.cancel_button.setEnabled(False)
        self.progress_bar.setVisible(False)
        self._refresh_axes()
        self._say(self._outcome)
        self.done.emit(self._outcome)

    # -- writing the result ----------------------------------------------------------------

    def _write(self, job: _Job, result: Propagation) -> str:
        """Paint every kept plane in one undo step and update the object's row (main thread)."""
        layer, object_id = job.labels_layer, job.object_id
        if layer not in self.viewer.layers:
            return f"nothing written: the labels layer {layer.name!r} was removed meanwhile"
        before = next((r for r in objects.object_rows(layer) if int(r["id"]) == object_id), None)
        if not (objects.plane_of(layer, job.start) == object_id).any():
            return f"nothing written: object {object_id} was removed from its slice meanwhile"
        overwrite = bool(self.session.overwrite)
        parts, probes, painted, kept = [], [], {}, []
        for plane in result.planes:
            ref = job.ref_at(plane.index)
            current = objects.plane_of(layer, ref)
            if (current == object_id).any():
                kept.append(plane.index)  # already annotated there: the user's pixels win
                continue
            target = plane.mask if overwrite else plane.mask & (current == 0)
            rows_, cols_ = np.nonzero(target)
            if len(rows_) == 0:
                continue  # wholly on other objects
            indices = ref.full_indices(rows_, cols_)
            parts.append(indices)
            probes.append(tuple(axis[:1] for axis in indices))
            painted[plane.index] = (plane, rows_, cols_)
        if not parts:
            return f"object {object_id}: nothing written ({result.summary()})"
        everything = tuple(np.concatenate(axis) for axis in zip(*parts, strict=True))
        with layer.block_history():  # one undo step for all slices
            layer.data_setitem(everything, object_id)

        base = before if before is not None else self._row_for_painted(job)
        after = propagated_row(
            base,
            painted,
            kept,
            axis=job.axis,
            start_index=job.start_index,
            scored_start=before is not None,
        )
        probe = tuple(np.concatenate(axis) for axis in zip(*probes, strict=True))
        objects.replace_row(layer, after, probe)  # undo brings back ``before``
        self.session.notify_objects_changed()
        return (
            f"object {object_id}: {len(painted)} slice(s) written along axis {job.axis} "
            f"({format_ranges(painted)}), lowest predicted IoU {after['predicted_iou']:.2f}; "
            + "; ".join(f"{d}: {why}" for d, why in result.stops.items())
        )

    def _row_for_painted(self, job: _Job) -> dict:
        """A row for a label painted by hand (no SAM score of its own slice)."""
        return object_row(
            job.object_id,
            job.start_mask,
            predicted_iou=math.nan,
            stability=math.nan,
            prompts="painted",
            slice_index=job.start.fixed,
        )

    # -- helpers --------------------------------------------------------------------------

    def _say(self, message: str, *, problem: bool = False) -> None:
        say(self.session, self.status_label, message, problem=problem)

    def close(self) -> bool:
        """Cancel a running propagation (nothing is written) and stop listening to the session."""
        self._slot.cancel()
        disconnect(
            (self.session.slice_changed, self._refresh_axes),
            (self.session.objects_changed, self._show_object),
        )
        self.viewer.dims.events.last_used.disconnect(self._refresh_axes)
        return super().close()
