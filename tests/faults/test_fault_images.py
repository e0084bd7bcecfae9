"""Fault matrix, images (core, no Qt): each bad image gets an ImageError naming the problem;
odd but valid images convert. Cases already in tests/core/sam/test_image.py are listed in
docs/faults.md, not repeated here."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_promptseg.core import ImageError, PromptSegmenter, to_rgb_uint8


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (np.zeros((5, 0)), {}, "the image is empty"),
        (np.zeros((0, 0, 3), np.uint8), {}, "the image is empty"),
        (np.full((4, 4), np.inf), {}, "no finite values"),
        (np.array([[np.inf, -np.inf], [np.nan, np.nan]]), {}, "no finite values"),
        (np.full((4, 4), -np.inf), {"contrast_limits": (0, 1)}, "no finite values"),
        (np.zeros((4, 4)), {"contrast_limits": (0, np.inf)}, "contrast limits must be finite"),
        (np.zeros((4, 4, 3), np.complex64), {}, "complex-valued images are not supported"),
        (np.array([[1, 2]], dtype=object), {}, "is not numeric"),
        (np.zeros((6, 7, 5)), {}, "pass channel_axis"),
        (np.zeros((6, 7, 5)), {"channel_axis": 2, "channels": [0, 1]}, "pick one channel"),
        (np.zeros((2, 6, 7, 3)), {}, "expected one 2D slice"),
    ],
    ids=[
        "zero-width",
        "zero-size-rgb",
        "all-inf",
        "inf-and-nan-only",
        "all-neg-inf-with-limits",
        "infinite-contrast-limit",
        "complex-rgb",
        "object-dtype",
        "5-channels-without-channel-axis",
        "2-of-5-channels",
        "4d-rgb",
    ],
)
def test_bad_image_is_named(data, kwargs, message):
    with pytest.raises(ImageError, match=message):
        to_rgb_uint8(data, **kwargs)


def test_bad_image_never_reaches_the_encoder(segmenter):
    with pytest.raises(ImageError, match=r"\(H, W, 3\) uint8"):
        segmenter.embed(np.zeros((10, 10), np.uint8))
    assert len(segmenter.cache) == 0


def test_int64_extremes_convert_without_overflow():
    info = np.iinfo(np.int64)
    data = np.array([[info.min, 0, info.max]], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would fail the test
        rgb = to_rgb_uint8(data)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 128, 255])


def test_float_range_wider_than_float64_can_subtract():
    data = np.array([[-1e308, 0.0, 1e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = to_rgb_uint8(data)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 128, 255])


def test_bool_image_with_limits_is_black_and_white():
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    for limits in (None, (0, 1)):
        rgb = to_rgb_uint8(mask, contrast_limits=limits)
        np.testing.assert_array_equal(rgb[..., 1], np.where(mask, 255, 0))


def test_five_channels_pick_three_or_one():
    data = np.stack([np.full((6, 7), 10 * (i + 1), np.uint16) for i in range(5)], axis=-1)
    rgb = to_rgb_uint8(data, channel_axis=2, channels=(4, 0, 2), contrast_limits=(0, 50))
    np.testing.assert_array_equal(rgb[0, 0], [255, 51, 153])
    gray = to_rgb_uint8(np.moveaxis(data, 2, 0), channel_axis=0, channels=3)
    assert gray.shape == (6, 7, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_dask_and_lazy_arrays_equal_numpy(segmenter):
    da = pytest.importorskip("dask.array")
    image = np.random.default_rng(0).integers(0, 4000, (60, 90)).astype(np.uint16)
    lazy = da.from_array(image, chunks=(16, 32)) * 1  # a graph, not just a wrapped array
    rgb_lazy, rgb = to_rgb_uint8(lazy), to_rgb_uint8(image)
    np.testing.assert_array_equal(rgb_lazy, rgb)
    assert segmenter.key_for(rgb_lazy) == segmenter.key_for(rgb)


def test_lazy_array_that_fails_to_load_says_why():
    da = pytest.importorskip("dask.array")
    from dask import delayed

    def unreadable():
        raise OSError("chunk file /data/c0.bin is missing")

    lazy = da.from_delayed(delayed(unreadable)(), shape=(8, 8), dtype=np.uint16)
    with pytest.raises(OSError, match=r"chunk file /data/c0\.bin is missing"):
        to_rgb_uint8(lazy)


def test_non_contiguous_and_read_only_views_convert(tiny_sam):
    base = np.random.default_rng(1).integers(0, 255, (80, 120), dtype=np.uint8)
    view = base[::2, ::-3]
    view.flags.writeable = False
    rgb = to_rgb_uint8(view)
    assert rgb.flags.c_contiguous and rgb.shape == (40, 40, 3)
    embedding = PromptSegmenter(tiny_sam, "t").embed(rgb)
    assert embedding.original_size == (40, 40)
