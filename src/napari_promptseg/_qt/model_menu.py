"""The model list of the dock widget: models grouped by family, with download size and speed.

Built from :func:`napari_promptseg.core.models.menu.model_menu`: a bold, unselectable heading
per group (Demo (offline), SAM, MobileSAM, SAM 2.1, micro-sam microscopy models, checkpoint file), under it
one entry per model, ``"vit_t  ·  39 MiB  ·  ≈ 1.2 s / image here (cpu)"``. Each entry's
item data is what :meth:`load_model` needs: the registry name, or :data:`CHECKPOINT_ITEM`.
A model whose family's package is missing stays listed (greyed) and its tooltip says how to
install it.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QStandardItem, QStandardItemModel
from qtpy.QtWidgets import QComboBox

CHECKPOINT_ITEM = "checkpoint file…"
CHECKPOINT_GROUP = "checkpoint file"
_INDENT = "    "

#: model types offered for a checkpoint file ("auto": recognised from its weights)
CHECKPOINT_TYPES = (
    "auto",
    "vit_b",
    "vit_l",
    "vit_h",
    "vit_t",
    "sam2.1_hiera_t",
    "sam2.1_hiera_s",
    "sam2.1_hiera_b+",
    "sam2.1_hiera_l",
)


def fill_model_combo(combo: QComboBox) -> None:
    """(Re)build the grouped list, keeping the selected model; emits no change signal."""
    from ..core.models.menu import model_menu
    from ..core.models.registry import DEFAULT_MODEL

    current = combo.currentData()
    model = QStandardItemModel(combo)
    for group, entries in [*model_menu(), (CHECKPOINT_GROUP, None)]:
        heading = QStandardItem(group)
        heading.setFlags(Qt.ItemFlag.NoItemFlags)  # a heading cannot be chosen
        font = heading.font()
        font.setBold(True)
        heading.setFont(font)
        model.appendRow(heading)
        if entries is None:
            item = QStandardItem(_INDENT + CHECKPOINT_ITEM)
            item.setData(CHECKPOINT_ITEM, Qt.ItemDataRole.UserRole)
            item.setToolTip("a local SAM, MobileSAM or SAM 2.1 checkpoint file")
            model.appendRow(item)
            continue
        for entry in entries:
            item = QStandardItem(_INDENT + entry.text)
            item.setData(entry.name, Qt.ItemDataRole.UserRole)
            item.setToolTip(entry.tooltip)
            if not entry.available:
                item.setForeground(Qt.GlobalColor.gray)
            model.appendRow(item)
    combo.blockSignals(True)
    combo.setModel(model)
    # first fill: the default model, which the status line offers to download
    index = combo.findData(current if current is not None else DEFAULT_MODEL)
    combo.setCurrentIndex(index if index >= 0 else _first_model(combo))
    combo.blockSignals(False)


def select_model(combo: QComboBox, name: str) -> bool:
    """Select registry model ``name`` (or :data:`CHECKPOINT_ITEM`); False if not listed."""
    index = combo.findData(name)
    if index < 0:
        return False
    combo.setCurrentIndex(index)
    return True


def _first_model(combo: QComboBox) -> int:
    return next((i for i in range(combo.count()) if combo.itemData(i) is not None), 0)
