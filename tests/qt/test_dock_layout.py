"""The dock organised by task: nothing cut off at 1280 and 1600 px, the layout remembered.

The clipping test opens napari's window at the given width, shows the dock with a model whose
long name used to widen the dock's content past its column ("Load model" and "Copy" cut off
at the right edge), and checks, in every tab, collapsed and expanded, that every button and
combo lies inside the visible width of the scroll area that shows it.
"""

from __future__ import annotations

import json

import pytest
from qtpy.QtCore import QPoint
from qtpy.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QLabel,
    QScrollArea,
    QTabBar,
    QWidget,
)
from superqt import QCollapsible
from widgetkit import add_point_and_wait, open_widget

from napari_promptseg._qt import dock_state
from napari_promptseg._qt.dock_state import DockState, load_state, save_state, state_path
from napari_promptseg._qt.dock_tabs import TaskTabs
from napari_promptseg._qt.panels.registry import GROUPS, PANELS
from napari_promptseg.core import PromptSegmenter

LONG_MODEL_NAME = "sam2.1_hiera_base_plus-finetuned-on-my-cells-2024-11-30-final"


def _settle(qtbot, ms: int = 150) -> None:
    qtbot.wait(ms)  # layout requests and the collapsibles' resizes are posted events


def _in_collapsed_section(widget: QWidget, stop: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None and parent is not stop:
        if isinstance(parent, QCollapsible) and not parent.isExpanded():
            # a collapsed section shows only its title button
            return widget is not parent.findChild(QAbstractButton)
        parent = parent.parentWidget()
    return False


def _cut_off(scroll: QScrollArea) -> list[str]:
    """Buttons and combos shown in ``scroll`` that reach past its viewport's left or right."""
    viewport = scroll.viewport()
    content = scroll.widget()
    problems = []
    for child in content.findChildren((QAbstractButton, QComboBox)):
        if not child.isVisible() or _in_collapsed_section(child, content):
            continue
        left = child.mapTo(viewport, QPoint(0, 0)).x()
        right = left + child.width()
        if left < 0 or right > viewport.width():
            text = child.currentText() if isinstance(child, QComboBox) else child.text()
            problems.append(f"{type(child).__name__} {text!r}: x {left}..{right}")
    if problems:
        problems.insert(0, f"viewport width {viewport.width()}")
    return problems


def _check_dock(widget, window) -> list[str]:
    problems = []
    dock_right = widget.mapTo(window, QPoint(widget.width(), 0)).x()
    if dock_right > window.width():
        problems.append(f"dock ends at x {dock_right}, window is {window.width()} px wide")
    tabs = widget.tabs
    bar = tabs.tabBar()
    for index in range(bar.count()):
        if bar.tabRect(index).right() >= bar.width() or bar.width() > tabs.width():
            problems.append(f"tab {tabs.tabText(index)!r} does not fit ({bar.tabRect(index)})")
    scroll_buttons = [b for b in bar.findChildren(QAbstractButton) if b.isVisible()]
    if scroll_buttons:
        problems.append("the tab bar needs scroll arrows: a tab is hidden")
    for scroll in (widget.loop_scroll, tabs.currentWidget()):
        if scroll.horizontalScrollBar().isVisible():
            problems.append(f"a horizontal scroll bar in {scroll.widget()}")
        problems += _cut_off(scroll)
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 1600])
def test_nothing_is_cut_off_at_the_right_edge(make_napari_viewer, qtbot, tiny_sam, width):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(width, 900)
    segmenter = PromptSegmenter(tiny_sam, "tiny-test", name=LONG_MODEL_NAME)
    widget = open_widget(viewer, qtbot, tiny_sam, segmenter=segmenter)
    add_point_and_wait(qtbot, widget, (80, 120))  # a score line and candidate buttons
    _settle(qtbot)
    assert window.width() == width, "the dock forced the window wider"
    assert LONG_MODEL_NAME in widget.model_label.toolTip()
    problems = []
    for group in widget.tabs.pages:
        widget.tabs.show_group(group)
        for expanded in (False, True):
            widget.tabs.set_all_expanded(expanded)
            _settle(qtbot)
            state = "expanded" if expanded else "collapsed"
            problems += [f"{group}, {state}: {p}" for p in _check_dock(widget, window)]
    assert not problems, "\n".join(problems)


def test_a_click_does_not_resize_the_dock(make_napari_viewer, qtbot, tiny_sam):
    viewer = make_napari_viewer(show=True)
    widget = open_widget(viewer, qtbot, tiny_sam)
    add_point_and_wait(qtbot, widget, (80, 120))
    _settle(qtbot)
    before = (widget.width(), widget.loop_scroll.minimumWidth())
    for point in [(200, 350), (150, 450), (90, 130)]:
        add_point_and_wait(qtbot, widget, point)
    _settle(qtbot)
    assert (widget.width(), widget.loop_scroll.minimumWidth()) == before


def test_the_prompt_loop_is_shown_whichever_tab_is_chosen(make_napari_viewer, qtbot, tiny_sam):
    viewer = make_napari_viewer(show=True)
    widget = open_widget(viewer, qtbot, tiny_sam)
    loop = [
        widget.image_combo,
        widget.load_button,
        widget.points_button,
        widget.score_label,
        widget.commit_button,
        widget.undo_button,
        widget.labels_combo,
    ]
    for group in widget.tabs.pages:
        widget.tabs.show_group(group)
        _settle(qtbot, 50)
        hidden = [w for w in loop if not w.isVisible()]
        assert not hidden, f"{group}: {hidden}"
    assert not any(w in widget.tabs.findChildren(QWidget) for w in loop)


def test_every_panel_sits_in_its_groups_tab(make_napari_viewer, qtbot, tiny_sam):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam, add_image=False)
    tabs = widget.tabs
    built = {type(panel).__name__: panel for panel in widget.panels}
    for group, title, target in PANELS:
        if target.split(":")[1] not in built:
            continue  # module not built (yet)
        assert tabs.group_of[title] == group
        section = widget.sections[title]
        assert built[target.split(":")[1]] in section.findChildren(QWidget)
        assert section in tabs.pages[group].widget().findChildren(QCollapsible)
    known = [g for g in GROUPS if g in tabs.pages]
    assert list(tabs.pages)[: len(known)] == known  # GROUPS' order
    # the key list is part of the first tab
    labels = tabs.pages[GROUPS[0]].widget().findChildren(QLabel)
    assert any("commit the mask" in label.text() for label in labels)


def test_a_group_not_in_groups_gets_its_own_tab(qtbot):
    panels = [("B", "second", QWidget()), ("New", "third", QWidget()), ("A", "first", QWidget())]
    tabs = TaskTabs(panels, groups=("A", "B", "Empty"))
    qtbot.addWidget(tabs)
    assert list(tabs.pages) == ["A", "B", "New"]  # listed order, then the rest; none empty
    assert tabs.tabText(0) == "A"
    tabs.show_section("third")
    assert tabs.current_group() == "New" and tabs.sections["third"].isExpanded()


def test_a_tab_name_with_an_ampersand_is_shown_as_is(qtbot):
    tabs = TaskTabs([("Files & batch", "x", QWidget())], groups=("Files & batch",))
    qtbot.addWidget(tabs)
    bar: QTabBar = tabs.tabBar()
    assert bar.tabText(0) == "Files && batch"  # "&&" draws one "&", not a mnemonic
    assert tabs.current_group() == "Files & batch"


def _non_default_layout(widget) -> tuple[str, dict[str, bool]]:
    """Choose the last tab and flip every section of it."""
    tabs = widget.tabs
    group = list(tabs.pages)[-1]
    tabs.show_group(group)
    flipped = {}
    for title, section in tabs.sections.items():
        if tabs.group_of[title] == group:
            if section.isExpanded():
                section.collapse(animate=False)
            else:
                section.expand(animate=False)
            flipped[title] = section.isExpanded()
    return group, flipped


def test_the_layout_is_remembered_between_sessions(make_napari_viewer, qtbot, tiny_sam):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam, add_image=False)
    assert widget.tabs.current_group() == next(iter(widget.tabs.pages))  # the first tab at first
    group, flipped = _non_default_layout(widget)
    assert group != next(iter(widget.tabs.pages))
    widget.close_session()  # what closing the dock does: the last change is saved at once

    saved = json.loads(state_path().read_text())
    assert saved["version"] == dock_state.VERSION and saved["tab"] == group

    again = open_widget(make_napari_viewer(), qtbot, tiny_sam, add_image=False)
    assert again.tabs.current_group() == group
    for title, expanded in flipped.items():
        assert again.sections[title].isExpanded() == expanded


def test_a_change_is_saved_after_a_moment(make_napari_viewer, qtbot, tiny_sam):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam, add_image=False)
    group, _ = _non_default_layout(widget)
    qtbot.waitUntil(lambda: state_path().exists(), timeout=5000)
    assert load_state().tab == group


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json",  # garbage
        b"[1, 2, 3]",  # JSON, not an object
        b'{"tab": "Annotate", "sections": {}}',  # no version: before the file had one
        b'{"version": 0, "tab": "Files & batch"}',  # an older version
        b'{"version": 99, "tab": "Files & batch"}',  # a newer one
        b'{"version": 1, "tab": 7, "sections": ["x"], "splitter": [-5, "a"]}',  # wrong types
        b'{"version": 1, "tab": "no such tab", "sections": {"no such section": true}}',
    ],
)
def test_a_bad_or_old_saved_layout_gives_the_default(make_napari_viewer, qtbot, tiny_sam, content):
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam, add_image=False)
    tabs = widget.tabs
    assert tabs.current_group() == next(iter(tabs.pages))
    first_of_each_group = {}
    for title, group in tabs.group_of.items():
        first_of_each_group.setdefault(group, title)
    for title, section in tabs.sections.items():
        assert section.isExpanded() == (first_of_each_group[tabs.group_of[title]] == title)
    _non_default_layout(widget)
    widget.close_session()
    assert load_state().tab == list(tabs.pages)[-1]  # replaced by a good one


def test_an_unwritable_layout_file_is_not_an_error(make_napari_viewer, qtbot, tiny_sam, caplog):
    state_path().mkdir(parents=True)  # a folder where the file should be
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam, add_image=False)
    _non_default_layout(widget)
    widget.close_session()
    assert "dock layout not saved" in caplog.text


def test_state_fields_are_checked_one_by_one(tmp_path):
    path = tmp_path / "dock.json"
    state = DockState(tab="Automatic", sections={"Edit objects": False}, splitter=(500, 300))
    assert save_state(state, path)
    assert load_state(path) == state
    raw = json.loads(path.read_text())
    raw["splitter"] = [1.5, 2]  # only this field is wrong: the others stay
    path.write_text(json.dumps(raw))
    assert load_state(path) == DockState(tab="Automatic", sections={"Edit objects": False})
    assert load_state(tmp_path / "missing.json") == DockState()
