"""The "Evaluate" section: clicks-to-accuracy of models against a ground-truth labels layer.

Pick a labels layer as ground truth, tick one or more models, set the clicks; "Evaluate" runs
:func:`core.workflows.evaluation.iter_evaluate` on the session's image in a background
worker (progress per object, Cancel stops at the next object or encoder block). The summary
table and the mIoU-vs-clicks plot appear in the dock; "Save report…" writes the same three
files as ``promptseg evaluate -o REPORT.csv``, with the same numbers for the same image,
labels, models and settings. The session's model reuses the session's cached embeddings.
Nothing here changes any layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..._napari.evaluation import EvaluationInput, evaluation_input
from ..._napari.layers import TAG
from ...core.errors import PromptSegError
from ...core.workflows.evaluation import (
    EvaluationProgress,
    EvaluationReport,
    EvaluationSettings,
    iter_evaluate,
)
from ...core.workflows.evaluation.plot import plot_png
from ...core.workflows.evaluation.simulate import DEFAULT_CLICKS, MAX_CLICKS
from ..workers import BarProgress, WorkerSlot
from .evaluate_models import CURRENT, ModelList
from .evaluate_results import EvaluationResults
from .registry import disconnect, say


class EvaluatePanel(QWidget):
    """Ground truth, models, clicks, Evaluate / Cancel, then the results."""

    def __init__(self, viewer: Any, session: Any) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.truth = QComboBox()
        self.truth.setToolTip(
            "a labels layer of the image's planes: 0 background, one id per object"
        )
        self.models = ModelList()
        self.clicks = QSpinBox()
        self.clicks.setRange(1, MAX_CLICKS)
        self.clicks.setValue(DEFAULT_CLICKS)
        self.clicks.setToolTip("interactions per object, the first prompt included (NoC's cap)")
        self.start = QComboBox()
        self.start.addItems(["point", "box"])
        self.start.setToolTip("first prompt: the object's most interior pixel, or its box")
        self.mask_input = QCheckBox("previous mask as SAM's mask input")
        self.mask_input.setChecked(True)
        self.run_button = QPushButton("Evaluate")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.results = EvaluationResults()

        form = QFormLayout()
        form.addRow("Ground truth", self.truth)
        form.addRow("Models", self.models)
        form.addRow("Clicks", self.clicks)
        form.addRow("First prompt", self.start)
        form.addRow("", self.mask_input)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.results)

        self.report: EvaluationReport | None = None
        self._slot = WorkerSlot(self)
        self._progress: BarProgress | None = None
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.results.save_button.clicked.connect(self._save_clicked)
        session.model_changed.connect(self._on_model_changed)
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self._on_model_changed()

    @property
    def running(self) -> bool:
        return self._slot.running

    def settings(self) -> EvaluationSettings:
        return EvaluationSettings(
            clicks=self.clicks.value(),
            start=self.start.currentText(),
            mask_input=self.mask_input.isChecked(),
        )

    def set_ground_truth(self, layer_name: str) -> None:
        index = self.truth.findText(layer_name)
        if index < 0:
            raise ValueError(f"no labels layer named {layer_name!r}")
        self.truth.setCurrentIndex(index)

    # -- run ------------------------------------------------------------------------------

    def run(self) -> None:
        """Evaluate the ticked models on the session's image in the background."""
        if self._slot.running:
            return
        session = self.session
        try:
            inputs = self._inputs()
            settings = self.settings()
            sources = self._sources()
        except PromptSegError as error:
            say(session, self.status_label, str(error), problem=True)
            return

        def job():
            report = yield from iter_evaluate(
                sources, inputs.planes, inputs.labels, settings, classes=inputs.classes
            )
            return report, plot_png(report)  # drawn here: the GUI thread only shows it

        self.report = None
        self.results.clear()
        self.results.default_name = f"{inputs.labels_name}_report.csv"
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
        self._set_running(True, f"evaluating {len(sources)} model(s) on {inputs.labels_name}…")

    def cancel(self) -> None:
        """Stop at the next object or encoder block; nothing is shown or saved."""
        if self._slot.running:
            self._slot.quit()  # its aborted and finished still report
            self.cancel_button.setEnabled(False)

    def save_report(self, path: str | Path) -> list[Path]:
        """Write the last report as ``promptseg evaluate -o path`` does; the files written."""
        paths = list(self.results.save(path))
        say(self.session, self.status_label, f"wrote {paths[0]}, {paths[1].name}, {paths[2].name}")
        return paths

    # -- inputs ---------------------------------------------------------------------------

    def _inputs(self) -> EvaluationInput:
        session = self.session
        if session.image_layer is None:
            raise PromptSegError("evaluation needs an image layer: pick one in Image.")
        layer = self._truth_layer()
        if layer is None:
            raise PromptSegError("pick a labels layer with the ground truth (Ground truth).")
        return evaluation_input(session.image_layer, layer)

    def _sources(self) -> list:
        choices = self.models.chosen()
        if not choices:
            raise PromptSegError("tick at least one model to evaluate.")
        current = self.session.segmenter
        if current is None and any(c.kind == CURRENT for c in choices):
            raise PromptSegError("no current model: load one, or tick another model.")
        store = getattr(current, "store", None)  # other models reuse the same disk store
        return [choice.source(current, store) for choice in choices]

    def _truth_layer(self) -> Any:
        name = self.truth.currentText()
        return next(
            (layer for layer in self.viewer.layers if layer.name == name and _is_labels(layer)),
            None,
        )

    # -- worker callbacks -----------------------------------------------------------------

    def _on_step(self, step: EvaluationProgress) -> None:
        if self._progress is None:
            return
        self._progress.total = step.total
        self._progress.update(step.done - self._progress.n)
        where = f" plane {','.join(map(str, step.plane))}" if step.plane else ""
        if step.stage == "loading":
            text = "loading the next model…"
        elif step.stage == "embedding":
            text = f"{step.model}: embedding{where}…"
        else:
            text = f"{step.model}: {step.done} / {step.total} objects"
        self.status_label.setText(text)

    def _on_returned(self, result: tuple[EvaluationReport, bytes]) -> None:
        report, png = result
        self.report = report
        self.results.show_report(report, png)
        objects = len(report.results) // max(len(report.models), 1)
        say(
            self.session,
            self.status_label,
            f"evaluated {objects} object(s) with {len(report.models)} model(s)",
        )

    def _on_errored(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, PromptSegError) else f"evaluation failed: {error}"
        self.session.report(message, error)
        self.status_label.setText(message)

    def _on_aborted(self) -> None:
        say(self.session, self.status_label, "evaluation cancelled")

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._set_running(False)

    # -- helpers --------------------------------------------------------------------------

    def _save_clicked(self) -> None:
        path = self.results.ask_path()
        if path is None:
            return
        try:
            self.save_report(path)
        except PromptSegError as error:
            say(self.session, self.status_label, str(error), problem=True)

    def _on_model_changed(self, *_: Any) -> None:
        segmenter = self.session.segmenter
        self.models.set_current_name(None if segmenter is None else segmenter.name)

    def _refresh_layers(self, *_: Any) -> None:
        chosen = self.truth.currentText()
        names = [layer.name for layer in self.viewer.layers if _is_labels(layer)]
        self.truth.blockSignals(True)
        self.truth.clear()
        self.truth.addItems(names)
        if chosen in names:
            self.truth.setCurrentIndex(names.index(chosen))
        self.truth.blockSignals(False)

    def _set_running(self, running: bool, text: str | None = None) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if text is not None:
            self.status_label.setText(text)

    def close(self) -> bool:
        self._slot.cancel()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        disconnect(
            (self.session.model_changed, self._on_model_changed),
            (self.viewer.layers.events.inserted, self._refresh_layers),
            (self.viewer.layers.events.removed, self._refresh_layers),
        )
        return super().close()


def _is_labels(layer: Any) -> bool:
    """A labels layer that can hold ground truth: not our preview of the live mask."""
    from napari.layers import Labels

    return isinstance(layer, Labels) and layer.metadata.get(TAG) != "preview"
