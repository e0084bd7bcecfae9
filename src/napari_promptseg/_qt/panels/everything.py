"""The "Segment everything" section: automatic instance segmentation of the shown plane.

Modes: *AIS* (micro-sam's instance decoder and a seeded watershed, one pass), *APG* (AIS's
objects as prompts refined by SAM's mask decoder) where the model has an instance decoder,
AIS then the default; and the *grid* of point prompts (:func:`core.everything.
iter_segment_everything`) for every model. The button runs the mode in a napari worker on
the plane the viewer shows (the session's embedding is reused from the cache). The result goes
into the labels layer on the main thread as one undo step: new ids above the largest id
in the layer, no existing object overwritten, one features row per object. A result for an
image, plane, contrast or model no longer shown is dropped.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
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
from ..._napari.automatic import PlanesAlong, iter_instances, ref_at, stack_axis
from ..._napari.slices import LayerSnapshot, slice_rgb, spatial_shape
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
from ...core.workflows.instances import APGParams, StackResult, WatershedParams
from ...core.workflows.instances.modes import AIS, APG, GRID, model_modes
from ...core.workflows.instances.stack_objects import stack_placement
from ..workers import BarProgress, WorkerSlot
from .everything_apg import APGOptions
from .registry import disconnect, plane_ready

MODE_TITLES = {
    AIS: "AIS: instance decoder (fast)",
    APG: "APG: AIS + SAM refinement",
    GRID: "grid of point prompts (SAM)",
}


class EverythingPanel(QWidget):
    """Mode, its main parameters, "Segment everything" and Cancel."""

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.mode_box = QComboBox()
        self.mode_box.setToolTip(
            "AIS and APG need a model with an instance decoder (micro-sam's vit_*_lm, "
            "vit_*_em_organelles); the grid works with every model"
        )
        ais = WatershedParams()
        self.center_threshold = _float_box(ais.center_distance_threshold)
        self.center_threshold.setToolTip("seeds where the centre distance is below this")
        self.boundary_threshold = _float_box(ais.boundary_distance_threshold)
        self.boundary_threshold.setToolTip("seeds where the boundary distance is below this")
        self.foreground_threshold = _float_box(ais.foreground_threshold)
        self.foreground_threshold.setToolTip("foreground where the probability is above this")
        self.min_size = _int_box(0, 1_000_000, APGParams().min_size)
        self.min_size.setToolTip("drop objects smaller than this (pixels)")
        self.apg_options = APGOptions()
        self.whole_stack = QCheckBox("whole stack (3D), merged across z")
        self.whole_stack.setToolTip(
            "AIS / APG on every plane along the slider axis next to the view, objects merged "
            "across planes as micro-sam's automatic 3D segmentation does"
        )
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
        form.addRow("Mode", self.mode_box)
        self._ais_rows = [
            ("Center threshold", self.center_threshold),
            ("Boundary threshold", self.boundary_threshold),
            ("Foreground threshold", self.foreground_threshold),
            ("Min size", self.min_size),
            ("", self.whole_stack),
        ]
        self._apg_rows = [("", self.apg_options)]
        self._grid_rows = [
            ("Points per side", self.points_per_side),
            ("IoU threshold", self.iou_threshold),
            ("Stability threshold", self.stability_threshold),
            ("Min region area", self.min_area),
            ("Crop layers", self.crop_layers),
        ]
        for title, box in self._ais_rows + self._apg_rows + self._grid_rows:
            form.addRow(title, box)
        self._form = form
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
        self.mode_box.currentIndexChanged.connect(self._show_mode_rows)
        session.embedding_ready.connect(self._on_embedding_ready)
        session.slice_changed.connect(self._on_slice_changed)
        session.model_changed.connect(self._on_model_changed)
        self._stack_axis: int | None = None
        self._stop = False
        self._on_model_changed()

    # -- modes ----------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return str(self.mode_box.currentData() or GRID)

    def set_mode(self, mode: str) -> None:
        index = self.mode_box.findData(mode)
        if index < 0:
            offered = ", ".join(
                str(self.mode_box.itemData(i)) for i in range(self.mode_box.count())
            )
            raise ValueError(f"mode {mode!r} is not offered for this model (offered: {offered})")
        self.mode_box.setCurrentIndex(index)

    def _on_model_changed(self, *_args) -> None:
        """List the modes the model has, AIS first (and chosen) where it has a decoder."""
        modes = model_modes(self.session.segmenter)
        self.mode_box.blockSignals(True)
        self.mode_box.clear()
        for mode in modes:
            self.mode_box.addItem(MODE_TITLES[mode], mode)
        self.mode_box.setCurrentIndex(0)
        self.mode_box.blockSignals(False)
        self._show_mode_rows()

    def _show_mode_rows(self, *_args) -> None:
        grid = self.mode == GRID
        if not grid:  # micro-sam's own default per mode (AIS keeps every object, APG >= 25 px)
            defaults = WatershedParams() if self.mode == AIS else APGParams()
            self.min_size.setValue(defaults.min_size)
        apg = self.mode == APG
        shown_rows = ((self._grid_rows, grid), (self._ais_rows, not grid), (self._apg_rows, apg))
        for rows, shown in shown_rows:
            for _title, box in rows:
                box.setVisible(shown)  # (QFormLayout.setRowVisible needs Qt 6.4)
                label = self._form.labelForField(box)
                if label is not None:
                    label.setVisible(shown)

    def instance_params(self) -> WatershedParams | APGParams:
        """The AIS or APG parameters of the boxes (micro-sam's defaults for the others)."""
        common = {
            "center_distance_threshold": self.center_threshold.value(),
            "boundary_distance_threshold": self.boundary_threshold.value(),
            "foreground_threshold": self.foreground_threshold.value(),
            "min_size": self.min_size.value(),
        }
        if self.mode == AIS:
            return WatershedParams(**common)
        return APGParams(**common, **self.apg_options.values())

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
            if self.mode == GRID:
                self.params().validate()
        except PromptSegError as error:
            session.report(str(error))
            return
        if session.embedding is None and session.tiled is None:
            # the session is embedding this plane: start when it is ready, not twice at once
            # (a large plane is embedded tile by tile in the run itself)
            self._waiting = True
            self._set_running(True, "waiting for the image embedding…")
            return
        self._start()

    def _start(self) -> None:
        session, layer, ref = self.session, self.session.image_layer, self.session.current_slice
        segmenter, params, mode = session.segmenter, self.params(), self.mode
        self._target = session.current_target()
        snapshot = LayerSnapshot.of(layer)  # the worker reads no layer napari may change
        instance_params = self.instance_params() if mode != GRID else None
        self._stack_axis = (
            stack_axis(ref) if mode != GRID and self.whole_stack.isChecked() else None
        )
        self._stop = False
        if self._stack_axis is not None:
            planes = PlanesAlong(
                snapshot, ref, self._stack_axis, spatial_shape(layer)[self._stack_axis]
            )

            def stack_job():
                from ...core.workflows.distributed.instance_tasks import instances_for

                instances = instances_for(segmenter)
                steps = instances.iter_stack(
                    planes, instance_params, should_cancel=lambda: self._stop
                )
                return (yield from steps)

            job = stack_job
        else:

            def job():
                rgb = slice_rgb(snapshot, ref)
                if instance_params is None:
                    return (yield from iter_segment_everything(segmenter, rgb, params))
                return (yield from iter_instances(segmenter, rgb, mode, instance_params))

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
        self._set_running(True, f"segmenting everything ({mode}){where}…")
        session.say(f"segmenting everything in {layer.name}{where}…")

    def cancel(self) -> None:
        """Stop after the current batch of points; nothing is written. A whole stack stops
        after the plane in progress and its planes done are written."""
        if self._waiting:
            self._waiting = False
            self._set_running(False, "cancelled")
        if self._slot.running and self._stack_axis is not None:
            self._stop = True  # the run returns the planes done
            self.cancel_button.setEnabled(False)
        elif self._slot.running:
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

    def _on_returned(self, result) -> None:
        try:
            if isinstance(result, StackResult):
                self.apply_stack(result, self._target, self._stack_axis)
            else:
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
            empty = "no object found" if result.mode != GRID else "no mask passed the thresholds"
            reason = empty if not result.masks else "all lie on objects"
            self.status_label.setText(f"no new objects: {reason}")
            session.say(f"segment everything: no new objects ({reason})")
            return []
        if result.mode != GRID:  # the decoder's confidence is its foreground, not an IoU
            for row in placement.objects:
                row["foreground"] = round(float(row["predicted_iou"]), 4)
                row["predicted_iou"] = row["stability"] = float("nan")
                row["prompts"] = result.mode
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

    def apply_stack(
        self, result: StackResult, target: Target | None, axis: int | None
    ) -> list[dict]:
        """Paint a whole-stack result as new 3D objects (one undo step); their rows."""
        session = self.session
        current = session.current_target()
        if target is None or target != current or axis is None:
            self.status_label.setText("dropped: the image, slice or model changed meanwhile")
            return []
        labels = session.ensure_labels_layer()
        if labels is None:
            return []
        ref = current.ref
        existing = np.stack(
            [objects.plane_of(labels, ref_at(ref, axis, z)) for z in range(len(result.labels))]
        )
        try:
            placement = stack_placement(
                existing,
                result.labels,
                first_id=next_label_id(labels.data),
                model=session.segmenter.name,
                mode=self.mode,
            )
        except LabelsError as error:
            session.report(str(error))
            return []
        if not placement.rows:
            self.status_label.setText("no new objects: none found, or all lie on objects")
            return []
        with labels.block_history():  # every plane in one undo step
            for z, (rows, cols, values) in placement.planes.items():
                labels.data_setitem(ref_at(ref, axis, z).full_indices(rows, cols), values)
        others = [str(i) for a, i in enumerate(ref.index) if i is not None and a != axis]
        for row in placement.rows:  # a 3D object's row, as a propagated object's
            row["slice"], row["slice_axis"] = ",".join(others), axis
        objects.append_rows(labels, placement.rows)
        self.last_rows = placement.rows
        session.notify_objects_changed()
        done = (
            f"{result.planes_done} of {len(result.labels)} planes"
            if result.cancelled
            else (f"{len(result.labels)} planes")
        )
        message = f"added {len(placement.rows)} 3D objects over {done}; undo removes them all"
        self.status_label.setText(message)
        session.say(f"segment everything: {message}")
        return placement.rows

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
            (self.session.model_changed, self._on_model_changed),
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
