"""Features rows follow napari's undo/redo of a Labels layer (no viewer needed).

A row changed in place along with a paint (``objects.replace_row``) shows its state before
or after that paint, whichever the pixels are in; rows of undone objects are set aside.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Labels

from napari_promptseg._napari import objects
from napari_promptseg._napari.slices import SliceRef
from napari_promptseg.core.labels import object_row, same_row

PLANE = SliceRef((None, None), (0, 1))


def _commit(layer, mask) -> dict:
    return objects.commit_mask(
        layer,
        PLANE,
        mask,
        overwrite=False,
        predicted_iou=0.9,
        stability=0.95,
        prompts="1+",
        candidate=0,
        model="tiny",
    )


def _paint_more(layer, object_id, rows, cols, **changes) -> dict:
    """Paint more pixels of an object in one undo step and change its row along with it."""
    with layer.block_history():
        layer.data_setitem((rows, cols), object_id)
    row = next((r for r in objects.object_rows(layer) if int(r["id"]) == object_id), {})
    after = {**row, **changes}
    objects.replace_row(layer, after, (rows[:1], cols[:1]))
    return after


def test_undo_and_redo_walk_a_row_changed_in_place():
    layer = Labels(np.zeros((12, 12), np.uint32))
    mask = np.zeros((12, 12), bool)
    mask[1:4, 1:4] = True
    first = _commit(layer, mask)
    other = _commit(layer, np.roll(mask, 6, axis=1))  # object 2 is left alone throughout
    grown = _paint_more(layer, 1, np.array([4, 4]), np.array([1, 2]), area=11, note="grown")
    again = _paint_more(layer, 1, np.array([5]), np.array([1]), area=12, note="grown twice")

    def row_of_1():
        return next(r for r in objects.object_rows(layer) if int(r["id"]) == 1)

    assert same_row(row_of_1(), again)
    objects.undo(layer)
    assert same_row(row_of_1(), grown) and layer.data[5, 1] == 0
    objects.undo(layer)
    assert same_row(row_of_1(), first) and layer.data[4, 1] == 0
    assert same_row(objects.object_rows(layer)[1], other)
    objects.redo(layer)
    objects.redo(layer)
    assert same_row(row_of_1(), again) and layer.data[5, 1] == 1
    # a missing text cell of a row without that column reads "" (not NaN)
    assert objects.object_rows(layer)[1]["note"] == ""


def test_a_row_added_along_with_a_paint_goes_with_its_undo():
    layer = Labels(np.zeros((8, 8), np.uint32))
    with layer.block_history():  # the paint brush: label 5, no row
        layer.data_setitem((np.array([1, 1]), np.array([1, 2])), 5)
    painted = np.zeros((8, 8), bool)
    painted[1:3, 1:3] = True
    row = object_row(5, painted, predicted_iou=0.7, stability=0.8, prompts="painted")
    _paint_more(layer, 5, np.array([2]), np.array([1]), **row)
    assert [r["id"] for r in objects.object_rows(layer)] == [5]
    objects.undo(layer)
    assert objects.object_rows(layer) == []  # the hand-painted label keeps no row
    assert layer.data[1, 1] == 5
    objects.redo(layer)
    assert objects.object_rows(layer)[0]["prompts"] == "painted"


def test_changes_for_data_of_another_shape_are_forgotten():
    layer = Labels(np.zeros((8, 8), np.uint32))
    mask = np.zeros((8, 8), bool)
    mask[6:8, 6:8] = True
    _commit(layer, mask)
    _paint_more(layer, 1, np.array([7]), np.array([5]), area=5)
    layer.data = np.zeros((4, 4), np.uint32)  # another image: the probes do not fit
    objects.reconcile(layer)
    assert layer.metadata[objects.CHANGES_KEY] == []
