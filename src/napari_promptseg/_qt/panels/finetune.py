"""The "Finetune" section: teach the current model the objects committed in this session.

"Finetune" takes the image layer's planes that hold objects in the labels layer
(:func:`..._napari.finetune_data.training_planes`) and runs
:func:`core.workflows.finetune.iter_finetune` in a background worker at low priority: the
prompt encoder and mask decoder train on the embeddings the session already computed
(mode "decoder"), or every weight ("full", for a GPU), or micro-sam's instance decoder (AIS,
:mod:`core.workflows.finetune.instance_training`, saved in micro-sam's format). Progress
shows the training loss and the held-out figures (mIoU@1; for the instance decoder AIS's
mean matched IoU and F1); Cancel stops at the next step and writes nothing.
When training ends the model is saved into "my models" and loaded through the normal
loader, and the session switches to it: the model list shows it selected, and clicks decode
with it. Training never touches the layers.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..._napari.finetune_data import training_planes
from ...core.errors import PromptSegError
from ...core.models.loading import load_model
from ...core.sam.engine import PromptSegmenter
from ...core.workflows.finetune import (
    FinetuneProgress,
    FinetuneSettings,
    check_model_name,
    iter_finetune,
    save_finetuned,
)
from ...core.workflows.finetune.data import check_enough
from ...core.workflows.finetune.instance_training import (
    InstanceTrainingSettings,
    iter_train_instance_decoder,
    save_instance_decoder,
)
from ...core.workflows.finetune.instance_validation import InstanceFigures
from ...core.workflows.instances.clicks import use_instance_clicks
from ..workers import WorkerSlot
from .registry import disconnect, say

INSTANCE_DECODER = "instance-decoder"
MODES = {
    "decoder": "prompt encoder + mask decoder",
    "full": "every weight (GPU)",
    INSTANCE_DECODER: "instance decoder (AIS)",
}


class FinetunePanel(QWidget):
    """Name, mode, steps, seed; Finetune / Cancel; progress; the new model in use."""

    def __init__(self, viewer: Any, session: Any) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.name = QLineEdit()
        self.name.setPlaceholderText("name of the new model")
        self.name.setToolTip("the new model joins 'my models' under this name")
        self.mode = QComboBox()
        for key, text in MODES.items():
            self.mode.addItem(text, key)
        self.mode.setToolTip(
            "decoder: trains on the embeddings already computed, minutes on a CPU; "
            "every weight: the image encoder too, needs a GPU for SAM-sized models; "
            "instance decoder: micro-sam's AIS head (foreground, centres, boundaries) on the "
            "embeddings, saved in micro-sam's format"
        )
        self.steps = QSpinBox()
        self.steps.setRange(1, 100_000)
        self.steps.setValue(FinetuneSettings().max_steps)
        self.steps.setToolTip("at most this many steps; early stopping usually ends sooner")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("the same seed, objects and settings repeat a run")
        self.run_button = QPushButton("Finetune")
        self.run_button.setToolTip("train on the committed objects of the image shown")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.figures_label = QLabel("")
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Train", self.mode)
        form.addRow("Steps", self.steps)
        form.addRow("Seed", self.seed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.figures_label)
        layout.addWidget(self.status_label)

        self.saved: Any = None  # the SavedModel of the last finetune
        self._slot = WorkerSlot(self)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        session.model_changed.connect(self._on_model_changed)
        self._on_model_changed()

    @property
    def running(self) -> bool:
        return self._slot.running

    def settings(self) -> FinetuneSettings:
        return FinetuneSettings(
            mode=self.mode.currentData(), max_steps=self.steps.value(), seed=self.seed.value()
        )

    def instance_settings(self) -> InstanceTrainingSettings:
        return InstanceTrainingSettings(max_steps=self.steps.value(), seed=self.seed.value())

    # -- run ------------------------------------------------------------------------------

    def run(self) -> None:
        """Check the data, then finetune in the background; the new model is used after."""
        if self._slot.running:
            return
        session = self.session
        segmenter = session.segmenter
        try:
            if segmenter is None:
                raise PromptSegError("load a model to finetune first.")
            name = check_model_name(self.name.text().strip())
            instance = self.mode.currentData() == INSTANCE_DECODER
            settings = self.instance_settings() if instance else self.settings()
            planes = training_planes(session.image_layer, session.labels_layer)
            count = check_enough(planes, settings.min_objects)
        except PromptSegError as error:
            say(session, self.status_label, str(error), problem=True)
            return

        def job():
            if instance:  # from the model's own decoder when its file has one
                steps = iter_train_instance_decoder(
                    segmenter, planes, settings, base_checkpoint=segmenter.checkpoint
                )
                result = yield from steps
                saved = save_instance_decoder(result, name)
            else:
                result = yield from iter_finetune(segmenter, planes, settings)
                saved = save_finetuned(result, name)
            model = load_model(saved.name, device=segmenter.device, progress=False)
            trained = PromptSegmenter.from_model(model, store=segmenter.store)
            use_instance_clicks(trained)  # a finetuned demo keeps its clicks
            return saved, result, trained

        self.saved = None
        self.progress_bar.setRange(0, settings.max_steps)
        self.progress_bar.setValue(0)
        self.progress_bar.setVisible(True)
        self.figures_label.setText("")
        self._slot.start(
            job,
            background=True,
            yielded=self._on_progress,
            returned=self._on_returned,
            errored=self._on_errored,
            aborted=self._on_aborted,
            finished=self._on_finished,
        )
        self._set_running(
            True, f"finetuning {segmenter.name} on {count} objects in {len(planes)} plane(s)…"
        )

    def cancel(self) -> None:
        """Stop at the next step; nothing is written and the current model stays."""
        if self._slot.running:
            self._slot.quit()
            self.cancel_button.setEnabled(False)

    def close(self) -> bool:
        self._slot.cancel()
        disconnect((self.session.model_changed, self._on_model_changed))
        return super().close()

    # -- worker callbacks -----------------------------------------------------------------

    def _on_progress(self, progress: FinetuneProgress) -> None:
        if progress.stage == "embedding":
            self.status_label.setText(f"embedding plane {progress.done} / {progress.total}…")
            return
        self.progress_bar.setValue(progress.done)
        parts = [f"step {progress.done} / {progress.total}"]
        if progress.loss is not None:
            parts.append(f"loss {progress.loss:.3f}")
        v = progress.validation
        if isinstance(v, InstanceFigures):
            parts.append(f"val loss {v.loss:.3f}, AIS IoU {v.mean_iou:.2f}, F1 {v.f1:.2f}")
        elif v is not None:
            parts.append(f"val loss {v.loss:.3f}, val mIoU@1 {v.miou_at_1:.2f}")
        self.figures_label.setText("  ·  ".join(parts))
        if progress.stage == "validation":
            self.status_label.setText("validating on the held-out objects…")
        elif progress.stage == "training":
            self.status_label.setText("training…")

    def _on_returned(self, outcome: tuple[Any, Any, PromptSegmenter]) -> None:
        saved, result, segmenter = outcome
        self.saved = saved
        before, after = result.before, result.after
        self.session.set_segmenter(segmenter)  # the model list selects it (model_changed)
        if "f1" in after:  # an instance decoder: AIS on the held-out objects
            figures = (
                f"AIS mean IoU {before['mean_iou']:.2f} → {after['mean_iou']:.2f}, "
                f"F1@0.5 {before['f1']:.2f} → {after['f1']:.2f}"
            )
        else:
            figures = f"mIoU@1 {before['miou_at_1']:.2f} → {after['miou_at_1']:.2f}"
        say(
            self.session,
            self.status_label,
            f"model {saved.name!r} saved and in use: validation {figures} "
            f"({result.metadata['steps']} steps, {result.metadata['stop_reason']})",
        )

    def _on_errored(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, PromptSegError) else f"finetuning failed: {error}"
        self.session.report(message, error)
        self.status_label.setText(message)

    def _on_aborted(self) -> None:
        say(self.session, self.status_label, "finetuning cancelled; nothing was written")

    def _on_finished(self) -> None:
        self.progress_bar.setVisible(False)
        self._set_running(False)

    # -- helpers --------------------------------------------------------------------------

    def _on_model_changed(self, *_: Any) -> None:
        segmenter = self.session.segmenter
        if segmenter is not None and not self.name.text():
            self.name.setText(f"{segmenter.name.split('.')[0]}-finetuned")

    def _set_running(self, running: bool, message: str | None = None) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if message is not None:
            say(self.session, self.status_label, message)
