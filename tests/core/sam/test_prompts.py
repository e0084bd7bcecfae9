from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core import PromptError, Prompts, Scribble
from napari_promptseg.core.sam.prompts import scribble_points, to_sam_prompts


def test_points_become_xy():
    sam = to_sam_prompts(Prompts(points=[[10, 20], [30, 40]], labels=[1, 0]), (100, 200))
    np.testing.assert_array_equal(sam.point_coords, [[20, 10], [40, 30]])
    np.testing.assert_array_equal(sam.point_labels, [1, 0])
    assert sam.box is None and sam.mask_input is None


def test_box_becomes_xyxy_with_sorted_corners():
    sam = to_sam_prompts(Prompts(box=[50, 80, 10, 20]), (100, 200))
    np.testing.assert_array_equal(sam.box, [20, 10, 80, 50])
    assert sam.point_coords is None


def test_box_past_the_border_is_clipped():
    sam = to_sam_prompts(Prompts(box=[-20, -20, 50, 300]), (100, 200))
    np.testing.assert_array_equal(sam.box, [-0.5, -0.5, 199.5, 50])


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (Prompts(), "no prompt"),
        (Prompts(points=[[5, 5]], labels=[0]), "only negative"),
        (Prompts(points=[[5, 500]], labels=[1]), "outside the 100x200 image"),
        (Prompts(points=[[-3, 5]], labels=[1]), "outside"),
        (Prompts(box=[10, 10, 10, 50]), "zero area"),
        (Prompts(box=[300, 300, 400, 400]), "outside"),
        (Prompts(scribbles=(Scribble([[1, 1], [2, 2]], positive=False),)), "only negative"),
        (Prompts(points=[[5, 5]], labels=[1], mask_input=np.zeros((64, 64))), "mask_input"),
    ],
)
def test_invalid_prompts_are_named(prompts, message):
    with pytest.raises(PromptError, match=message):
        to_sam_prompts(prompts, (100, 200))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(points=[[1, 2]], labels=[1, 1]), "labels"),
        (dict(points=[[1, 2]], labels=[2]), "1 \\(positive\\) or 0"),
        (dict(points=[[np.nan, 2]], labels=[1]), "finite"),
        (dict(box=[1, 2, 3]), "box"),
    ],
)
def test_malformed_prompts(kwargs, message):
    with pytest.raises(PromptError, match=message):
        Prompts(**kwargs)


def test_negative_point_with_box_is_fine():
    sam = to_sam_prompts(Prompts(points=[[5, 5]], labels=[0], box=[0, 0, 50, 50]), (100, 200))
    assert sam.point_labels.tolist() == [0]


def test_scribble_sampling_is_even_and_bounded():
    straight = Scribble(np.array([[0, 0], [0, 100]]))
    sampled = scribble_points(straight, spacing=25, max_points=8)
    np.testing.assert_allclose(sampled, [[0, 0], [0, 25], [0, 50], [0, 75], [0, 100]])
    long_stroke = Scribble(np.array([[0, 0], [0, 1000]]))
    assert len(scribble_points(long_stroke)) == 8
    dot = Scribble(np.array([[5.0, 6.0]]))
    np.testing.assert_array_equal(scribble_points(dot), [[5, 6]])


def test_scribbles_add_labelled_points():
    prompts = Prompts(
        points=[[10, 10]],
        labels=[1],
        scribbles=(Scribble([[20, 0], [20, 40]], positive=False),),
    )
    sam = to_sam_prompts(prompts, (100, 200))
    assert sam.point_labels[0] == 1
    assert (sam.point_labels[1:] == 0).all()
    assert len(sam.point_labels) > 2


def test_summary():
    prompts = Prompts(points=[[1, 1], [2, 2], [3, 3]], labels=[1, 1, 0], box=[0, 0, 5, 5])
    assert prompts.summary() == "2+ 1- box"
