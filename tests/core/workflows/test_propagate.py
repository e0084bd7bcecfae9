"""Propagating an object through the planes of a stack (core.propagate), without Qt."""

from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core import Cancelled, DecodeResult, ImageError, PromptError, to_rgb_uint8
from napari_promptseg.core.workflows.propagation.propagate import (
    PLANE_UNITS,
    format_ranges,
    iter_propagate,
    prompts_from_mask,
    propagate,
)

N, H, W = 7, 64, 80


def disc(center_row: float, center_col: float, radius: float, shape=(H, W)) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows - center_row) ** 2 + (cols - center_col) ** 2 < radius**2


def moving_disc_stack(n=N):
    """A bright disc moving 3 px right per plane; returns (stack uint8, per-plane truth)."""
    truth = np.stack([disc(32, 25 + 3 * i, 12) for i in range(n)])
    stack = np.where(truth, 220, 30).astype(np.uint8)
    return stack, truth


class FakeSegmenter:
    """Stands in for PromptSegmenter: plane ``i``'s "embedding" is ``i`` (read from the
    corner pixel), its mask and predicted IoU come from tables. Records every call."""

    def __init__(self, masks, ious, stability=0.95):
        self.masks, self.ious, self.stability = masks, ious, stability
        self.embedded: list[int] = []
        self.calls: list[tuple[int, object, object]] = []

    def iter_embed(self, rgb):
        index = int(rgb[0, 0, 0])
        self.embedded.append(index)
        yield 1, 2
        yield 2, 2
        return index

    def predict(self, embedding, prompts, multimask=None):
        self.calls.append((embedding, prompts, multimask))
        mask = np.asarray(self.masks[embedding], dtype=bool)
        return DecodeResult(
            masks=mask[None],
            iou=np.array([self.ious.get(embedding, 0.9)], dtype=np.float32),
            stability=np.array([self.stability], dtype=np.float32),
            low_res_logits=np.full((1, 256, 256), float(embedding), dtype=np.float32),
            best=0,
        )


def index_planes(n=N):
    """plane_rgb for the fake: the plane index in every pixel."""
    return lambda i: np.full((H, W, 3), i, dtype=np.uint8)


def test_stops_at_the_first_plane_under_min_iou_in_each_direction():
    _, truth = moving_disc_stack()
    fake = FakeSegmenter(truth, {0: 0.95, 1: 0.9, 3: 0.92, 4: 0.88, 5: 0.55, 6: 0.99})
    result = propagate(fake, index_planes(), 2, truth[2], n_planes=N, min_iou=0.7)
    assert result.indices == [0, 1, 3, 4]
    assert result.stops["forward"] == "predicted IoU 0.55 < 0.70 at plane 5"
    assert result.stops["backward"] == "end of the stack"
    assert 6 not in fake.embedded  # nothing is computed past a stop
    assert fake.embedded == [3, 4, 5, 1, 0]  # forward first, walking away from the start
    by_index = {p.index: p for p in result.planes}
    assert by_index[4].predicted_iou == pytest.approx(0.88)
    assert by_index[4].stability == pytest.approx(0.95)
    np.testing.assert_array_equal(by_index[3].mask, truth[3])
    assert all(call[2] is False for call in fake.calls)  # box + point: one mask
    assert "4 plane(s) added (0-1,3-4)" in result.summary()


def test_each_plane_is_prompted_from_the_previous_planes_mask():
    _, truth = moving_disc_stack()
    fake = FakeSegmenter(truth, {})
    propagate(fake, index_planes(), 2, truth[2], n_planes=N, direction="forward")
    for embedding, prompts, _ in fake.calls:
        previous = truth[embedding - 1]
        (row, col), label = prompts.points[0], prompts.labels[0]
        assert label == 1 and previous[int(row), int(col)]
        r0, c0, r1, c1 = prompts.box
        rows, cols = np.nonzero(previous)
        assert r0 < rows.min() and c0 < cols.min() and r1 > rows.max() and c1 > cols.max()
        assert prompts.mask_input is None  # off by default


def test_prompts_from_mask_point_is_the_most_interior_pixel():
    # a C shape: its centroid lies in the hole, the prompt point must lie on the object
    ring = disc(40, 40, 30, (80, 80)) & ~disc(40, 40, 18, (80, 80))
    ring[35:46, 40:] = False
    prompts = prompts_from_mask(ring, box_margin=0.0)
    row, col = prompts.points[0].astype(int)
    assert ring[row, col]
    centroid = np.argwhere(ring).mean(axis=0).astype(int)
    assert not ring[tuple(centroid)]
    # a square: the point is its centre, the box its extent widened by 2 px at least
    square = np.zeros((50, 60), dtype=bool)
    square[10:21, 30:41] = True
    prompts = prompts_from_mask(square, box_margin=0.5)
    np.testing.assert_array_equal(prompts.points[0], [15, 35])
    # rows 10..20, cols 30..40 widened by 0.5 x 11 px on each side
    np.testing.assert_allclose(prompts.box, [4.5, 24.5, 25.5, 45.5])
    edge = np.zeros((50, 60), dtype=bool)
    edge[0:5, 0:5] = True
    np.testing.assert_allclose(prompts_from_mask(edge).box, [0, 0, 6, 6])  # clipped to image


def test_empty_mask_area_jump_and_lost_overlap_stop_a_direction():
    _, truth = moving_disc_stack()
    masks = dict(enumerate(truth))
    masks[4] = np.zeros((H, W), dtype=bool)
    result = propagate(FakeSegmenter(masks, {}), index_planes(), 2, truth[2], n_planes=N)
    assert result.indices == [0, 1, 3]
    assert result.stops["forward"] == "empty mask at plane 4"

    masks = dict(enumerate(truth))
    masks[1] = disc(32, 28, 20)  # area ×2.7: leaked
    result = propagate(FakeSegmenter(masks, {}), index_planes(), 2, truth[2], n_planes=N)
    assert result.indices == [3, 4, 5, 6]
    assert result.stops["backward"].startswith("area changed ×2.")
    assert result.stops["backward"].endswith("limit ×2) at plane 1")
    loose = propagate(
        FakeSegmenter(masks, {}), index_planes(), 2, truth[2], n_planes=N, max_area_change=3.0
    )
    assert 1 in loose.indices

    masks = dict(enumerate(truth))
    masks[3] = disc(32, 70, 9)  # another object, far away
    result = propagate(FakeSegmenter(masks, {}), index_planes(), 2, truth[2], n_planes=N)
    assert 3 not in result.indices
    assert result.stops["forward"].startswith("overlap with the previous plane 0.00 < 0.20")


def test_max_steps_and_single_direction():
    _, truth = moving_disc_stack()
    fake = FakeSegmenter(truth, {})
    result = propagate(
        fake, index_planes(), 3, truth[3], n_planes=N, direction="backward", max_steps=2
    )
    assert result.indices == [1, 2]
    assert result.stops == {"backward": "max steps (2) reached"}
    assert fake.embedded == [2, 1]
    # a limit reached exactly at the end of the stack is the end of the stack
    result = propagate(
        FakeSegmenter(truth, {}), index_planes(), 5, truth[5], n_planes=N, max_steps=1
    )
    assert result.indices == [4, 6]
    assert result.stops == {"forward": "end of the stack", "backward": "max steps (1) reached"}


def test_progress_is_monotonic_and_complete():
    _, truth = moving_disc_stack()
    fake = FakeSegmenter(truth, {5: 0.1})
    steps = []
    propagate(fake, index_planes(), 2, truth[2], n_planes=N, progress=steps.append)
    done = [s.done for s in steps]
    assert done == sorted(done)
    assert steps[0].total == PLANE_UNITS * (N - 1)
    assert done[-1] == steps[-1].total  # planes skipped by a stop count as done
    assert any("predicted IoU 0.10" in s.message for s in steps)


def test_bad_input_raises_clear_errors():
    _, truth = moving_disc_stack()
    fake = FakeSegmenter(truth, {})
    planes = index_planes()
    with pytest.raises(PromptError, match="start mask is empty"):
        propagate(fake, planes, 2, np.zeros((H, W), bool), n_planes=N)
    with pytest.raises(PromptError, match="must be 2D"):
        propagate(fake, planes, 2, truth, n_planes=N)
    with pytest.raises(PromptError, match="outside the stack of 7 planes"):
        propagate(fake, planes, 7, truth[2], n_planes=N)
    with pytest.raises(PromptError, match="direction must be one of"):
        propagate(fake, planes, 2, truth[2], n_planes=N, direction="up")
    with pytest.raises(PromptError, match="min_iou"):
        propagate(fake, planes, 2, truth[2], n_planes=N, min_iou=1.5)
    with pytest.raises(PromptError, match="max_steps"):
        propagate(fake, planes, 2, truth[2], n_planes=N, max_steps=0)
    with pytest.raises(ImageError, match="plane 3 has shape"):
        propagate(fake, lambda i: np.zeros((H + 1, W, 3), np.uint8), 2, truth[2], n_planes=N)


def test_cancel_by_closing_or_should_cancel_stops_work():
    _, truth = moving_disc_stack()
    fake = FakeSegmenter(truth, {})
    steps = iter_propagate(fake, index_planes(), 2, truth[2], n_planes=N)
    next(steps), next(steps)  # inside the embedding of plane 3
    steps.close()
    assert fake.embedded == [3] and fake.calls == []

    fake = FakeSegmenter(truth, {})
    seen = []
    with pytest.raises(Cancelled):
        propagate(
            fake,
            index_planes(),
            2,
            truth[2],
            n_planes=N,
            progress=seen.append,
            should_cancel=lambda: len(seen) >= 5,
        )
    assert len(fake.calls) <= 1


def test_format_ranges():
    assert format_ranges([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert format_ranges([3]) == "3"
    assert format_ranges([]) == ""


# -- with the tiny SAM: the real embedding and decoding path ---------------------------------


def test_tiny_sam_propagation_embeds_each_plane_once_and_matches_direct_decoding(segmenter):
    stack, truth = moving_disc_stack(5)

    def plane_rgb(i):
        return to_rgb_uint8(stack[i])

    kwargs = {"n_planes": 5, "min_iou": 0.0, "max_area_change": 1e6, "min_overlap": 0.0}
    result = propagate(segmenter, plane_rgb, 2, truth[2], **kwargs)
    assert result.indices == [0, 1, 3, 4]  # the random model's scores pass min_iou=0
    assert segmenter.encoder_calls == 4  # the start plane needs no embedding
    for plane in result.planes:
        assert plane.mask.shape == (H, W) and plane.mask.dtype == bool
        assert 0 <= plane.stability <= 1
    # plane 3 is exactly what SAM gives for the prompts built from the start mask
    direct = segmenter.predict(
        segmenter.embed(plane_rgb(3)), prompts_from_mask(truth[2]), multimask=False
    )
    plane3 = result.planes[result.indices.index(3)]
    np.testing.assert_array_equal(plane3.mask, direct.masks[0])
    assert plane3.predicted_iou == pytest.approx(float(direct.iou[0]))
    # a second run reuses the cached embeddings
    again = propagate(segmenter, plane_rgb, 2, truth[2], **kwargs)
    assert segmenter.encoder_calls == 4
    for a, b in zip(result.planes, again.planes, strict=True):
        np.testing.assert_array_equal(a.mask, b.mask)
    # with the previous plane's logits as mask input: the first step has none (the start
    # mask comes from the labels), the next one decodes with plane 3's logits
    with_mask = propagate(
        segmenter, plane_rgb, 2, truth[2], direction="forward", use_mask_input=True, **kwargs
    )
    np.testing.assert_array_equal(with_mask.planes[0].mask, plane3.mask)
    refined = segmenter.predict(
        segmenter.embed(plane_rgb(4)),
        prompts_from_mask(plane3.mask, mask_input=direct.low_res_logits),
        multimask=False,
    )
    if len(with_mask.planes) > 1:
        np.testing.assert_array_equal(with_mask.planes[1].mask, refined.masks[0])
    else:  # the random model scored it under 0
        assert f"predicted IoU {float(refined.iou[0]):.2f}" in with_mask.stops["forward"]


def test_tiny_sam_cancel_during_embedding_leaves_no_embedding(segmenter):
    stack, truth = moving_disc_stack(4)
    steps = iter_propagate(
        segmenter, lambda i: to_rgb_uint8(stack[i]), 1, truth[1], n_planes=4, min_iou=0.0
    )
    next(steps), next(steps)  # the first encoder block of plane 2 ran
    steps.close()
    assert segmenter.encoder_calls == 1
    assert len(segmenter.cache) == 0
