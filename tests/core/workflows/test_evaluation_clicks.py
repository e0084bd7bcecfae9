"""The click simulator on synthetic masks whose error regions are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_promptseg.core.errors import PromptError
from napari_promptseg.core.workflows.evaluation import (
    Click,
    first_prompt,
    mask_iou,
    most_interior_pixel,
    next_click,
)


def rectangle(shape, rows, cols):
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def test_most_interior_pixel_is_the_distance_maximum_first_in_row_major_order():
    # rows 10..20 (11), cols 5..25 (21): distance 6 on row 15 for cols 10..20; the first wins
    mask = rectangle((40, 40), (10, 21), (5, 26))
    assert most_interior_pixel(mask) == (15, 10)


def test_most_interior_pixel_keeps_off_the_image_border():
    mask = rectangle((30, 30), (0, 30), (0, 10))  # touches the top, bottom and left borders
    # the border counts as outside: distance 5 at columns 4 and 5, first at row 4
    assert most_interior_pixel(mask) == (4, 4)


def test_most_interior_pixel_of_a_ring_lies_on_the_ring():
    rows, cols = np.mgrid[:41, :41]
    radius = np.hypot(rows - 20, cols - 20)
    ring = (radius <= 15) & (radius >= 9)
    row, col = most_interior_pixel(ring)
    assert ring[row, col]
    assert 11 <= np.hypot(row - 20, col - 20) <= 13


def test_first_prompt_point_and_box():
    mask = rectangle((30, 40), (3, 8), (4, 10))  # rows 3..7, cols 4..9
    prompts, click = first_prompt(mask, "point")
    assert click == Click(5, 6, positive=True)
    np.testing.assert_array_equal(prompts.points, [[5, 6]])
    np.testing.assert_array_equal(prompts.labels, [1])

    prompts, click = first_prompt(mask, "box")
    assert click is None and len(prompts.points) == 0
    # outer pixel edges (pixel centres are integers): rows 2.5..7.5, cols 3.5..9.5
    np.testing.assert_array_equal(prompts.box, [2.5, 3.5, 7.5, 9.5])

    one_pixel = rectangle((10, 10), (4, 5), (6, 7))
    np.testing.assert_array_equal(first_prompt(one_pixel, "box")[0].box, [3.5, 5.5, 4.5, 6.5])


def test_first_prompt_refuses_an_empty_object_and_an_unknown_start():
    with pytest.raises(PromptError, match="empty"):
        first_prompt(np.zeros((5, 5), bool), "point")
    with pytest.raises(PromptError, match="empty"):
        first_prompt(np.zeros((5, 5), bool), "box")
    with pytest.raises(PromptError, match="point, box"):
        first_prompt(rectangle((5, 5), (1, 3), (1, 3)), "scribble")


def test_missed_part_gets_a_positive_click_at_its_centre():
    truth = rectangle((60, 60), (10, 50), (10, 50))
    predicted = truth.copy()
    predicted[30:41, 35:50] = False  # missed: rows 30..40, cols 35..49 (11 x 15)
    predicted[0:3, 0:3] = True  # a small spill elsewhere (9 px)
    # the missed block borders the object's edge at col 49, beyond which col 50 is outside
    # the object and outside the missed region: distance 6 at row 35, cols 40..44
    assert next_click(truth, predicted) == Click(35, 40, positive=True)


def test_spill_larger_than_the_miss_gets_a_negative_click():
    truth = rectangle((60, 60), (10, 30), (10, 30))
    predicted = truth.copy()
    predicted[12:14, 12:14] = False  # missed: 4 px
    predicted[40:51, 40:55] = True  # spilled: rows 40..50, cols 40..54 (165 px)
    assert next_click(truth, predicted) == Click(45, 45, positive=False)


def test_largest_region_wins_and_ties_prefer_missed_then_row_major():
    truth = rectangle((50, 50), (5, 45), (5, 45))
    predicted = truth.copy()
    predicted[10:13, 10:13] = False  # missed, 9 px
    predicted[30:35, 30:35] = False  # missed, 25 px: the largest region
    assert next_click(truth, predicted) == Click(32, 32, positive=True)

    predicted = truth.copy()
    predicted[0:3, 0:3] = True  # spilled 9 px, corner outside the object
    predicted[30:33, 30:33] = False  # missed 9 px: a tie, missed first
    assert next_click(truth, predicted) == Click(31, 31, positive=True)

    predicted = truth.copy()
    predicted[20:23, 30:33] = False  # two missed regions of 9 px: the first in row-major order
    predicted[20:23, 10:13] = False
    assert next_click(truth, predicted) == Click(21, 11, positive=True)


def test_an_empty_prediction_is_one_missed_region_the_whole_object():
    truth = rectangle((40, 40), (5, 16), (5, 16))
    assert next_click(truth, np.zeros_like(truth)) == Click(10, 10, positive=True)


def test_a_perfect_mask_gets_no_click():
    truth = rectangle((20, 20), (5, 10), (5, 10))
    assert next_click(truth, truth.copy()) is None


def test_mask_iou():
    a = rectangle((10, 10), (0, 4), (0, 5))  # 20 px
    b = rectangle((10, 10), (2, 6), (0, 5))  # 20 px, 10 shared
    assert mask_iou(a, b) == pytest.approx(10 / 30)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, np.zeros_like(a)) == 0.0


def reference_next_click(truth, predicted):
    """The rule computed on the whole image, the slow obvious way."""
    candidates = []
    for kind, errors in enumerate((truth & ~predicted, predicted & ~truth)):
        numbered, count = ndimage.label(errors)
        for number in range(1, count + 1):
            region = numbered == number
            first = int(np.flatnonzero(region)[0])
            candidates.append((-int(region.sum()), kind, first, region))
    if not candidates:
        return None
    _, kind, _, region = min(candidates, key=lambda c: c[:3])
    distance = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), region.shape)
    return Click(int(row), int(col), positive=kind == 0)


@pytest.mark.parametrize("seed", range(12))
def test_the_windowed_computation_equals_the_whole_image_rule(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 70)), int(rng.integers(20, 70)))
    smooth = lambda: ndimage.gaussian_filter(rng.random(shape), 2.5)  # noqa: E731
    truth = smooth() > 0.5
    predicted = smooth() > 0.5
    if seed % 3 == 0:  # objects touching the image border
        truth[:, :3] = True
    assert next_click(truth, predicted) == reference_next_click(truth, predicted)


def test_mismatched_shapes_are_refused():
    with pytest.raises(PromptError, match="does not match"):
        next_click(np.zeros((5, 5), bool), np.zeros((5, 6), bool))
