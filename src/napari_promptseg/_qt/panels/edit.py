"""The "Edit objects" section: fix objects already in a labels layer (ours or not).

Shift+click an object (or press K / "Pick", then click it) to edit it: SAM starts from its
mask and box, clicks refine it, Commit (C) replaces it in place under its own id. Split off,
Merge with… and Delete act on the picked object, on the plane in view or (*Edits act on:
whole object*) on every plane of a 3D or time-series object, one undo step. The work is the session's
:class:`~napari_promptseg._napari.editing.ObjectEditor`; this panel shows its state and
calls it.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .registry import disconnect

HINT = (
    "<b>Shift+click</b> an object in any labels layer (or press <b>K</b>, then click it) to "
    "edit it: its mask is SAM's starting point, clicks refine it."
)


class EditPanel(QWidget):
    """Pick / Commit in place / Cancel, Split off / Merge with… / Delete, and what is picked."""

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.editor = session.editing

        hint = QLabel(HINT)
        hint.setWordWrap(True)
        self.state_label = QLabel()
        self.state_label.setWordWrap(True)
        self.pick_button = QPushButton("Pick (K)")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("the next click picks the object under it")
        self.commit_button = QPushButton("Commit in place (C)")
        self.commit_button.setToolTip("replace the object by the mask shown, same id")
        self.cancel_button = QPushButton("Cancel (X)")
        self.split_button = QPushButton("Split off")
        self.split_button.setToolTip(
            "the part of the object under the mask shown becomes a new object; "
            "the rest keeps the id"
        )
        self.merge_button = QPushButton("Merge with…")
        self.merge_button.setToolTip("then Shift+click the object to join this one (keeps its id)")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("remove the object from this plane (Ctrl+Z brings it back)")
        self.scope = QComboBox()
        self.scope.addItems(["this plane", "whole object"])
        self.scope.setToolTip(
            "Split off, Merge and Delete on the plane in view only, or on every plane of a "
            "3D / time-series object at once (one Ctrl+Z undoes it); Commit in place "
            "replaces the plane in view"
        )
        grid = QGridLayout()
        for index, button in enumerate(
            (
                self.pick_button,
                self.commit_button,
                self.cancel_button,
                self.split_button,
                self.merge_button,
                self.delete_button,
            )
        ):
            grid.addWidget(button, index // 3, index % 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(hint)
        layout.addLayout(grid)
        scope = QHBoxLayout()
        scope.addWidget(QLabel("Edits act on"))
        scope.addWidget(self.scope, 1)
        layout.addLayout(scope)
        layout.addWidget(self.state_label)

        self.pick_button.clicked.connect(lambda: self.editor.toggle_pick())
        self.commit_button.clicked.connect(self.session.commit)
        self.cancel_button.clicked.connect(self.session.clear)
        self.split_button.clicked.connect(lambda: self.editor.split())
        self.merge_button.clicked.connect(lambda: self.editor.begin_merge())
        self.delete_button.clicked.connect(lambda: self.editor.delete())
        self.scope.currentIndexChanged.connect(self.set_whole_object)
        self.editor.listeners.append(self.refresh)
        session.objects_changed.connect(self.refresh)
        self.refresh()

    def set_whole_object(self, whole: bool | int) -> None:
        """Edits on every plane of the object (True) or the plane in view (False)."""
        self.editor.whole_object = bool(whole)
        if self.scope.currentIndex() != int(bool(whole)):
            self.scope.setCurrentIndex(int(bool(whole)))
        self.refresh()

    def refresh(self) -> None:
        """Show what is picked and enable what can be done with it."""
        editor = self.editor
        edit = editor.edit
        self.pick_button.setChecked(editor.armed)
        for button in (
            self.commit_button,
            self.cancel_button,
            self.split_button,
            self.merge_button,
            self.delete_button,
        ):
            button.setEnabled(edit is not None)
        if edit is None:
            self.state_label.setText("no object picked")
        elif editor.merging:
            self.state_label.setText(f"merge: Shift+click the object to join {edit.describe()}")
        else:
            where = f", {edit.ref.describe()}" if edit.ref.fixed else ""
            every = " (edits: every plane)" if editor.whole_object and edit.ref.fixed else ""
            self.state_label.setText(
                f"editing {edit.describe()}{where}: {int(edit.mask.sum())} px when picked{every}"
            )

    def close(self) -> bool:
        if self.refresh in self.editor.listeners:
            self.editor.listeners.remove(self.refresh)
        disconnect((self.session.objects_changed, self.refresh))
        return super().close()
