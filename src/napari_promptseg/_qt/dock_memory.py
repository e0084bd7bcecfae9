"""Remembering the dock's layout: restore it when the dock opens, save it when the user changes it.

The tab, the open sections and the split between the prompt loop and the tabs are read from
:mod:`.dock_state`'s file once, and written back half a second after the user last changed
one of them (dragging the split moves it many times a second) and when the dock closes.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QObject, QTimer
from qtpy.QtWidgets import QSplitter

from .dock_state import DockState, load_state, save_state
from .dock_tabs import TaskTabs

SAVE_DELAY_MS = 500
MIN_TABS_HEIGHT = 220  # px by default: the tab bar and a section or two under the loop


class DockLayoutMemory(QObject):
    """Restores ``tabs`` and ``splitter`` from the saved layout and saves their changes.

    Parameters
    ----------
    tabs, splitter
        The dock's task tabs and the split above them (the prompt loop, the tabs).
    path
        The layout file (default: :func:`~.dock_state.state_path`).
    """

    def __init__(self, tabs: TaskTabs, splitter: QSplitter, path: Path | None = None) -> None:
        super().__init__(tabs)
        self._tabs = tabs
        self._splitter = splitter
        self._path = path
        self.state: DockState = load_state(path)
        self._split_restored = False
        self._dirty = False
        tabs.apply(self.state)  # before listening: restoring is not a change
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        tabs.layout_changed.connect(self._changed)
        splitter.splitterMoved.connect(self._on_split_moved)

    def restore_split(self) -> None:
        """Give the split its saved heights, or by default the prompt loop all the height it
        needs while the tabs keep :data:`MIN_TABS_HEIGHT` (once, when first laid out)."""
        if self._split_restored:
            return
        total = sum(self._splitter.sizes())
        if total <= 0:
            return  # not laid out yet
        self._split_restored = True
        if self.state.splitter is not None:
            self._splitter.setSizes(list(self.state.splitter))  # scaled to the height now
            return
        loop = self._splitter.widget(0)
        needed = loop.widget().sizeHint().height() if hasattr(loop, "widget") else 0
        top = max(min(needed, total - MIN_TABS_HEIGHT), total // 2)
        self._splitter.setSizes([top, total - top])

    def _on_split_moved(self, *_) -> None:
        sizes = self._splitter.sizes()
        if len(sizes) == 2:
            self.state.splitter = (sizes[0], sizes[1])
        self._changed()

    def _changed(self) -> None:
        self._dirty = True
        self._timer.start()

    def save_now(self) -> None:
        """Write the layout now if something changed since the last write."""
        if not self._dirty:
            return
        self._dirty = False
        self._timer.stop()
        self._tabs.capture(self.state)
        save_state(self.state, self._path)
