"""The "Prompt segmentation" dock widget: shows the session's state and calls its methods."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from .._napari import keys, objects
from .._napari import layers as prompt_layers
from .._napari.navigation import jump_to_object
from ..core.sam.prompts import NEGATIVE
from .dock_fit import start_fitting, vertical_scroll
from .dock_memory import DockLayoutMemory
from .dock_tabs import TaskTabs
from .model_menu import CHECKPOINT_ITEM, CHECKPOINT_TYPES, fill_model_combo, select_model
from .panels.registry import GROUPS, load_panels
from .session import SegmentationSession
from .status_line import StatusLine

if TYPE_CHECKING:
    import napari

NEW_LABELS_ITEM = "new labels layer"


log = logging.getLogger(__name__)


class PromptSegWidget(QWidget):
    """Dock widget for prompted segmentation with SAM.

    Parameters
    ----------
    napari_viewer
        The viewer (npe2 passes it to a parameter annotated ``napari.viewer.Viewer``).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = SegmentationSession(napari_viewer)
        self._checkpoint: Path | None = None
        self._build()
        self._connect()
        self._refresh_layer_choices()
        keys.bind(self.viewer, self.session)
        self._on_image_chosen()
        self._autoload_cached_model()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        # The prompt -> mask -> commit loop on top, always there; below it the other sections
        # in one tab per task. Both scroll on their own (the dock is taller than a laptop
        # screen), and the user can move the split between them.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        loop = QWidget()
        layout = QVBoxLayout(loop)

        setup = QGroupBox("Image and model")
        form = QFormLayout(setup)
        self.image_combo = QComboBox()
        form.addRow("Image", self.image_combo)
        self.model_combo = QComboBox()  # grouped by family, with download size and speed here
        fill_model_combo(self.model_combo)
        self.model_type_combo = QComboBox()
        self.model_type_combo.addItems(list(CHECKPOINT_TYPES))
        self.model_type_combo.setToolTip(
            "model type of a checkpoint file (auto: read from the file)"
        )
        self.model_type_combo.setVisible(False)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.model_type_combo)
        form.addRow("Model", model_row)
        self.device_combo = QComboBox()
        self.device_combo.addItems(_device_names())
        self.load_button = QPushButton("Load model")
        device_row = QHBoxLayout()
        device_row.addWidget(self.device_combo, 1)
        device_row.addWidget(self.load_button)
        form.addRow("Device", device_row)
        # elided: a long model name (a finetuned one) and device must not widen the dock
        self.model_label = QElidingLabel("no model loaded")
        form.addRow("In use", self.model_label)
        # shown whole (it names URLs and folders), with a Copy button
        self.status_line = StatusLine("choose a model and press Load model")
        self.status_label = self.status_line.label
        # always shown: hiding and showing it relayouts the dock, a costly repaint
        # under software OpenGL right when the encoder starts
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("embedding: idle")
        self.progress_bar.setValue(0)
        form.addRow(self.status_line)
        form.addRow(self.progress_bar)
        layout.addWidget(setup)

        prompts = QGroupBox("Prompts")
        prompt_layout = QVBoxLayout(prompts)
        tools = QHBoxLayout()
        self.points_button = QPushButton("Points")
        self.box_button = QPushButton("Box")
        self.scribble_button = QPushButton("Scribble")
        for button in (self.points_button, self.box_button, self.scribble_button):
            tools.addWidget(button)
        prompt_layout.addLayout(tools)
        self.label_button = QPushButton("Next prompt: positive (N)")
        self.label_button.setCheckable(True)
        prompt_layout.addWidget(self.label_button)
        layout.addWidget(prompts)

        mask = QGroupBox("Mask")
        mask_layout = QVBoxLayout(mask)
        self.score_label = QLabel("no mask yet")
        self.score_label.setTextFormat(Qt.RichText)
        # its width changes with every click: it must not resize the dock
        self.score_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        mask_layout.addWidget(self.score_label)
        candidates = QHBoxLayout()
        self.candidate_group = QButtonGroup(self)
        self.candidate_buttons = []
        for index in range(3):
            button = QPushButton(f"{index + 1}")
            button.setCheckable(True)
            button.setEnabled(False)
            button.setToolTip("one of SAM's candidate masks for an ambiguous prompt (key V cycles)")
            self.candidate_group.addButton(button, index)
            self.candidate_buttons.append(button)
            candidates.addWidget(button)
        mask_layout.addLayout(candidates)
        layout.addWidget(mask)

        output = QGroupBox("Objects")
        output_form = QFormLayout(output)
        self.labels_combo = QComboBox()
        output_form.addRow("Labels layer", self.labels_combo)
        self.overwrite_check = QCheckBox("overwrite existing objects")
        output_form.addRow(self.overwrite_check)
        actions = QHBoxLayout()
        self.commit_button = QPushButton("Commit (C)")
        self.clear_button = QPushButton("Clear (X)")
        self.undo_button = QPushButton("Undo")
        for button in (self.commit_button, self.clear_button, self.undo_button):
            actions.addWidget(button)
        output_form.addRow(actions)
        self.confidence_check = QCheckBox("colour objects by confidence")
        output_form.addRow(self.confidence_check)
        self.review_threshold = QDoubleSpinBox()
        self.review_threshold.setRange(0.0, 1.0)
        self.review_threshold.setSingleStep(0.05)
        self.review_threshold.setValue(0.85)
        output_form.addRow("Review below IoU", self.review_threshold)
        self.review_list = QListWidget()
        # four rows, then it scrolls: the loop above the tabs stays short
        rows = self.review_list.fontMetrics().lineSpacing() * 4
        self.review_list.setMaximumHeight(rows + 2 * self.review_list.frameWidth() + 4)
        self.review_list.setToolTip("objects SAM was least sure of; click one to go to it")
        output_form.addRow(self.review_list)
        layout.addWidget(output)

        loaded = load_panels(self.viewer, self.session)
        self.panels = [panel for _group, _title, panel in loaded]
        help_text = "  ".join(f"<b>{key}</b> {text}" for key, text in keys.SHORTCUTS)
        shortcuts = QLabel(help_text)
        shortcuts.setWordWrap(True)
        shortcuts.setTextFormat(Qt.RichText)
        self.tabs = TaskTabs(loaded, GROUPS, footers={GROUPS[0]: shortcuts})
        self.sections = self.tabs.sections  # title -> QCollapsible
        self.loop_scroll = vertical_scroll(loop)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.loop_scroll)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 0)  # a taller window gives the tabs the room
        self.splitter.setStretchFactor(1, 1)
        outer.addWidget(self.splitter)
        # long layer, model and option names are elided in their combos, not widening the dock
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(12)
        self._layout_memory = DockLayoutMemory(self.tabs, self.splitter)
        self._watching_window = False  # no reference to it: napari checks windows are freed

    def _connect(self) -> None:
        session = self.session
        session.status.connect(self.status_label.setText)
        session.problem.connect(_notify)
        session.progress.connect(self._on_progress)
        session.result_changed.connect(self._on_result_changed)
        session.objects_changed.connect(self._on_objects_changed)
        session.model_changed.connect(self._on_model_changed)
        # the first embedding of a model measured its speed here: show it in the list
        session.embedding_ready.connect(lambda _: fill_model_combo(self.model_combo))
        self.image_combo.currentIndexChanged.connect(self._on_image_chosen)
        self.model_combo.currentIndexChanged.connect(self._on_model_choice)
        self.load_button.clicked.connect(self.load_model)
        self.points_button.clicked.connect(lambda: self._activate("points", "add"))
        self.box_button.clicked.connect(lambda: self._activate("boxes", "add_rectangle"))
        self.scribble_button.clicked.connect(lambda: self._activate("scribbles", "add_path"))
        self.label_button.clicked.connect(lambda: self.session.toggle_next_label())
        self.candidate_group.idClicked.connect(self.session.select_candidate)
        self.labels_combo.currentIndexChanged.connect(self._on_labels_chosen)
        self.overwrite_check.toggled.connect(lambda on: setattr(self.session, "overwrite", on))
        self.commit_button.clicked.connect(self.session.commit)
        self.clear_button.clicked.connect(self.session.clear)
        self.undo_button.clicked.connect(self.session.undo)
        self.confidence_check.toggled.connect(self._apply_confidence_colours)
        self.review_threshold.valueChanged.connect(self._refresh_review)
        self.review_list.itemClicked.connect(self._on_review_clicked)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._refresh_layer_choices)
        session.status.connect(self._sync_label_button)

    # -- choices --------------------------------------------------------------------------

    def _refresh_layer_choices(self, event=None) -> None:
        from napari.layers import Image, Labels

        images = [layer for layer in self.viewer.layers if isinstance(layer, Image)]
        labels = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and layer.metadata.get(prompt_layers.TAG) != "preview"
        ]
        _fill_combo(self.image_combo, [(layer.name, layer) for layer in images])
        if self.session.image_layer in images:  # e.g. a panel switched the image
            self.image_combo.setCurrentIndex(images.index(self.session.image_layer))
        _fill_combo(
            self.labels_combo, [(NEW_LABELS_ITEM, None)] + [(layer.name, layer) for layer in labels]
        )
        if self.session.labels_layer is not None and self.session.labels_layer in labels:
            self.labels_combo.setCurrentIndex(labels.index(self.session.labels_layer) + 1)

    def _on_image_chosen(self, index=None) -> None:
        layer = self.image_combo.currentData()
        if layer is not self.session.image_layer:
            self.session.set_image_layer(layer)
            keys.bind_prompt_layers(self.viewer, self.session)

    def _on_labels_chosen(self, index=None) -> None:
        layer = self.labels_combo.currentData()
        if layer is not self.session.labels_layer:
            self.session.set_labels_layer(layer)
            self._on_objects_changed()

    def select_model(self, name: str) -> bool:
        """Select registry model ``name`` in the list; False if it is not listed."""
        return select_model(self.model_combo, name)

    def _on_model_choice(self, index: int | None = None) -> None:
        is_file = self.model_combo.currentData() == CHECKPOINT_ITEM
        self.model_type_combo.setVisible(is_file)
        if is_file:
            path, _ = QFileDialog.getOpenFileName(
                self,
                "SAM, MobileSAM or SAM 2.1 checkpoint",
                "",
                "PyTorch checkpoints (*.pth *.pt *.bin);;All files (*)",
            )
            self._checkpoint = Path(path) if path else None
            if self._checkpoint is not None:
                self.status_label.setText(f"checkpoint {self._checkpoint.name}: press Load model")

    def load_model(self) -> None:
        name = self.model_combo.currentData()
        device = self.device_combo.currentText()
        device = None if device == "auto" else device
        if name == CHECKPOINT_ITEM:
            if self._checkpoint is None:
                _notify("choose a checkpoint file first")
                return
            model_type = self.model_type_combo.currentText()
            self.session.load_model(
                checkpoint=self._checkpoint,
                model_type=None if model_type == "auto" else model_type,
                device=device,
            )
        else:
            self.session.load_model(name, device=device)

    def _autoload_cached_model(self) -> None:
        # Loading a model already on disk is not a download: do it so the user can start.
        # Otherwise say what is missing and where it goes, before anything is fetched.
        from ..core.models.registry import DEFAULT_MODEL, get_spec, is_cached, list_models

        if is_cached(DEFAULT_MODEL):
            self.select_model(DEFAULT_MODEL)
            self.load_model()
            return
        spec = get_spec(DEFAULT_MODEL)
        row = next(r for r in list_models() if r["name"] == DEFAULT_MODEL)
        folder = Path(row["path"]).parent
        self.status_label.setText(
            f"{DEFAULT_MODEL} is not downloaded yet ({row['size_text']}). Press Load model to "
            f"download it, or, offline, save {spec.url} as {spec.filename} in {folder}."
        )

    def _activate(self, role: str, mode: str) -> None:
        self.session.ensure_prompt_layers()
        keys.bind_prompt_layers(self.viewer, self.session)
        layer = prompt_layers.find_layer(self.viewer, role)
        if layer is None:
            _notify("choose an image layer first")
            return
        self.viewer.layers.selection.active = layer
        layer.mode = mode

    # -- session state → widgets ----------------------------------------------------------

    def _on_model_changed(self, name: str) -> None:
        from ..core.models.device import describe_device

        segmenter = self.session.segmenter
        device = describe_device(segmenter.sam.device) if segmenter is not None else ""
        self.model_label.setText(f"{name} on {device}")
        self.model_label.setToolTip(self.model_label.text())
        # a model made in this session (Finetune) joins the list ("my models"): show it chosen.
        # A built-in registry name never moves the user's choice in the list.
        from ..core.models.registry import MODELS, MY_MODELS_GROUP

        spec = MODELS.get(name)
        if spec is not None and spec.group != MY_MODELS_GROUP:
            return
        if self.model_combo.findData(name) < 0:
            fill_model_combo(self.model_combo)
            self.model_combo.blockSignals(True)
            select_model(self.model_combo, name)
            self.model_combo.blockSignals(False)

    def _on_progress(self, done: int, total: int) -> None:
        if total:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(done)
            self.progress_bar.setFormat("embedding: %p%")
        else:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(1 if self.session.embedding is not None else 0)
            self.progress_bar.setFormat(
                "embedding: ready" if self.session.embedding else "embedding: idle"
            )

    def _on_result_changed(self) -> None:
        result = self.session.result
        for index, button in enumerate(self.candidate_buttons):
            has = result is not None and index < len(result.masks)
            button.setEnabled(has)
            button.setVisible(has or index == 0)
            if has:
                star = " ★" if index == result.best else ""
                button.setText(f"{index + 1}: {result.iou[index]:.2f}{star}")
                button.setChecked(index == self.session.candidate)
            else:
                button.setText(f"{index + 1}")
        if result is None:
            self.score_label.setText("no mask yet")
            return
        index = self.session.candidate
        iou, stability = float(result.iou[index]), float(result.stability[index])
        color = objects.confidence_color(iou)
        hex_color = "#{:02x}{:02x}{:02x}".format(*(int(255 * c) for c in color[:3]))
        self.score_label.setText(
            f"<span style='font-size:14pt;color:{hex_color}'>{self.session.score_name()} "
            f"{iou:.3f}</span>"
            f" &nbsp; stability {stability:.3f} &nbsp; {int(result.masks[index].sum())} px"
        )

    def _sync_label_button(self, *_) -> None:
        negative = self.session.next_label == NEGATIVE
        self.label_button.setChecked(negative)
        self.label_button.setText(f"Next prompt: {'negative' if negative else 'positive'} (N)")

    def _on_objects_changed(self) -> None:
        if self.labels_combo.currentData() is not self.session.labels_layer:
            self._refresh_layer_choices()  # an edit picked an object in another labels layer
        self._apply_confidence_colours(self.confidence_check.isChecked())
        self._refresh_review()

    def _apply_confidence_colours(self, on: bool) -> None:
        labels = self.session.labels_layer
        if labels is None:
            return
        if on:
            labels.metadata.setdefault(objects.CONFIDENCE_COLORMAP_KEY, labels.colormap)
            labels.colormap = objects.confidence_colormap(labels)
        elif objects.CONFIDENCE_COLORMAP_KEY in labels.metadata:
            labels.colormap = labels.metadata.pop(objects.CONFIDENCE_COLORMAP_KEY)

    def _refresh_review(self, *_) -> None:
        self.review_list.clear()
        labels = self.session.labels_layer
        if labels is None:
            return
        for row in objects.low_confidence(labels, self.review_threshold.value()):
            where = f", slice {row['slice']}" if row.get("slice") else ""
            item = QListWidgetItem(
                f"object {row['id']}: IoU {float(row['predicted_iou']):.2f}{where}"
            )
            item.setData(Qt.UserRole, row)
            self.review_list.addItem(item)

    def _on_review_clicked(self, item: QListWidgetItem) -> None:
        labels = self.session.labels_layer
        if labels is not None:
            jump_to_object(self.viewer, labels, item.data(Qt.UserRole))

    # -- teardown -------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        # napari sizes a new dock by its hint: as narrow as nothing is cut off (wrapped
        # labels would ask for more), to leave the canvas the room
        return QSize(self.minimumSizeHint().width(), super().sizeHint().height())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._watch_window()
        start_fitting(self)  # styled now: the widths are the ones the user will see
        # after napari has laid the window out: the heights mean something then
        QTimer.singleShot(0, self._layout_memory.restore_split)

    def hideEvent(self, event) -> None:
        # napari hides docked widgets when its window closes (no closeEvent for them)
        self._layout_memory.save_now()
        super().hideEvent(event)

    def _watch_window(self) -> None:
        """Stop the session's background torch work when napari's window goes away.

        napari closes its window without closing docked widgets (no closeEvent reaches
        them), and an embedding or warm-up decode of a closed viewer must not run on in the
        process (it crashed a later test once). The slot holds the embedder, not this
        widget: when the window is destroyed, this widget's C++ side is gone already.
        """
        window = self.window()
        if window is self or self._watching_window:
            return
        self._watching_window = True
        embedder = self.session.embedder
        window.destroyed.connect(lambda *_: stop_background_work(embedder))

    def closeEvent(self, event) -> None:
        self.close_session()
        super().closeEvent(event)

    def close_session(self) -> None:
        self._layout_memory.save_now()
        for panel in self.panels:
            panel.close()
        keys.unbind(self.viewer)
        self.session.close()
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.disconnect(self._refresh_layer_choices)


def stop_background_work(embedder: Any, timeout_s: float = 10.0) -> None:
    """Cancel the embedding job and wait until its thread computes no more."""
    with contextlib.suppress(RuntimeError):  # a listener's Qt object is gone: stop is set
        embedder.cancel()
    if not embedder.wait_idle(timeout_s):
        log.warning(
            "the embedding worker did not stop within %.0f s of the window closing", timeout_s
        )


def _fill_combo(combo: QComboBox, items) -> None:
    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    for text, data in items:
        combo.addItem(text, data)
    index = next((i for i, (_, data) in enumerate(items) if data is current), 0)
    combo.setCurrentIndex(index)
    combo.blockSignals(False)
    if combo.currentData() is not current:
        combo.currentIndexChanged.emit(combo.currentIndex())


def _device_names() -> list[str]:
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def _notify(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)
