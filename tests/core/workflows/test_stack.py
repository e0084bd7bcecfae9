"""Walking the planes of stacks and embedding them ahead of time."""

from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core import ImageError, PromptSegmenter, to_rgb_uint8
from napari_promptseg.core.storage.store import EmbeddingStore
from napari_promptseg.core.workflows.stack import (
    PrecomputeSummary,
    cached_planes,
    iter_embed_planes,
    planes_of,
)


def count_encoder_runs(sam):
    calls = []
    handle = sam.image_encoder.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def run_all(steps):
    """Drive the generator; return (yielded items, return value)."""
    items = []
    try:
        while True:
            items.append(next(steps))
    except StopIteration as finished:
        return items, finished.value


@pytest.fixture
def stack():
    return np.random.default_rng(0).integers(100, 4000, (5, 48, 70)).astype(np.uint16)


@pytest.mark.parametrize(
    "shape, rgb",
    [
        ((5, 48, 70), False),
        ((3, 40, 50, 3), True),
        ((12, 1000, 1000), False),  # above 1e7 values napari samples 3 planes
        ((2, 3, 900, 4000), False),  # (t, z, y, x), planes above 1e7: a central patch
        ((2000, 2000, 3), True),  # one large float RGB image
    ],
)
def test_default_limits_are_the_ones_napari_gives_the_layer(shape, rgb):
    layer_utils = pytest.importorskip("napari.layers.utils.layer_utils")
    rng = np.random.default_rng(4)
    data = rng.normal(1000, 200, shape).astype(np.float32)
    if shape == (12, 1000, 1000):
        data[3] *= 3  # a plane napari does not look at holds the extremes
    data.flat[7] = np.nan
    expected = layer_utils.calc_data_range(data, rgb=rgb)
    assert planes_of(data, rgb=rgb)._contrast_limits == pytest.approx(expected)
    if shape == (12, 1000, 1000):
        assert float(np.nanmax(data)) > expected[1]  # not the whole stack's range


def test_planes_of_a_zyx_stack_share_one_contrast_range(stack):
    planes = planes_of(stack)
    assert len(planes) == 5 and planes.labels == [(i,) for i in range(5)]
    assert planes.plane_shape == (48, 70)
    low, high = float(stack.min()), float(stack.max())
    for (label, rgb), z in zip(planes, range(5), strict=True):
        assert label == (z,)
        np.testing.assert_array_equal(rgb, to_rgb_uint8(stack[z], contrast_limits=(low, high)))
    # explicit limits win
    label, rgb = planes_of(stack, contrast_limits=(0, 1000))[2]
    np.testing.assert_array_equal(rgb, to_rgb_uint8(stack[2], contrast_limits=(0, 1000)))


def test_planes_of_tzyx_rgb_and_channels():
    tzyx = np.arange(2 * 3 * 8 * 9, dtype=np.float32).reshape(2, 3, 8, 9)
    planes = planes_of(tzyx)
    assert planes.labels == [(t, z) for t in range(2) for z in range(3)]
    assert planes[4][1].shape == (8, 9, 3)

    rgb_stack = np.random.default_rng(1).integers(0, 256, (4, 8, 9, 3), dtype=np.uint8)
    planes = planes_of(rgb_stack)
    assert len(planes) == 4
    np.testing.assert_array_equal(planes[1][1], rgb_stack[1])  # uint8 RGB passes unchanged

    # (z, c, y, x) with two channels: channel 1 shown as gray, its own stack-wide range
    zcyx = np.random.default_rng(2).integers(0, 1000, (3, 2, 8, 9)).astype(np.uint16)
    planes = planes_of(zcyx, channel_axis=1, channels=1)
    assert planes.labels == [(0,), (1,), (2,)]
    expected_limits = (float(zcyx[:, 1].min()), float(zcyx[:, 1].max()))
    np.testing.assert_array_equal(
        planes[2][1], to_rgb_uint8(zcyx[2, 1], contrast_limits=expected_limits)
    )


def test_planes_of_a_2d_image_is_one_plane():
    image = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    planes = planes_of(image)
    assert planes.labels == [()]
    np.testing.assert_array_equal(planes[0][1], to_rgb_uint8(image))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(10), "2D image"),
        (np.zeros((3, 0, 5)), "empty"),
        (np.full((2, 5, 5), np.nan), "no finite"),
        (np.zeros((2, 5, 5), complex), "not a real number"),
    ],
)
def test_planes_of_bad_input(bad, match):
    with pytest.raises(ImageError, match=match):
        planes_of(bad)[0]


def test_channels_without_a_channel_axis_are_refused():
    with pytest.raises(ImageError, match="channel_axis"):
        planes_of(np.zeros((3, 8, 9), np.uint16), channels=1)
    with pytest.raises(ImageError, match="channel_axis 5 does not exist"):
        planes_of(np.zeros((3, 8, 9), np.uint16), channel_axis=5)


def test_bad_plane_is_named():
    stack = np.zeros((3, 5, 5), np.float32)
    stack[1] = np.nan
    planes = planes_of(stack, contrast_limits=(0, 1))
    with pytest.raises(ImageError, match=r"plane \(1,\).*no finite"):
        planes[1]


def test_precompute_fills_the_cache_then_embed_runs_no_encoder(segmenter, stack):
    planes = planes_of(stack)
    calls, handle = count_encoder_runs(segmenter.sam)
    try:
        items, summary = run_all(iter_embed_planes(segmenter, planes))
        assert len(calls) == 5
        assert summary == PrecomputeSummary(computed=5, reused=0, total=5)
        # one "plane done" item per plane, in order, with block steps between them
        finished = [item for i, item in enumerate(items) if i == 0 or item[0] != items[i - 1][0]]
        assert [(d, t, label) for d, t, label in finished][1:] == [
            (i + 1, 5, (i,)) for i in range(5)
        ]
        assert len(segmenter.cache) == 5
        for _, rgb in planes:
            segmenter.embed(rgb)
        assert len(calls) == 5  # every slice came from the cache
        # a second pass costs nothing
        items, summary = run_all(iter_embed_planes(segmenter, planes))
        assert summary.computed == 0 and summary.reused == 5
        assert items == [(i + 1, 5, (i,)) for i in range(5)]
    finally:
        handle.remove()


def test_precompute_into_the_store_serves_a_new_engine(tiny_sam, tmp_path, stack):
    store = EmbeddingStore(tmp_path / "store")
    planes = planes_of(stack)
    run_all(iter_embed_planes(PromptSegmenter(tiny_sam, "tiny-test", store=store), planes))
    assert store.count == 5
    fresh = PromptSegmenter(tiny_sam, "tiny-test", store=EmbeddingStore(store.root))
    assert all(cached for _, cached in cached_planes(fresh, planes))
    calls, handle = count_encoder_runs(tiny_sam)
    try:
        _, summary = run_all(iter_embed_planes(fresh, planes))
    finally:
        handle.remove()
    assert calls == [] and summary.reused == 5


def test_closing_the_generator_cancels_within_a_plane(segmenter, stack):
    planes = planes_of(stack)
    steps = iter_embed_planes(segmenter, planes)
    calls, handle = count_encoder_runs(segmenter.sam)
    try:
        while True:  # run until plane 2 is half-way through the encoder
            done, _, label = next(steps)
            if label == (2,):  # first encoder block of plane 2 done
                assert done == 2
                break
        steps.close()
    finally:
        handle.remove()
    assert len(calls) == 3  # planes 0, 1 finished; plane 2 started, never finished
    assert len(segmenter.cache) == 2
    assert segmenter.key_for(planes[2][1]) not in segmenter.cache
    assert [cached for _, cached in cached_planes(segmenter, planes)] == [True, True] + [False] * 3


def test_plain_iterables_are_counted(segmenter, stack):
    pairs = ((f"z{z}", to_rgb_uint8(stack[z])) for z in range(2))
    items, summary = run_all(iter_embed_planes(segmenter, pairs))
    assert items[-1] == (2, 2, "z1") and summary.total == 2
