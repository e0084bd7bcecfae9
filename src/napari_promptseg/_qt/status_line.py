"""A status line that is always shown whole: wrapping, selectable, with a copy button.

Messages such as the offline one ("vit_b is not downloaded yet … save https://… as … in
/home/…/models") name a URL, a file and a folder the user must read exactly. A plain
word-wrapped label in a form row is clipped to the height Qt guessed for it, so this one is a
row of its own that grows with its text, its text can be selected, and **Copy** puts the full
message on the clipboard.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget


class StatusLine(QWidget):
    """``label`` (a QLabel: ``setText``/``text``) and a Copy button beside it."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # grow to the wrapped text's height instead of clipping it
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.MinimumExpanding)
        policy.setHeightForWidth(True)
        self.label.setSizePolicy(policy)
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("copy this message (to paste a URL or folder it names)")
        self.copy_button.clicked.connect(self.copy)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignTop)

    def set_text(self, text: str) -> None:
        self.label.setText(text)

    def text(self) -> str:
        return self.label.text()

    def copy(self) -> None:
        QApplication.clipboard().setText(self.label.text())
