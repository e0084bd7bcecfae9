"""Fault matrix, prompts (core, no Qt). Outside points, degenerate boxes, empty and
negative-only prompts are in tests/core/sam/test_prompts.py; this adds the edges around them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core import PromptError, Prompts, Scribble, to_rgb_uint8
from napari_promptseg.core.sam.prompts import to_sam_prompts


@pytest.fixture(scope="module")
def embedded(tiny_sam):
    from napari_promptseg.core import PromptSegmenter

    segmenter = PromptSegmenter(tiny_sam, "tiny-test")
    image = np.random.default_rng(3).integers(0, 255, (120, 170), dtype=np.uint8)
    return segmenter, segmenter.embed(to_rgb_uint8(image))


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (Prompts.from_points([[-0.51, 10]]), "lie outside the 120x170 image"),
        (Prompts.from_points([[10, 169.51]]), "lie outside the 120x170 image"),
        (Prompts.from_points([[5, 5], [500, 5], [600, 5]]), "2 prompt point"),
        (Prompts(box=[10, 10, 10.5, 80]), "zero area"),
        (Prompts(box=[10, 10, 60, 10]), "zero area"),
        (Prompts(box=[-50, -50, -1, 80]), "lies outside the 120x170 image"),
        (Prompts(box=[119.2, 20, 400, 60]), "zero area"),  # clipped to the last half row
        (Prompts(scribbles=(Scribble([[5, 5]], positive=False),)), "only negative"),
        (Prompts(scribbles=(Scribble([[5, 5], [5, 500]]),)), "outside"),
    ],
    ids=[
        "point-just-above",
        "point-just-right",
        "two-of-three-outside",
        "box-half-pixel-high",
        "box-zero-wide",
        "box-above-image",
        "box-clipped-to-a-sliver",
        "one-pixel-negative-scribble",
        "scribble-leaving-the-image",
    ],
)
def test_bad_prompts_are_named(embedded, prompts, message):
    segmenter, embedding = embedded
    with pytest.raises(PromptError, match=message):
        segmenter.predict(embedding, prompts)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box": [np.nan, 0, 5, 5]}, "a box is"),
        ({"box": [[0, 0], [5, 5], [9, 9]]}, "a box is"),
        ({"points": [[np.inf, 2]], "labels": [1]}, "finite"),
    ],
)
def test_malformed_prompt_values(kwargs, message):
    with pytest.raises(PromptError, match=message):
        Prompts(**kwargs)


@pytest.mark.parametrize("path", [[[40.0, 60.0]], [[40.0, 60.0], [40.0, 60.0]]])
def test_scribble_of_one_pixel_is_one_point(embedded, path):
    segmenter, embedding = embedded
    prompts = Prompts(scribbles=(Scribble(path),))
    sam = to_sam_prompts(prompts, (120, 170))
    np.testing.assert_array_equal(sam.point_coords, [[60.0, 40.0]])  # (x, y)
    result = segmenter.predict(embedding, prompts)
    same = segmenter.predict(embedding, Prompts.from_points([[40.0, 60.0]]))
    np.testing.assert_array_equal(result.masks, same.masks)


def test_points_on_the_border_are_inside(embedded):
    segmenter, embedding = embedded
    result = segmenter.predict(embedding, Prompts.from_points([[-0.5, -0.5], [119.5, 169.5]]))
    assert result.masks.shape[1:] == (120, 170)


def test_thousands_of_points_are_refused_with_the_limit(embedded):
    segmenter, embedding = embedded
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(0, 119, 2000), rng.uniform(0, 169, 2000)], axis=1)
    labels = rng.integers(0, 2, 2000)
    labels[0] = 1
    with pytest.raises(PromptError, match=r"too many prompt points \(2000\).*at most 256"):
        segmenter.predict(embedding, Prompts.from_points(points, labels))
    # at the limit it decodes
    result = segmenter.predict(embedding, Prompts.from_points(points[:256], labels[:256]))
    assert result.masks.shape == (1, 120, 170)  # many points: SAM's single-mask output
    assert np.isfinite(result.iou).all()


def test_long_scribble_is_bounded(embedded):
    rows = np.linspace(5, 115, 10_000)
    path = np.stack([rows, 80 + 40 * np.sin(rows / 7)], axis=1)
    sam = to_sam_prompts(Prompts(scribbles=(Scribble(path),)), (120, 170))
    assert len(sam.point_coords) == 8  # max_points per stroke, whatever its vertex count


def test_prompt_on_a_plane_that_is_not_there():
    """The core refuses points for a smaller image than they were placed on (slice gone,
    image replaced); the napari side filters prompts per plane, see test_gui_prompts.py."""
    prompts = Prompts.from_points([[250, 400]])
    with pytest.raises(PromptError, match="outside the 120x170 image"):
        to_sam_prompts(prompts, (120, 170))
