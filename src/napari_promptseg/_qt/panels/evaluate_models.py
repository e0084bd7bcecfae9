"""The model list of the "Evaluate" section: which models to compare, ticked.

* **current model** — the session's model, with its memory cache and disk store, so planes
  already embedded in the session cost nothing (ticked by default);
* registry models **already downloaded** (listed unticked; an evaluation never downloads);
* checkpoint files added with "Add checkpoint…" (ticked when added).

Models other than the current one are loaded in the evaluation's worker when their turn
comes and dropped after (see ``core.workflows.evaluation.run``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.sam.engine import PromptSegmenter

CURRENT = "current"
NAME = "name"
CHECKPOINT = "checkpoint"
ROLE = Qt.ItemDataRole.UserRole


@dataclass(frozen=True)
class ModelChoice:
    """One ticked model: the session's (``current``), a registry ``name`` or a ``checkpoint``."""

    kind: str
    value: str = ""

    def source(
        self, current: PromptSegmenter | None, store: Any
    ) -> PromptSegmenter | Callable[[], PromptSegmenter]:
        """What ``iter_evaluate`` takes: the session's engine, or a loader run in the worker."""
        if self.kind == CURRENT:
            if current is None:
                raise ValueError("no current model")
            return current
        name = self.value if self.kind == NAME else None
        checkpoint = self.value if self.kind == CHECKPOINT else None

        def load() -> PromptSegmenter:
            from ...core.workflows.instances.clicks import use_instance_clicks

            segmenter = PromptSegmenter.load(
                name, checkpoint=checkpoint, progress=False, offline=True, store=store
            )
            use_instance_clicks(segmenter)  # the demo model: clicks select its AIS objects
            return segmenter

        return load


class ModelList(QWidget):
    """Checkable list of models plus "Add checkpoint…"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.add_button = QPushButton("Add checkpoint…")
        self.add_button.setToolTip("compare a local SAM checkpoint (e.g. a finetuned model)")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self._add(ModelChoice(CURRENT), "current model", checked=True)
        for name in _downloaded_models():
            self._add(ModelChoice(NAME, name), name, checked=False)
        self.add_button.clicked.connect(self._ask_checkpoint)

    def set_current_name(self, name: str | None) -> None:
        """Show the session's model name on the first row (disabled without a model)."""
        item = self.list.item(0)
        item.setText(f"current model ({name})" if name else "current model (none loaded)")
        flags = item.flags()
        enabled = Qt.ItemFlag.ItemIsEnabled
        item.setFlags(flags | enabled if name else flags & ~enabled)

    def add_checkpoint(self, path: str | Path) -> None:
        """List checkpoint ``path`` (ticked); a file already listed is only ticked."""
        path = str(Path(path).expanduser())
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(ROLE) == ModelChoice(CHECKPOINT, path):
                item.setCheckState(Qt.CheckState.Checked)
                return
        self._add(ModelChoice(CHECKPOINT, path), Path(path).name, checked=True, tip=path)

    def set_checked(self, kind: str, value: str = "", checked: bool = True) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(ROLE) == ModelChoice(kind, value):
                state = Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
                item.setCheckState(state)

    def chosen(self) -> list[ModelChoice]:
        """The ticked, enabled models, top to bottom."""
        choices = []
        for row in range(self.list.count()):
            item = self.list.item(row)
            enabled = bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)
            if enabled and item.checkState() == Qt.CheckState.Checked:
                choices.append(item.data(ROLE))
        return choices

    def _add(self, choice: ModelChoice, text: str, *, checked: bool, tip: str = "") -> None:
        item = QListWidgetItem(text)
        item.setData(ROLE, choice)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        if tip:
            item.setToolTip(tip)
        self.list.addItem(item)

    def _ask_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM checkpoint", "", "Checkpoints (*.pth *.pt *.ckpt *.safetensors);;All (*)"
        )
        if path:
            self.add_checkpoint(path)


def _downloaded_models() -> list[str]:
    """Registry models whose file is in the cache (never touches the network)."""
    from ...core.models.registry import MODELS, is_cached

    names = []
    for name in MODELS:
        try:
            if is_cached(name):
                names.append(name)
        except Exception:  # an odd registry entry must not break the dock
            continue
    return names
