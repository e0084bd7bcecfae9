"""The "Object classes" section: the class list, the class of the next objects, keys 1–9.

The class chosen here goes into the ``class`` column of every object committed next, and of
an object picked for editing (Shift+click) at once. The list (names and colours) is editable
here, kept in ``classes.json`` beside the autosaves so the next session has it, and stored
with the labels layer so a COCO export numbers its categories in this order. *Colour objects
by class* paints each object in its class's colour (no class: grey).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QFileDialog,
    QGridLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..._napari import classes as layer_classes
from ...core.storage.classes import (
    ClassList,
    ClassListError,
    load_class_list,
    save_class_list,
)
from .registry import disconnect

NO_CLASS = "(no class)"
COLORMAP_KEY = "promptseg_colormap"  # the layer's own colormap while ours is shown


class ClassesPanel(QWidget):
    """A list of classes (the selected one is the class of the next objects) and its tools."""

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.classes = ClassList()
        self.current = ""

        self.class_list = QListWidget()
        self.class_list.setMaximumHeight(140)
        self.class_list.setToolTip("the class of the next objects (keys 1–9 pick one)")
        self.add_button = QPushButton("Add…")
        self.rename_button = QPushButton("Rename…")
        self.colour_button = QPushButton("Colour…")
        self.remove_button = QPushButton("Remove")
        self.load_button = QPushButton("Load…")
        self.save_button = QPushButton("Save…")
        self.colour_check = QCheckBox("colour objects by class")
        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        grid = QGridLayout()
        buttons = (
            self.add_button,
            self.rename_button,
            self.colour_button,
            self.remove_button,
            self.load_button,
            self.save_button,
        )
        for index, button in enumerate(buttons):
            grid.addWidget(button, index // 3, index % 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.class_list)
        layout.addLayout(grid)
        layout.addWidget(self.colour_check)
        layout.addWidget(self.info_label)

        self.class_list.currentRowChanged.connect(self._on_row_chosen)
        self.add_button.clicked.connect(self._ask_add)
        self.rename_button.clicked.connect(self._ask_rename)
        self.colour_button.clicked.connect(self._ask_colour)
        self.remove_button.clicked.connect(lambda: self.remove_class(self.current))
        self.load_button.clicked.connect(self._ask_load)
        self.save_button.clicked.connect(self._ask_save)
        self.colour_check.toggled.connect(self.apply_colours)
        session.objects_changed.connect(self._on_objects_changed)
        viewer.layers.events.inserted.connect(self._bind_keys)
        self.set_classes(self._saved_classes(), save=False)

    # -- the list (tests and scripts call these) -------------------------------------------

    def set_classes(self, classes: ClassList, *, save: bool = True) -> None:
        """Use ``classes``; the current class stays if the list still has it."""
        self.classes = classes
        if self.current and classes.find(self.current) is None:
            self.current = ""
        self._fill()
        self._bind_keys()
        if save:
            self._save()
        self.apply_colours(self.colour_check.isChecked())

    def add_class(self, name: str, colour: str | None = None) -> bool:
        return self._change(lambda c: c.with_class(name, colour), choose=name)

    def rename_class(self, name: str, new_name: str) -> bool:
        choose = new_name if self.current == name else None
        return self._change(lambda c: c.renamed(name, new_name), choose=choose)

    def recolour_class(self, name: str, colour: str) -> bool:
        return self._change(lambda c: c.recoloured(name, colour))

    def remove_class(self, name: str) -> bool:
        if not name:
            return False
        return self._change(lambda c: c.without(name))

    def choose(self, name: str) -> None:
        """Class ``name`` ("" none) for the next objects, and for the object being edited."""
        found = self.classes.find(name) if name else None
        self.current = found.name if found else ""
        self._select_current()
        self.session.editing.choose_class(self.current)

    def choose_number(self, number: int) -> None:
        """Key ``number`` (1–9): the number-th class."""
        found = self.classes.for_key(number)
        if found is not None:
            self.choose(found.name)

    def load(self, path: str | Path) -> bool:
        try:
            classes = load_class_list(path)
        except ClassListError as error:
            self.session.report(str(error))
            return False
        self.set_classes(classes)
        self.session.say(f"{len(classes)} classes from {path}")
        return True

    def save(self, path: str | Path) -> bool:
        try:
            written = save_class_list(path, self.classes)
        except (ClassListError, OSError) as error:
            self.session.report(f"cannot save the class list: {error}")
            return False
        self.session.say(f"class list saved to {written}")
        return True

    # -- showing ---------------------------------------------------------------------------

    def apply_colours(self, on: bool) -> None:
        """Paint the labels layer's objects by class (on), or give it its colours back."""
        labels = self.session.labels_layer
        if labels is None:
            return
        if on:
            labels.metadata.setdefault(COLORMAP_KEY, labels.colormap)
            labels.colormap = layer_classes.class_colormap(labels, self.classes)
        elif COLORMAP_KEY in labels.metadata:
            labels.colormap = labels.metadata.pop(COLORMAP_KEY)

    def _fill(self) -> None:
        self.class_list.blockSignals(True)
        self.class_list.clear()
        self.class_list.addItem(QListWidgetItem(NO_CLASS))
        for number, item in enumerate(self.classes, start=1):
            key = f"{number}  " if number <= 9 else "    "
            entry = QListWidgetItem(_swatch(item.colour), f"{key}{item.name}")
            entry.setData(Qt.UserRole, item.name)
            self.class_list.addItem(entry)
        self.class_list.blockSignals(False)
        self._select_current()

    def _select_current(self) -> None:
        names = self.classes.names
        row = names.index(self.current) + 1 if self.current in names else 0
        self.class_list.blockSignals(True)
        self.class_list.setCurrentRow(row)
        self.class_list.blockSignals(False)
        count = len(self.classes)
        keys = f"keys 1–{min(count, 9)} choose" if count else "add classes to label objects"
        self.info_label.setText(f"next objects: {self.current or 'no class'} · {keys}")

    def _on_row_chosen(self, row: int) -> None:
        item = self.class_list.item(row)
        self.choose((item.data(Qt.UserRole) or "") if item is not None else "")

    def _on_objects_changed(self) -> None:
        layer_classes.store_in_layer(self.session.labels_layer, self.classes)
        if self.colour_check.isChecked():
            self.apply_colours(True)

    def _bind_keys(self, event=None) -> None:
        layer_classes.bind_class_keys(self.viewer, len(self.classes), self.choose_number)

    # -- changing and keeping the list ----------------------------------------------------

    def _change(self, edit, choose: str | None = None) -> bool:
        try:
            classes = edit(self.classes)
        except ClassListError as error:
            self.session.report(str(error))
            return False
        self.set_classes(classes)
        if choose is not None:
            self.choose(choose)
        return True

    def _save(self) -> None:
        layer_classes.store_in_layer(self.session.labels_layer, self.classes)
        path = layer_classes.class_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_class_list(path, self.classes)
        except (ClassListError, OSError) as error:
            self.session.report(f"cannot keep the class list for the next session: {error}")

    def _saved_classes(self) -> ClassList:
        """The last session's list, else one kept with the labels layer, else none."""
        path = layer_classes.class_file()
        if path.exists():
            try:
                return load_class_list(path)
            except ClassListError as error:
                self.session.report(f"{error} (starting with no classes)")
        return layer_classes.classes_of_layer(self.session.labels_layer) or ClassList()

    def _ask_add(self) -> None:
        name, ok = QInputDialog.getText(self, "New class", "Class name:")
        if ok and name.strip():
            self.add_class(name)

    def _ask_rename(self) -> None:
        if not self.current:
            return
        name, ok = QInputDialog.getText(self, "Rename class", "New name:", text=self.current)
        if ok and name.strip():
            self.rename_class(self.current, name)

    def _ask_colour(self) -> None:
        found = self.classes.find(self.current) if self.current else None
        if found is None:
            return
        colour = QColorDialog.getColor(QColor(found.colour), self, f"Colour of {found.name}")
        if colour.isValid():
            self.recolour_class(found.name, colour.name())

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Class list", "", "Class lists (*.json)")
        if path:
            self.load(path)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Class list", "classes.json", "*.json")
        if path:
            self.save(path)

    def close(self) -> bool:
        layer_classes.unbind_class_keys(self.viewer)
        disconnect(
            (self.session.objects_changed, self._on_objects_changed),
            (self.viewer.layers.events.inserted, self._bind_keys),
        )
        return super().close()


def _swatch(colour: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)
