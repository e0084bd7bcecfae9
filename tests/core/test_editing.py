"""Editing existing objects: picking, SAM's starting point from a mask, pixel edits, rows."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_promptseg.core.editing import (
    EditError,
    box_covering,
    delete_object,
    edited_row,
    mask_box,
    mask_input_from_mask,
    merge_objects,
    object_at,
    object_boxes,
    replace_object,
    split_object,
)
from napari_promptseg.core.errors import PromptError
from napari_promptseg.core.labels import bounding_box, object_row
from napari_promptseg.core.sam.decode import upscale_logits


def _plane(dtype=np.uint8) -> np.ndarray:
    """Three objects side by side: 1 (rows 2-5, cols 2-5), 2 touching it on the right, 7."""
    plane = np.zeros((12, 16), dtype)
    plane[2:6, 2:6] = 1
    plane[2:6, 6:9] = 2
    plane[8:11, 10:14] = 7
    return plane


def test_object_at_names_background_and_outside():
    plane = _plane()
    assert object_at(plane, 3.2, 6.4) == 2
    with pytest.raises(
        EditError, match=r"no object at \(0, 0\) in 'cells': that pixel is background"
    ):
        object_at(plane, 0, 0, layer_name="cells")
    with pytest.raises(EditError, match="outside 'labels'"):
        object_at(plane, 12.7, 3)
    with pytest.raises(EditError, match="not a label image"):
        object_at(plane.astype(float), 3, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint64])
def test_replace_keeps_the_id_and_spares_neighbours(dtype):
    plane = _plane(dtype)
    new = np.zeros(plane.shape, bool)
    new[3:8, 4:8] = True  # shrinks on the left, grows down, reaches into object 2
    edit = replace_object(plane, 1, new)
    after = edit.apply(plane)
    assert after.dtype == plane.dtype
    assert np.array_equal(after == 2, plane == 2)  # neighbour untouched
    assert np.array_equal(after == 7, plane == 7)
    assert np.array_equal(after == 1, new & (plane != 2))
    assert set(np.unique(edit.before)) <= {0, 1} and set(np.unique(edit.values)) == {0, 1}

    taken = replace_object(plane, 1, new, overwrite=True).apply(plane)
    assert np.array_equal(taken == 1, new)
    assert (taken == 2).sum() == (plane == 2).sum() - (new & (plane == 2)).sum()


def test_replace_refuses_a_mask_wholly_on_other_objects():
    plane = _plane()
    with pytest.raises(EditError, match="lies entirely on other objects"):
        replace_object(plane, 1, plane == 2)
    with pytest.raises(EditError, match="object 5 is not on this plane"):
        replace_object(plane, 5, plane == 1)
    with pytest.raises(EditError, match="does not match"):
        replace_object(plane, 1, np.ones((3, 3), bool))


def test_delete_merge_split():
    plane = _plane(np.int32)
    gone = delete_object(plane, 2).apply(plane)
    assert not (gone == 2).any() and np.array_equal(gone == 1, plane == 1)

    merged = merge_objects(plane, 1, 2).apply(plane)
    assert np.array_equal(merged == 1, (plane == 1) | (plane == 2))
    assert np.array_equal(merged == 7, plane == 7)
    with pytest.raises(EditError, match="with itself"):
        merge_objects(plane, 1, 1)
    with pytest.raises(EditError, match="object 3 is not on this plane"):
        merge_objects(plane, 1, 3)

    part = np.zeros(plane.shape, bool)
    part[0:4, 0:4] = True  # reaches into the background: only the object's pixels move
    split = split_object(plane, 1, part, 8).apply(plane)
    assert np.array_equal(split == 8, part & (plane == 1))
    assert np.array_equal(split == 1, (plane == 1) & ~part)
    assert np.array_equal(split == 2, plane == 2) and not (split[part & (plane == 0)]).any()
    with pytest.raises(EditError, match="covers none of object 1"):
        split_object(plane, 1, plane == 7, 8)
    with pytest.raises(EditError, match="covers all of object 1"):
        split_object(plane, 1, plane > 0, 8)
    with pytest.raises(EditError, match="ends at 255"):
        split_object(plane.astype(np.uint8), 1, part, 256)


def test_probes_tell_whether_the_edit_is_in():
    plane = _plane()
    new = np.zeros(plane.shape, bool)
    new[2:9, 2:5] = True
    edit = replace_object(plane, 1, new)
    rows, cols, values, before = edit.probes(8)
    assert len(rows) == 8 and len(set(zip(rows, cols, strict=True))) == 8
    after = edit.apply(plane)
    assert np.array_equal(after[rows, cols], values)
    assert np.array_equal(plane[rows, cols], before)


def test_mask_box_and_box_covering():
    mask = np.zeros((5, 5), bool)
    mask[2, 3] = True
    assert mask_box(mask).tolist() == [1.5, 2.5, 2.5, 3.5]  # one pixel: a 1 x 1 box
    with pytest.raises(PromptError, match="empty mask"):
        mask_box(np.zeros((3, 3), bool))
    grown = box_covering(np.array([1.5, 2.5, 2.5, 3.5]), np.array([[4.0, 0.0]]))
    assert grown.tolist() == [1.5, -0.5, 4.5, 3.5]


@pytest.mark.parametrize("shape", [(300, 517), (517, 300), (64, 64)])
def test_mask_input_reads_back_as_the_object(shape):
    """Upscaled the way the decoder's own low-res logits are, the mask input is the object."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    mask = (rows - shape[0] * 0.4) ** 2 + (cols - shape[1] * 0.6) ** 2 < (min(shape) * 0.3) ** 2
    scale = 1024 / max(shape)
    input_size = (int(shape[0] * scale + 0.5), int(shape[1] * scale + 0.5))
    logits = mask_input_from_mask(mask, input_size)
    assert logits.shape == (1, 256, 256) and logits.dtype == np.float32
    assert math.isclose(float(logits.max()), math.log(999), rel_tol=1e-3)
    padding = logits[0, math.ceil(input_size[0] / 4) :, :]
    assert not padding.any()  # wholly outside the image: 0, as micro-sam pads
    sam = SimpleNamespace(image_encoder=SimpleNamespace(img_size=1024))
    back = upscale_logits(sam, torch.from_numpy(logits)[None], input_size, shape)[0, 0].numpy() > 0
    iou = (back & mask).sum() / (back | mask).sum()
    assert iou > 0.95


def test_mask_input_for_a_squeezed_square_input():
    """SAM 2.1 squeezes the whole image to 1024 x 1024: the mask fills the 256 x 256 input."""
    mask = np.ones((100, 300), bool)
    logits = mask_input_from_mask(mask, (1024, 1024))
    assert (logits > 0).all()
    with pytest.raises(PromptError, match="one \\(H, W\\) mask"):
        mask_input_from_mask(np.ones((2, 3, 3), bool), (1024, 1024))


def test_edited_row_keeps_foreign_columns_and_class():
    painted = np.zeros((12, 16), bool)
    painted[3:8, 4:8] = True
    previous = {"id": 1, "class": "nucleus", "cell_type": "T cell", "predicted_iou": 0.5}
    row = edited_row(
        previous,
        1,
        painted,
        slice_index=(3,),
        predicted_iou=0.91,
        stability=0.8,
        prompts="1+ box refined",
        candidate=0,
        model="tiny",
    )
    assert row["edited"] is True and row["cell_type"] == "T cell" and row["class"] == "nucleus"
    assert row["area"] == 20 and row["predicted_iou"] == 0.91 and row["slice"] == "3"
    assert (row["bbox_row0"], row["bbox_col0"], row["bbox_row1"], row["bbox_col1"]) == (3, 4, 8, 8)

    committed = object_row(2, painted, predicted_iou=0.7, stability=0.9, prompts="2+", model="m")
    resized = edited_row(committed, 2, painted[:5], slice_index=None)  # pixels only
    assert (
        resized["predicted_iou"] == 0.7 and resized["prompts"] == "2+" and resized["model"] == "m"
    )
    assert resized["area"] == 8 and resized["edited"] is True
    assert math.isnan(edited_row(None, 3, painted, slice_index=None)["predicted_iou"])
    relabelled = edited_row(previous, 1, painted, slice_index=None, class_name="cell")
    assert relabelled["class"] == "cell"


def test_object_boxes_match_bounding_box_per_object():
    stack = np.zeros((3, 20, 30), np.int32)
    stack[0, 2:5, 3:9] = 2_000_000_000  # a sparse, large id
    stack[2, 10:12, 1:2] = 2_000_000_000
    stack[1, 4:6, 20:29] = 5
    boxes = object_boxes(stack)
    assert boxes == {5: (4, 20, 6, 29), 2_000_000_000: (2, 1, 12, 9)}
    plane = _plane()
    assert object_boxes(plane) == {i: bounding_box(plane == i) for i in (1, 2, 7)}
    assert object_boxes(np.zeros((4, 4), np.uint8)) == {}
