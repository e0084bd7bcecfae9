"""Finetuning data: pairs checked, folders read, training and validation split apart."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_promptseg.core.workflows.finetune.data import (
    MIN_OBJECTS,
    TrainingDataError,
    check_enough,
    make_plane,
    planes_from_folder,
    planes_from_stack,
    split_planes,
    validation_labels,
)


def grid_labels(n_objects: int, shape=(120, 160), size=10) -> np.ndarray:
    """``n_objects`` squares of ``size`` px on a grid, ids 1..n."""
    labels = np.zeros(shape, np.int32)
    per_row = shape[1] // (2 * size)
    for i in range(n_objects):
        r, c = divmod(i, per_row)
        labels[
            2 * size * r + 2 : 2 * size * r + 2 + size, 2 * size * c + 2 : 2 * size * c + 2 + size
        ] = i + 1
    return labels


def test_plane_converts_the_image_as_sam_sees_it():
    image = np.linspace(100, 4000, 120 * 160).reshape(120, 160).astype(np.uint16)
    plane = make_plane(image, grid_labels(3), "a.tif")
    assert plane.rgb.shape == (120, 160, 3) and plane.rgb.dtype == np.uint8
    assert plane.rgb[0, 0, 0] == 0 and plane.rgb[-1, -1, 2] == 255  # min/max contrast
    assert plane.object_ids() == [1, 2, 3]


def test_labels_of_another_shape_are_refused_with_both_shapes():
    with pytest.raises(
        TrainingDataError, match=r"a.tif: the labels are 100 x 160, the image 120 x 160"
    ):
        make_plane(np.zeros((120, 160), np.uint8), np.zeros((100, 160), np.int32), "a.tif")


def test_float_labels_are_refused():
    with pytest.raises(TrainingDataError, match="float64 values, not integer object ids"):
        make_plane(np.zeros((8, 8), np.uint8), np.zeros((8, 8)), "x")


def test_too_few_objects_names_the_minimum():
    plane = make_plane(np.zeros((120, 160), np.uint8), grid_labels(4), "session")
    with pytest.raises(
        TrainingDataError, match=rf"at least {MIN_OBJECTS} annotated objects.*found 4 in 1 plane"
    ):
        check_enough([plane])
    tiny = grid_labels(20, size=3)  # 9-pixel objects do not count
    with pytest.raises(TrainingDataError, match="found 0"):
        check_enough([make_plane(np.zeros((120, 160), np.uint8), tiny, "s")])


def test_stack_gives_the_planes_that_hold_objects():
    labels = np.zeros((3, 120, 160), np.int32)
    labels[0], labels[2] = grid_labels(2), grid_labels(5)
    image = np.zeros((3, 120, 160), np.float32)
    image[1] = 10.0
    planes = planes_from_stack(image, labels, "stack.tif")
    assert [p.source for p in planes] == ["stack.tif plane (0,)", "stack.tif plane (2,)"]
    assert [len(p.object_ids()) for p in planes] == [2, 5]


def test_split_by_objects_never_trains_on_a_validation_object():
    plane = make_plane(np.zeros((120, 160), np.uint8), grid_labels(20), "one image")
    train, val = split_planes([plane], 0.25, seed=3)
    assert len(train) == len(val) == 1
    held = val[0].holdout
    assert len(held) == 5
    assert not set(held) & set(train[0].object_ids())
    assert set(np.unique(validation_labels(val[0]))) == {0, *held}
    assert split_planes([plane], 0.25, seed=3)[1][0].holdout == held  # the seed repeats it


def test_split_by_planes_with_enough_planes():
    planes = [
        make_plane(np.zeros((120, 160), np.uint8), grid_labels(3), f"p{i}") for i in range(10)
    ]
    train, val = split_planes(planes, 0.2, seed=0)
    assert len(val) == 2 and len(train) == 8
    assert not {p.source for p in train} & {p.source for p in val}
    assert all(not p.holdout for p in val)


def test_folder_pairs_in_both_layouts(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    labels = grid_labels(4)
    tifffile.imwrite(images / "a.tif", np.full((120, 160), 7, np.uint8))
    tifffile.imwrite(images / "a_labels.tif", labels)  # the Image folder layout, beside it
    tifffile.imwrite(images / "b.tif", np.full((120, 160), 9, np.uint8))  # no labels anywhere
    planes, skipped = planes_from_folder(images)
    assert [p.source for p in planes] == ["a.tif"] and skipped == ["b.tif: no labels file"]
    tifffile.imwrite(masks / "b.tif", labels)  # images/ + masks/ with the same names
    planes, skipped = planes_from_folder(images, masks)
    assert [p.source for p in planes] == ["b.tif"]
    np.testing.assert_array_equal(planes[0].labels, labels)


def test_folder_labels_of_another_shape_name_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((120, 160), np.uint8))
    tifffile.imwrite(tmp_path / "a_labels.tif", np.zeros((60, 160), np.uint16))
    with pytest.raises(
        TrainingDataError, match=r"a.tif: the labels are 60 x 160, the image 120 x 160"
    ):
        planes_from_folder(tmp_path)


def test_missing_folder():
    with pytest.raises(TrainingDataError, match=r"the image folder .* does not exist"):
        planes_from_folder("/nonexistent/folder")
