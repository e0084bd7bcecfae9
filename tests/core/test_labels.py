from __future__ import annotations

import math

import numpy as np
import pytest

from napari_promptseg.core.labels import (
    LabelsError,
    bounding_box,
    cell_text,
    next_label_id,
    object_row,
    paste_mask,
    pixels_to_paint,
    same_row,
)
from napari_promptseg.core.workflows.propagation.propagate import PlaneResult
from napari_promptseg.core.workflows.propagation.rows import parse_scores, propagated_row


def test_next_id():
    assert next_label_id(np.zeros((3, 3), np.uint16)) == 1
    labels = np.zeros((3, 3), np.int32)
    labels[0, 0] = 41
    assert next_label_id(labels) == 42


def test_next_id_refuses_when_dtype_is_full():
    labels = np.full((2, 2), 255, np.uint8)
    with pytest.raises(LabelsError, match="uint8 holds ids up to 255"):
        next_label_id(labels)
    with pytest.raises(LabelsError, match="integer"):
        next_label_id(np.zeros((2, 2), np.float32))


def test_paste_keeps_existing_objects_by_default():
    labels = np.zeros((4, 4), np.uint16)
    labels[:2, :2] = 1
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    pasted, area = paste_mask(labels, mask, 2)
    assert pasted[1, 1] == 1  # object 1 untouched
    assert area == 3
    assert (pasted == 2).sum() == 3
    assert (labels == 2).sum() == 0  # input not modified


def test_paste_overwrites_when_asked():
    labels = np.ones((4, 4), np.uint16)
    mask = np.zeros((4, 4), bool)
    mask[0, :] = True
    pasted, area = paste_mask(labels, mask, 5, overwrite=True)
    assert area == 4 and (pasted[0] == 5).all() and (pasted[1:] == 1).all()


def test_pixels_to_paint_shape_mismatch():
    with pytest.raises(LabelsError, match="does not match"):
        pixels_to_paint(np.zeros((3, 3)), np.zeros((3, 4), bool))


def test_object_row_describes_painted_pixels():
    painted = np.zeros((10, 12), bool)
    painted[2:5, 3:9] = True
    row = object_row(
        7, painted, predicted_iou=0.91234567, stability=0.8, prompts="1+", slice_index=(3,)
    )
    assert row["id"] == 7
    assert row["area"] == 18
    assert (row["bbox_row0"], row["bbox_col0"], row["bbox_row1"], row["bbox_col1"]) == (2, 3, 5, 9)
    assert row["predicted_iou"] == pytest.approx(0.912346)
    assert row["slice"] == "3"
    assert bounding_box(np.zeros((3, 3), bool)) == (0, 0, 0, 0)


def _square(shape, row0, col0, size):
    mask = np.zeros(shape, bool)
    mask[row0 : row0 + size, col0 : col0 + size] = True
    return mask


def _painted(index, mask, iou, stability=0.9):
    rows, cols = np.nonzero(mask)
    return {index: (PlaneResult(index, mask, iou, stability), rows, cols)}


def _box(row):
    return tuple(row[k] for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1"))


def test_propagated_row_merges_slices_scores_area_and_box():
    shape = (20, 20)
    square = _square(shape, 5, 5, 4)
    start = object_row(
        4, square, predicted_iou=0.95, stability=0.97, prompts="1+", slice_index=(2,)
    )
    painted = {
        **_painted(3, _square(shape, 6, 8, 4), 0.81, 0.93),
        **_painted(1, _square(shape, 2, 4, 2), 0.88),
    }

    row = propagated_row(start, painted, [], axis=0, start_index=2, scored_start=True)

    assert row["id"] == 4 and row["slice"] == "2"  # the start slice stays the object's slice
    assert row["slices"] == "1-3" and row["slice_axis"] == 0
    assert row["slice_ious"] == "1:0.880 2:0.950 3:0.810"
    assert row["predicted_iou"] == pytest.approx(0.81)  # the lowest slice
    assert row["stability"] == pytest.approx(0.9)
    assert row["area"] == 16 + 16 + 4
    assert _box(row) == (2, 4, 10, 12)  # the union of the slices' boxes
    assert row["prompts"] == "1+ propagated"
    assert start["area"] == 16 and "slices" not in start  # the row given is not modified

    # propagating again along the same axis merges the scores; "propagated" is said once
    more = _painted(4, _square(shape, 7, 9, 3), 0.77)
    again = propagated_row(row, more, [3], axis=0, start_index=3, scored_start=True)
    assert again["slice_ious"] == "1:0.880 2:0.950 3:0.810 4:0.770"
    assert again["slices"] == "1-4" and again["prompts"] == "1+ propagated"
    # along another axis the earlier scores do not apply
    across = _painted(0, _square(shape, 0, 0, 2), 0.9)
    other = propagated_row(row, across, [], axis=1, start_index=5, scored_start=True)
    assert other["slice_ious"] == "0:0.900 5:0.810" and other["slice_axis"] == 1


def test_propagated_row_of_a_label_painted_by_hand():
    shape = (10, 10)
    painted_by_hand = object_row(
        9, _square(shape, 1, 1, 3), predicted_iou=math.nan, stability=math.nan, prompts="painted"
    )
    painted = _painted(1, _square(shape, 2, 2, 3), 0.7, 0.6)
    kept = [5]  # the label was already there: not painted, not scored
    row = propagated_row(painted_by_hand, painted, kept, axis=0, start_index=0, scored_start=False)
    assert row["slice_ious"] == "1:0.700"  # the painted slice has no score
    assert row["slices"] == "0-1,5"
    assert row["predicted_iou"] == pytest.approx(0.7) and row["stability"] == pytest.approx(0.6)
    assert row["prompts"] == "painted propagated"


def test_parse_scores_and_cell_text():
    assert parse_scores("3:0.930 4:0.910") == {3: 0.93, 4: 0.91}
    assert parse_scores("") == {}
    assert cell_text(None) == "" and cell_text(math.nan) == "" and cell_text(3) == "3"
    assert cell_text("0-2") == "0-2"


def test_same_row_ignores_what_a_table_round_trip_changes():
    row = {"id": 3, "predicted_iou": 0.9, "slice": "", "slice_axis": 0, "prompts": "1+"}
    read_back = {
        "id": 3.0,
        "predicted_iou": 0.9,
        "slice": math.nan,  # missing, as pandas reads it back
        "slice_axis": np.float64(0),  # an int column with a missing cell
        "prompts": "1+",
        "slices": "",  # a column another row has
    }
    assert same_row(row, read_back)
    assert not same_row(row, {**read_back, "slices": "0-2"})
    assert not same_row(row, {**read_back, "predicted_iou": 0.8})
    assert same_row(None, None) and not same_row(row, None) and not same_row(None, row)
