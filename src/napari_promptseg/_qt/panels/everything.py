"""The "Segment everything" section: automatic instance segmentation of the shown plane.

The button runs :func:`core.everything.iter_segment_everything` in a napari worker on the
plane the viewer shows (the session's embedding is reused from the cache). The result goes
into the labels layer on the main thread as one undo step: new ids above the largest id
in the layer, no existing object overwritten, one features row per object. A result for an
image, plane, contrast or model no longer shown is dropped.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..._napari import objects
from ..._napari.slices import LayerSnapshot, slice_rgb
from ..._napari.state import Target
from ...core.errors import PromptSegError
from ...core.labels import LabelsError, next_label_id
from ...core.workflows.everything.generator import (
    EverythingParams,
    EverythingResult,
    confidence_order,
    iter_segment_everything,
    place_objects,
)
from ..workers import BarProgress, WorkerSlot
from .registry import disconnect, plane_ready


class EverythingPanel(QWidget):
    """Main generator parameters, "Segment everything" and Cancel."""

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        defaults = EverythingParams()
        self.points_per_side = _int_box(1, 128, defaults.points_per_side)
        self.points_per_side.setToolTip("a grid of N×N single-point prompts (more: slower, finer)")
        self.iou_threshold = _float_box(defaults.pred_iou_thresh)
        self.iou_threshold.setToolTip("keep masks whose predicted IoU is above this")
        self.stability_threshold = _float_box(defaults.stability_score_thresh)
        self.stability_threshold.setToolTip("keep masks at least this stable (0..1)")
        self.min_area = _int_box(0, 1_000_000, defaults.min_mask_region_area)
        self.min_area.setToolTip("fill holes and drop islands smaller than this (pixels; 0: off)")
        self.crop_layers = _int_box(0, 3, defaults.crop_n_layers)
        self.crop_layers.setToolTip("also run on 2×2 (4×4, ...) crops for small objects: slow")
        self.run_button = QPushButton("Segment everything")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Points per side", self.points_per_side)
        form.addRow("IoU threshold", self.iou_threshold)
        form.addRow("Stability threshold", self.stability_threshold)
        form.addRow("Min region area", self.min_area)
        form.addRow("Crop layers", self.crop_layers)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        layout.addWidget(self.progress_bar)

        self.last_rows: list[dict] = []  # rows added by the last applied run
        self._slot = WorkerSlot(self)
        self._target: Target | None = None
        self._progress = None
        self._waiting = False  # pressed while the embedding was being computed
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        session.embedding_ready.connect(self._on_embedding_ready)
        session.slice_changed.connect(self._on_slice_changed)

    @property
    def running(self) -> bool:
        return self._slot.running or self._waiting

    def params(self) -> EverythingParams:
        return EverythingParams(
            points_per_side=self.points_per_side.value(),
            pred_iou_thresh=self.iou_threshold.value(),
            stability_score_thresh=self.stability_threshold.value(),
            min_mask_region_area=self.min_area.value(),
            crop_n_layers=self.crop_layers.value(),
        )

    # -- run ------------------------------------------------------------------------------

    def run(self) -> None:
        """Segment everything on the plane shown now (in the background)."""
        session = self.session
        if self._slot.running:
            return
        if not plane_ready(session, "segment everything"):
            return
        try:
            self.params().validate()
        except PromptSegError as error:
            session.report(str(error))
            return
        if session.embedding is None:
            # the session is embedding this plane: start when it is ready, not twice at once
            self._waiting = True
            self._set_running(True, "waiting for the image embedding…")
            return
        self._start()

    def _start(self) -> None:
        session, layer, ref = self.session, self.session.image_layer, self.session.current_slice
        segmenter, params = session.segmenter, self.params()
        self._target = session.current_target()
        snapshot = LayerSnapshot.of(layer)  # the worker reads no layer napari may change

        def job():
            rgb = slice_rgb(snapshot, ref)
            return (yield from iter_segment_everything(segmenter, rgb, params))

        self._progress = BarProgress(self.progress_bar)
        self._slot.start(
            job,
            background=True,
            yielded=self._on_step,
            returned=self._on_returned,
            errored=self._on_errored,
            aborted=self._on_aborted,
            finished=self._on_finished,
        )
        where = f" ({ref.describe()})" if ref.fixed else ""
        self._set_running(True, f"segmenting everything{where}…")
        session.say(f"segmenting everything in {layer.name}{where}…")

    def cancel(self) -> None:
        """Stop after the current batch of points; nothing is written."""
        if self._waiting:
            self._waiting = False
            self._set_running(False, "cancelled")
        if self._slot.running:
            self._slot.quit()  # its aborted and finished still report
            self.cancel_button.setEnabled(False)

    def _on_embedding_ready(self, _embedding) -> None:
        if self._waiting:
            self._waiting = False
            self._start()

    def _on_slice_changed(self) -> None:
        if self._waiting:  # pressed for a plane no longer shown
            self._waiting = False
            self._set_running(False, "")

    def _on_step(self, step) -> None:
        if self._progress is None:
            return
        done, total = step
        self.status_label.setText(f"segmenting everything: step {done} / {total}")
        self._progress.total = total
        self._progress.update(done - self._progress.n)

    def _on_returned(self, result: EverythingResult) -> None:
        try:
            self.apply(result, self._target)
        except PromptSegError as error:
            self.session.report(str(error), error)

    def _on_errored(self, error: BaseException) -> None:
        self.session.report(f"segment everything failed: {error}", error)
        self.status_label.setText("failed")

    def _on_aborted(self) -> None:
        self.status_label.setText("cancelled; nothing was added")
        self.session.say("segment everything cancelled; nothing was added")

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._set_running(False)

    # -- the result into the labels layer -------------------------------------------------

    def apply(self, result: EverythingResult, target: Target | None) -> list[dict]:
        """Paint ``result`` on the shown plane as new objects (one undo step); their rows.

        Nothing is written when the result belongs to another image, plane, contrast or
        model than the one shown now.
        """
        session = self.session
        current = self.session.current_target()
        if target is None or target != current or not self._same_pixels(result):
            self.status_label.setText("dropped: the image, slice or model changed meanwhile")
            session.say("segment everything: result dropped (the view changed)")
            return []
        labels = session.ensure_labels_layer()
        if labels is None:
            return []
        ref = current.ref
        plane = objects.plane_of(labels, ref)
        try:
            placement = place_objects(
                plane,
                result.masks,
                confidence_order(result.masks),
                first_id=next_label_id(labels.data),
                model=session.segmenter.name,
                slice_index=ref.fixed,
            )
        except LabelsError as error:
            session.report(str(error))
            return []
        if not placement.objects:
            reason = "no mask passed the thresholds" if not result.masks else "all lie on objects"
            self.status_label.setText(f"no new objects: {reason}")
            session.say(f"segment everything: no new objects ({reason})")
            return []
        with labels.block_history():
            labels.data_setitem(ref.full_indices(placement.rows, placement.cols), placement.values)
        objects.append_rows(labels, placement.objects)
        self.last_rows = placement.objects
        session.notify_objects_changed()
        first, last = placement.objects[0]["id"], placement.objects[-1]["id"]
        message = (
            f"added {len(placement.objects)} objects (ids {first}–{last}); undo removes them all"
        )
        self.status_label.setText(message)
        session.say(f"segment everything: {message}")
        return placement.objects

    def _same_pixels(self, result: EverythingResult) -> bool:
        """Whether the plane shown now (data, contrast) is the one the result was made from."""
        session = self.session
        if session.embedding is not None:
            return session.embedding.key == result.key
        rgb = slice_rgb(session.image_layer, session.current_slice)
        return session.segmenter.key_for(rgb) == result.key

    # -- helpers --------------------------------------------------------------------------

    def _set_running(self, running: bool, text: str | None = None) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if text is not None:
            self.status_label.setText(text)

    def close(self) -> bool:
        self._waiting = False
        self._slot.cancel()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        disconnect(
            (self.session.embedding_ready, self._on_embedding_ready),
            (self.session.slice_changed, self._on_slice_changed),
        )
        return super().close()


def _int_box(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def _float_box(value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 1.0)
    box.setDecimals(3)
    box.setSingleStep(0.01)
    box.setValue(value)
    return box
