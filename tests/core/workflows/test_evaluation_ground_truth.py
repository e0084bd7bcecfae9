"""Ground truth for evaluation: bad input refused with one clear line, objects read exactly."""

from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core.workflows.evaluation import (
    EvaluationError,
    check_ground_truth,
    classes_from_rows,
    plane_objects,
)
from napari_promptseg.core.workflows.evaluation.ground_truth import object_planes


def labels_2d():
    labels = np.zeros((20, 30), dtype=np.int32)
    labels[2:6, 3:9] = 4
    labels[10:18, 20:29] = 1
    return labels


@pytest.mark.parametrize(
    ("labels", "planes", "plane", "message"),
    [
        (np.zeros((20, 31), np.uint16), (), (20, 30), r"shape \(20, 31\) but .* need \(20, 30\)"),
        (np.zeros((20, 30), np.uint16), (3,), (20, 30), r"need \(3, 20, 30\)"),
        (np.zeros((20, 30), np.uint16), (), (20, 30), "empty: it holds no object"),
        (np.full((20, 30), 0.5), (), (20, 30), "integer ids; got dtype float64"),
        (np.full((20, 30), -1, np.int16), (), (20, 30), "negative ids"),
        (np.full((20, 30), 3, np.uint8), (), (20, 30), "object 3 covers the whole image"),
    ],
)
def test_bad_ground_truth_is_refused_with_one_line(labels, planes, plane, message):
    with pytest.raises(EvaluationError, match=message) as caught:
        check_ground_truth(labels, planes, plane)
    assert "\n" not in str(caught.value)


def test_a_whole_plane_object_in_a_stack_names_the_plane():
    stack = np.zeros((3, 10, 10), np.uint16)
    stack[0, 2:4, 2:4] = 1
    stack[2] = 5
    with pytest.raises(EvaluationError, match=r"object 5 covers the whole image of plane \(2,\)"):
        check_ground_truth(stack, (3,), (10, 10))


def test_bool_ground_truth_is_one_object():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    labels = check_ground_truth(mask, (), (8, 8))
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}


def test_plane_objects_ids_areas_and_windows():
    objects = plane_objects(labels_2d())
    assert [(o.label_id, o.area) for o in objects] == [(1, 72), (4, 24)]
    assert objects[1].window == (slice(2, 6), slice(3, 9))
    np.testing.assert_array_equal(objects[1].mask(labels_2d()), labels_2d() == 4)


def test_plane_objects_with_sparse_large_ids():
    labels = np.zeros((10, 10), np.uint32)
    labels[1:3, 1:4] = 4_000_000_000
    labels[6:9, 6:7] = 70_000
    objects = plane_objects(labels)
    assert [(o.label_id, o.area, o.window) for o in objects] == [
        (70_000, 3, (slice(6, 9), slice(6, 7))),
        (4_000_000_000, 6, (slice(1, 3), slice(1, 4))),
    ]


def test_only_planes_with_objects_are_listed():
    stack = np.zeros((2, 3, 6, 6), np.uint8)
    stack[0, 2, 1, 1] = 1
    stack[1, 0, 3, 3] = 2
    assert list(object_planes(stack, (2, 3))) == [(0, 2), (1, 0)]


def test_classes_from_rows_reads_class_then_category_and_skips_the_rest():
    rows = [
        {"id": "1", "class": "nucleus"},
        {"id": 2.0, "class": " cell "},
        {"id": "3", "class": ""},
        {"id": "4", "category": "debris"},  # tables written before the class column
        {"id": "x", "class": "nucleus"},
        {"id": 5, "class": float("nan")},
        {"class": "orphan"},
    ]
    assert classes_from_rows(rows) == {1: "nucleus", 2: "cell", 4: "debris"}
