"""Scroll areas that scroll only vertically: never narrower than what their content needs.

A ``QScrollArea`` does not pass its content's minimum width on to the dock: when a label or
combo inside grows (a long model name, a panel's row of buttons), the content becomes wider
than the visible part and its right edge ("Load model", "Copy") is cut off behind a
horizontal scroll bar. :func:`vertical_scroll` makes a scroll area whose minimum width
follows its content's minimum width (plus the vertical bar, always reserved so the width does
not jump when the bar appears), so the dock widens instead.

They start following when the dock is first shown (:func:`start_fitting`), not before: a
docked ``QDockWidget`` keeps the minimum width its content had when it was first shown as
its own (Qt 6), and before napari's style sheet is applied the content is ~50 px wider than
it will be; the dock could never shrink back.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QFrame, QScrollArea, QWidget


def vertical_scroll(content: QWidget) -> QScrollArea:
    """A frameless scroll area showing ``content`` at its full width; only the height scrolls."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(content)
    FitContentWidth(scroll)
    return scroll


class FitContentWidth(QObject):
    """Keeps ``scroll``'s minimum width equal to what its content needs.

    It looks at the content's minimum width when Qt lays the content out anyway (a layout
    request, a style change), and sets the scroll area's minimum width only when that number
    changed: a new mask, score or candidate text costs no extra relayout.
    """

    def __init__(self, scroll: QScrollArea) -> None:
        super().__init__(scroll)
        self._scroll = scroll
        self._started = False
        scroll.widget().installEventFilter(self)  # the content only: few events reach it

    def start(self) -> None:
        """Follow the content's width from now on (the style sheet is in place)."""
        self._started = True
        self.update_width()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._started and event.type() in _RELAYOUT:
            self.update_width()
        return False

    def needed_width(self) -> int:
        scroll = self._scroll
        bar = scroll.verticalScrollBar().sizeHint().width()
        return scroll.widget().minimumSizeHint().width() + bar + 2 * scroll.frameWidth()

    def update_width(self) -> None:
        needed = self.needed_width()
        if needed != self._scroll.minimumWidth():
            self._scroll.setMinimumWidth(needed)


def start_fitting(root: QWidget) -> None:
    """Start every :func:`vertical_scroll` under ``root`` (all tabs at once: the dock keeps
    one width whichever tab is shown)."""
    for fit in root.findChildren(FitContentWidth):
        fit.start()


# napari's style sheet arrives as a StyleChange/Polish (fonts, paddings): the widths change
_RELAYOUT = (QEvent.Type.LayoutRequest, QEvent.Type.StyleChange, QEvent.Type.Polish)
