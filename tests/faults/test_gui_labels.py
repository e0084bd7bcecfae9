"""Fault matrix, labels in napari: other dtypes, ids at the dtype's limit, painting by hand
between commits, undo past the first commit. A labels layer of another shape and a full
uint8 layer are in tests/qt/test_bad_input.py."""

from __future__ import annotations

import numpy as np
import pytest
from faultkit import LabelsGuard, commit_one, watch_problems
from widgetkit import add_point_and_wait, open_widget

from napari_promptseg._napari import objects


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _choose_labels(widget, layer):
    widget.labels_combo.setCurrentIndex(widget.labels_combo.findText(layer.name))
    assert widget.session.labels_layer is layer


@pytest.mark.parametrize(
    ("dtype", "top"),
    [(np.int8, 126), (np.uint16, 65534), (np.uint32, 2**32 - 2), (np.int64, 2**63 - 2)],
    ids=["int8", "uint16", "uint32", "int64"],
)
def test_ids_up_to_the_dtype_limit_then_a_clear_refusal(viewer, qtbot, tiny_sam, dtype, top):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    problems = watch_problems(widget)
    data = np.zeros((300, 517), dtype)
    data[0:5, 0:5] = top  # the user's own object, with an id one below the limit
    mine = viewer.add_labels(data, name="mine")
    _choose_labels(widget, mine)

    row = commit_one(qtbot, widget, (150, 250))
    assert row["id"] == top + 1 == np.iinfo(dtype).max
    assert mine.data.dtype == dtype
    assert (mine.data[0:5, 0:5] == top).all()
    assert np.count_nonzero(mine.data == top + 1) == row["area"]

    guard = LabelsGuard(mine)
    add_point_and_wait(qtbot, widget, (250, 60))
    assert session.commit() is None
    assert f"no free object id: the labels' dtype {np.dtype(dtype)} holds ids up to" in problems[-1]
    assert "wider dtype" in problems[-1]
    guard.assert_unchanged()


def test_hand_painting_between_commits_is_never_overwritten(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    first = commit_one(qtbot, widget, (80, 120))
    labels = session.labels_layer
    # the user paints two objects by hand, one with the brush, one as a block
    labels.brush_size = 15
    labels.paint((200, 350), 50)
    block = (slice(180, 230), slice(320, 400))
    free = labels.data[block] == 0
    rows, cols = np.nonzero(free)
    labels.data_setitem((rows + 180, cols + 320), 7)
    painted = labels.data.copy()
    hand = painted >= 7

    add_point_and_wait(qtbot, widget, (200, 350))  # right on the painted objects
    second = session.commit()
    if second is None:  # the mask lay wholly on painted pixels: refused, nothing changed
        np.testing.assert_array_equal(labels.data, painted)
        second = commit_one(qtbot, widget, (280, 40))
    assert second["id"] == 51  # a fresh id above the hand-painted 50
    np.testing.assert_array_equal(labels.data[hand], painted[hand])
    np.testing.assert_array_equal(labels.data == first["id"], painted == first["id"])
    assert [r["id"] for r in objects.object_rows(labels)] == [first["id"], 51]

    session.undo()  # the second commit only
    np.testing.assert_array_equal(labels.data, painted)
    assert [r["id"] for r in objects.object_rows(labels)] == [first["id"]]


def test_undo_past_the_first_commit(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    session.undo()  # no labels layer yet
    assert "nothing to undo" in widget.status_label.text()

    existing = np.zeros((300, 517), np.uint16)
    existing[10:30, 10:30] = 3  # the user's labels from before this session
    mine = viewer.add_labels(existing.copy(), name="mine")
    _choose_labels(widget, mine)
    first = commit_one(qtbot, widget, (80, 120))
    second = commit_one(qtbot, widget, (200, 350))
    after = mine.data.copy()
    for _ in range(5):  # two commits, then three undos with nothing left
        session.undo()
    np.testing.assert_array_equal(mine.data, existing)
    assert objects.object_rows(mine) == []
    session.redo()
    session.redo()
    np.testing.assert_array_equal(mine.data, after)
    assert [r["id"] for r in objects.object_rows(mine)] == [first["id"], second["id"]]
    session.redo()  # nothing left to redo
    np.testing.assert_array_equal(mine.data, after)
