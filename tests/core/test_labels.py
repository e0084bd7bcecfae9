from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core.labels import (
    LabelsError,
    bounding_box,
    next_label_id,
    object_row,
    paste_mask,
    pixels_to_paint,
)


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
