"""The dock's task tabs: one tab per group of :data:`~.panels.registry.PANELS`.

Each tab scrolls on its own and holds its group's panels as collapsible sections, in
``PANELS`` order. A group named in ``GROUPS`` comes in that order; a group not listed there
(a panel from a newer line) gets its own tab after them, so no panel is ever dropped; a group
with no panel built has no tab.

Every tab is always shown whole: no scroll arrows and no elided names in the tab bar, so the
tab bar's width counts in the dock's width (five groups fit a 1280 px window).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget
from superqt import QCollapsible

from .dock_fit import vertical_scroll
from .dock_state import DockState


class TaskTabs(QTabWidget):
    """Tabs of collapsible sections.

    Parameters
    ----------
    panels
        ``(group, title, widget)`` as :func:`~.panels.registry.load_panels` gives them.
    groups
        The known groups, in tab order.
    footers
        ``group -> widget`` shown under that group's sections (e.g. the key list).

    Attributes
    ----------
    sections
        Section title -> its :class:`superqt.QCollapsible`.
    group_of
        Section title -> its group (the tab's name).
    pages
        Group -> the tab's scroll area.
    """

    layout_changed = Signal()  # the user chose a tab or opened/closed a section

    def __init__(
        self,
        panels: Iterable[tuple[str, str, QWidget]],
        groups: Sequence[str],
        footers: dict[str, QWidget] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setUsesScrollButtons(False)
        self.setElideMode(Qt.TextElideMode.ElideNone)
        self.setDocumentMode(True)  # no frame around the page: the dock is narrow already
        self.sections: dict[str, QCollapsible] = {}
        self.group_of: dict[str, str] = {}
        self.pages: dict[str, QScrollArea] = {}
        self._groups: list[str] = []  # by tab index (a tab's text escapes "&")
        self._defaults: dict[str, bool] = {}
        footers = footers or {}
        by_group: dict[str, list[tuple[str, QWidget]]] = {}
        for group, title, widget in panels:
            by_group.setdefault(group, []).append((title, widget))
        order = [g for g in groups if g in by_group or g in footers]
        order += [g for g in by_group if g not in order]
        for group in order:
            self._add_tab(group, by_group.get(group, []), footers.get(group))
        self.currentChanged.connect(lambda _: self.layout_changed.emit())

    def _add_tab(
        self, group: str, sections: list[tuple[str, QWidget]], footer: QWidget | None
    ) -> None:
        content = QWidget()
        layout = QVBoxLayout(content)
        for index, (title, widget) in enumerate(sections):
            section = QCollapsible(title)
            section.addWidget(widget)
            layout.addWidget(section)
            self.sections[title] = section
            self.group_of[title] = group
            self._defaults[title] = index == 0  # a new user sees what the tab is for
            section.toggled.connect(lambda _: self.layout_changed.emit())
        if footer is not None:
            layout.addWidget(footer)
        layout.addStretch(1)
        page = vertical_scroll(content)
        self.pages[group] = page
        self._groups.append(group)
        self.addTab(page, group.replace("&", "&&"))  # "&" alone would underline the next letter

    # -- what the user sees -------------------------------------------------------------

    def current_group(self) -> str | None:
        index = self.currentIndex()
        return self._groups[index] if 0 <= index < len(self._groups) else None

    def show_group(self, group: str) -> None:
        """Bring ``group``'s tab to the front."""
        if group in self.pages:
            self.setCurrentWidget(self.pages[group])

    def show_section(self, title: str, *, animate: bool = False) -> QCollapsible:
        """Bring the tab holding section ``title`` to the front and open the section."""
        section = self.sections[title]
        self.show_group(self.group_of[title])
        if not section.isExpanded():
            section.expand(animate=animate)
            self.layout_changed.emit()
        return section

    def set_all_expanded(self, expanded: bool) -> None:
        for section in self.sections.values():
            if expanded:
                section.expand(animate=False)
            else:
                section.collapse(animate=False)
        self.layout_changed.emit()

    # -- remembered between sessions ----------------------------------------------------

    def apply(self, state: DockState) -> None:
        """Show ``state``'s tab and sections; anything it does not name keeps its default."""
        for title, section in self.sections.items():
            if state.sections.get(title, self._defaults[title]):
                section.expand(animate=False)
            else:
                section.collapse(animate=False)
        self.blockSignals(True)  # restoring is not a change to save
        if state.tab in self.pages:
            self.setCurrentWidget(self.pages[state.tab])
        self.blockSignals(False)

    def capture(self, state: DockState) -> None:
        """Write the shown tab and sections into ``state`` (titles of panels not built here
        keep what ``state`` had for them)."""
        state.tab = self.current_group()
        state.sections.update(
            {title: section.isExpanded() for title, section in self.sections.items()}
        )
