"""Editing objects of a Labels layer in place: ids, dtype, neighbours, foreign columns, undo.

No viewer: napari Labels layers and their undo history, as the session drives them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.layers import Labels

from napari_promptseg._napari import object_edits, objects
from napari_promptseg._napari.editing import EditingPromptView, ObjectEdit
from napari_promptseg._napari.slices import SliceRef
from napari_promptseg._napari.state import SessionState
from napari_promptseg.core.editing import EditError
from napari_promptseg.core.sam.prompts import Prompts

PLANE = SliceRef((None, None), (0, 1))


def cellpose_like(dtype) -> np.ndarray:
    """Three touching cells, ids 3, 7 and 9, as a segmenter writes them (no features)."""
    labels = np.zeros((40, 60), dtype)
    labels[5:20, 5:25] = 3
    labels[5:20, 25:40] = 7
    labels[25:35, 10:30] = 9
    return labels


def foreign_layer(dtype) -> Labels:
    """A foreign layer with its own features: napari's index column and two of its own."""
    features = pd.DataFrame(
        {"index": [3, 7, 9], "cell_type": ["T", "B", "NK"], "score": [0.2, 0.9, 0.5]}
    )
    return Labels(cellpose_like(dtype), features=features)


def features_of(layer) -> dict[int, dict]:
    return {int(r["id"]): r for r in objects.object_rows(layer)}


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_edit_in_place_keeps_id_dtype_neighbours_and_columns(dtype):
    layer = foreign_layer(dtype)
    before = np.array(layer.data, copy=True)
    new = np.zeros(before.shape, bool)
    new[8:24, 8:30] = True  # smaller on top, grows down and into cell 7's columns
    row = object_edits.replace_in_place(
        layer,
        PLANE,
        3,
        new,
        overwrite=False,
        predicted_iou=0.93,
        stability=0.9,
        prompts="1+ box refined",
        candidate=0,
        model="tiny",
    )
    data = layer.data
    assert data.dtype == dtype
    assert np.array_equal(data == 7, before == 7) and np.array_equal(data == 9, before == 9)
    assert np.array_equal(data == 3, new & (before != 7) & (before != 9))
    rows = features_of(layer)
    assert row["id"] == 3 and row["edited"] is True and row["area"] == int((data == 3).sum())
    assert rows[3]["cell_type"] == "T" and rows[3]["predicted_iou"] == 0.93
    assert rows[7]["cell_type"] == "B" and rows[7]["score"] == 0.9  # untouched rows intact
    assert rows[9]["cell_type"] == "NK"
    assert list(layer.features["index"]) == [3, 7, 9]  # napari still finds each row

    objects.undo(layer)  # one step back: the cell and its row as they were
    assert np.array_equal(layer.data, before)
    assert features_of(layer)[3]["score"] == 0.2
    assert pd.isna(features_of(layer)[3].get("edited"))
    objects.redo(layer)
    assert np.array_equal(layer.data == 3, data == 3)
    assert features_of(layer)[3]["edited"] is True


def test_overwrite_takes_neighbour_pixels_only_when_on():
    layer = Labels(cellpose_like(np.uint16))
    new = np.zeros((40, 60), bool)
    new[5:20, 20:30] = True
    object_edits.replace_in_place(
        layer,
        PLANE,
        3,
        new,
        overwrite=True,
        predicted_iou=0.9,
        stability=0.9,
        prompts="",
        candidate=0,
        model="",
    )
    assert (layer.data[5:20, 25:30] == 3).all() and (layer.data[5:20, 30:40] == 7).all()


def test_history_before_the_edit_stays_undoable():
    layer = Labels(cellpose_like(np.uint8))
    with layer.block_history():  # the user painted a stroke by hand first
        layer.data_setitem((np.array([38, 38]), np.array([1, 2])), 4)
    new = np.zeros((40, 60), bool)
    new[5:15, 5:15] = True
    object_edits.replace_in_place(
        layer,
        PLANE,
        3,
        new,
        overwrite=False,
        predicted_iou=0.9,
        stability=0.9,
        prompts="",
        candidate=0,
        model="",
    )
    objects.undo(layer)
    assert (layer.data == 3).sum() == 15 * 20 and layer.data[38, 1] == 4
    objects.undo(layer)
    assert layer.data[38, 1] == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_delete_merge_split_each_undo_in_one_step(dtype):
    layer = foreign_layer(dtype)
    original = np.array(layer.data, copy=True)

    assert object_edits.delete(layer, PLANE, 7) == 15 * 15
    assert not (layer.data == 7).any() and 7 not in features_of(layer)
    objects.undo(layer)
    assert np.array_equal(layer.data, original) and features_of(layer)[7]["cell_type"] == "B"

    merged = object_edits.merge(layer, PLANE, 3, 7)
    assert np.array_equal(layer.data == 3, (original == 3) | (original == 7))
    assert merged["area"] == 15 * 35 and merged["edited"] is True and merged["cell_type"] == "T"
    assert set(features_of(layer)) == {3, 9}
    objects.undo(layer)
    assert np.array_equal(layer.data, original)
    assert features_of(layer)[3]["area"] != merged["area"] and set(features_of(layer)) == {3, 7, 9}

    part = np.zeros(original.shape, bool)
    part[5:20, 5:12] = True
    new, rest = object_edits.split(
        layer,
        PLANE,
        3,
        part,
        predicted_iou=0.8,
        stability=0.7,
        prompts="1+",
        candidate=0,
        model="m",
    )
    assert new["id"] == 10 and rest["id"] == 3 and layer.data.dtype == dtype
    assert np.array_equal(layer.data == 10, part & (original == 3))
    assert np.array_equal(layer.data == 3, (original == 3) & ~part)
    assert "cell_type" not in new  # a new object: a foreign column says nothing of it
    assert rest["cell_type"] == "T" and rest["area"] == 15 * 13
    objects.undo(layer)
    assert np.array_equal(layer.data, original)
    assert set(features_of(layer)) == {3, 7, 9}
    assert features_of(layer)[3]["score"] == 0.2
    objects.redo(layer)
    assert set(features_of(layer)) == {3, 7, 9, 10}


def test_split_in_a_full_dtype_is_refused_and_changes_nothing():
    data = cellpose_like(np.uint8)
    data[0, 0] = 255
    layer = Labels(data.copy())
    part = np.zeros(data.shape, bool)
    part[5:20, 5:12] = True
    with pytest.raises(Exception, match="uint8 holds ids up to 255"):
        object_edits.split(layer, PLANE, 3, part, predicted_iou=1.0, stability=1.0)
    assert np.array_equal(layer.data, data) and len(layer._undo_history) == 0


def test_edit_on_the_plane_in_view_of_a_stack():
    stack = np.stack([cellpose_like(np.int32)] * 3)
    layer = Labels(stack.copy(), scale=(2.0, 0.5, 0.5), translate=(0, 10, 10))
    ref = SliceRef((1, None, None), (1, 2))
    new = np.zeros((40, 60), bool)
    new[5:10, 5:10] = True
    row = object_edits.replace_in_place(
        layer,
        ref,
        3,
        new,
        overwrite=False,
        predicted_iou=0.9,
        stability=0.9,
        prompts="",
        candidate=0,
        model="",
    )
    assert row["slice"] == "1" and row["area"] == 25
    assert np.array_equal(layer.data[0], stack[0]) and np.array_equal(layer.data[2], stack[2])
    assert np.array_equal(layer.data[1] == 3, new)


def test_foreign_table_without_index_is_read_as_napari_does():
    """Without an ``index`` column napari takes row i for label i: so do edits."""
    data = np.zeros((10, 10), np.uint8)
    data[1:3, 1:3] = 1
    data[5:9, 5:9] = 2
    layer = Labels(data, features=pd.DataFrame({"kind": ["bg", "small", "large"]}))
    object_edits.adopt_features(layer)
    rows = features_of(layer)
    assert rows[1]["kind"] == "small" and rows[2]["kind"] == "large"
    assert (rows[2]["bbox_row0"], rows[2]["bbox_col1"]) == (5, 9)


def test_set_class_gives_a_row_to_an_object_without_one():
    layer = Labels(cellpose_like(np.int32))
    row = object_edits.set_class(layer, 9, "nucleus", PLANE)
    assert row["class"] == "nucleus" and row["area"] == 200
    assert features_of(layer)[9]["class"] == "nucleus"
    with pytest.raises(EditError, match="no row"):
        object_edits.set_class(Labels(np.zeros((4, 4), np.uint8)), 2, "x")


def test_the_edit_adds_the_object_box_and_mask_to_the_prompts():
    mask = cellpose_like(np.uint8) == 3
    state = SessionState()
    edit = ObjectEdit(layer=None, object_id=3, ref=PLANE, image_layer=None, mask=mask)

    class Inner:
        prompts = Prompts()

        def read_prompts(self, ref):
            return self.prompts

        def show_mask(self, mask):
            pass

    inner = Inner()
    view = EditingPromptView(inner, state)
    assert view.read_prompts(PLANE).is_empty  # no edit: the layers' prompts only
    view.edit = edit
    prompts = view.read_prompts(PLANE)
    assert prompts.box.tolist() == [4.5, 4.5, 19.5, 24.5] and prompts.mask_input is None
    inner.prompts = Prompts.from_points([[30.0, 50.0], [2.0, 2.0]], [1, 0])
    grown = view.read_prompts(PLANE)
    assert grown.box.tolist() == [4.5, 4.5, 30.5, 50.5]  # covers the positive click only
    assert view.read_prompts(SliceRef((2, None, None), (1, 2))).box is None  # other plane


def test_a_new_commit_keeps_a_foreign_table_and_its_objects_show_grey():
    layer = foreign_layer(np.int32)
    mask = np.zeros((40, 60), bool)
    mask[36:39, 50:58] = True
    row = objects.commit_mask(
        layer,
        PLANE,
        mask,
        overwrite=False,
        predicted_iou=0.95,
        stability=0.9,
        prompts="1+",
        candidate=0,
        model="tiny",
        class_name="debris",
    )
    rows = features_of(layer)
    assert row["id"] == 10 and rows[10]["class"] == "debris"
    assert [rows[i]["cell_type"] for i in (3, 7, 9)] == ["T", "B", "NK"]
    colours = objects.confidence_colormap(layer).map(np.array([3, 10]))
    assert np.allclose(colours[0], [0.6, 0.6, 0.6, 1.0])  # no score: grey, not NaN
    assert np.allclose(colours[1], objects.confidence_color(0.95))  # its own score


def moving_cells(dtype=np.uint16) -> np.ndarray:
    """Four planes of the three cells; cell 3 drifts right and is absent from the last plane."""
    planes = []
    for z in range(4):
        plane = cellpose_like(dtype)
        plane[plane == 3] = 0
        if z < 3:
            plane[5:20, 5 + z : 25 + z][plane[5:20, 5 + z : 25 + z] == 0] = 3
        planes.append(plane)
    return np.stack(planes)


def test_delete_merge_split_through_every_plane_each_undo_in_one_step():
    stack = moving_cells()
    layer = Labels(
        stack.copy(), features=pd.DataFrame({"index": [3, 7, 9], "kind": ["a", "b", "c"]})
    )
    ref = SliceRef((1, None, None), (1, 2))
    history = len(layer._undo_history)

    removed = object_edits.delete(layer, ref, 3, whole=True)
    assert removed == int((stack == 3).sum()) and not (layer.data == 3).any()
    assert 3 not in features_of(layer) and len(layer._undo_history) == history + 1
    objects.undo(layer)
    assert np.array_equal(layer.data, stack) and features_of(layer)[3]["kind"] == "a"

    merged = object_edits.merge(layer, ref, 9, 7, whole=True)
    assert np.array_equal(layer.data == 9, (stack == 9) | (stack == 7))
    assert set(features_of(layer)) == {3, 9} and merged["kind"] == "c"
    objects.undo(layer)
    assert np.array_equal(layer.data, stack) and set(features_of(layer)) == {3, 7, 9}

    part = np.zeros((40, 60), bool)
    part[:, :14] = True  # the left of cell 3's footprint, on every plane it is on
    new, rest = object_edits.split(layer, ref, 3, part, whole=True, predicted_iou=0.8)
    assert new["id"] == 10 and rest["id"] == 3 and not new.get("kind") and rest["kind"] == "a"
    expected_new = (stack == 3) & part[None]
    assert np.array_equal(layer.data == 10, expected_new)
    assert np.array_equal(layer.data == 3, (stack == 3) & ~part[None])
    assert all(expected_new[z].any() for z in range(3)) and not (layer.data[3] == 10).any()
    objects.undo(layer)  # one step takes it back on every plane
    assert np.array_equal(layer.data, stack) and set(features_of(layer)) == {3, 7, 9}
    objects.redo(layer)
    assert np.array_equal(layer.data == 10, expected_new) and 10 in features_of(layer)


def test_whole_object_edits_refuse_what_cannot_be_done():
    stack = moving_cells()
    layer = Labels(stack.copy())
    ref = SliceRef((0, None, None), (1, 2))
    with pytest.raises(EditError, match="object 5 is not in"):
        object_edits.delete(layer, ref, 5, whole=True)
    with pytest.raises(EditError, match="merged with itself"):
        object_edits.merge(layer, ref, 3, 3, whole=True)
    everything = np.ones((40, 60), bool)
    with pytest.raises(EditError, match="covers all of object 3 on every plane"):
        object_edits.split(layer, ref, 3, everything, whole=True)
    with pytest.raises(EditError, match="covers none of object 3 on any plane"):
        object_edits.split(layer, ref, 3, ~everything, whole=True)
    assert np.array_equal(layer.data, stack) and len(layer._undo_history) == 0


def test_a_plane_of_the_object_may_go_whole_to_the_new_object():
    """On a plane where the footprint covers all of the object, that plane is the new id."""
    stack = moving_cells()
    layer = Labels(stack.copy())
    ref = SliceRef((0, None, None), (1, 2))
    part = np.zeros((40, 60), bool)
    part[5:20, 7:26] = True  # all of cell 3 on plane 2 (cols 7-24), part of it on 0 and 1
    object_edits.split(layer, ref, 3, part, whole=True)
    assert not (layer.data[2] == 3).any() and (layer.data[2] == 10).sum() == (stack[2] == 3).sum()
    assert (layer.data[0] == 3).any() and (layer.data[1] == 3).any()
