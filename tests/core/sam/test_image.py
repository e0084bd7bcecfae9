from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core import ImageError, to_rgb_uint8
from napari_promptseg.core.sam.image import image_fingerprint


def test_uint8_rgb_passes_through_unchanged():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = to_rgb_uint8(rgb)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous


def test_uint8_gray_is_copied_to_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = to_rgb_uint8(gray)
    assert out.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_uint16_default_limits_are_min_max():
    gray = np.array([[100, 200], [300, 1100]], dtype=np.uint16)
    out = to_rgb_uint8(gray)
    np.testing.assert_array_equal(out[..., 0], [[0, 26], [51, 255]])


def test_contrast_limits_clip_and_scale_like_napari():
    gray = np.array([[0, 50, 100, 4000]], dtype=np.uint16)
    out = to_rgb_uint8(gray, contrast_limits=(50, 100))
    np.testing.assert_array_equal(out[..., 1], [[0, 0, 255, 255]])


def test_contrast_limits_apply_to_uint8_too():
    gray = np.array([[10, 20, 30]], dtype=np.uint8)
    out = to_rgb_uint8(gray, contrast_limits=(10, 30))
    np.testing.assert_array_equal(out[..., 2], [[0, 128, 255]])


def test_float_with_nan_and_inf():
    gray = np.array([[0.0, 0.5, 1.0, np.nan, np.inf, -np.inf]])
    out = to_rgb_uint8(gray)
    np.testing.assert_array_equal(out[..., 0], [[0, 128, 255, 0, 255, 0]])


def test_all_nan_is_refused():
    with pytest.raises(ImageError, match="no finite values"):
        to_rgb_uint8(np.full((4, 4), np.nan))


def test_bool_is_black_and_white():
    out = to_rgb_uint8(np.array([[True, False]]))
    np.testing.assert_array_equal(out[..., 0], [[255, 0]])


def test_flat_image_does_not_divide_by_zero():
    out = to_rgb_uint8(np.full((3, 3), 7.0))
    assert out.shape == (3, 3, 3)


def test_rgba_drops_alpha():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 10
    rgba[..., 3] = 200
    out = to_rgb_uint8(rgba)
    assert out.shape == (2, 2, 3)
    assert (out[..., 0] == 10).all() and (out[..., 1:] == 0).all()


def test_multichannel_pick_one_or_three_with_limits_per_channel():
    stack = np.stack([np.full((2, 3), v, dtype=np.uint16) for v in (0, 100, 200, 300, 400)])
    one = to_rgb_uint8(stack, channel_axis=0, channels=3, contrast_limits=(0, 400))
    assert (one == round(300 / 400 * 255)).all()
    three = to_rgb_uint8(
        stack, channel_axis=0, channels=[4, 1, 0], contrast_limits=[(0, 400), (0, 400), (0, 10)]
    )
    assert tuple(three[0, 0]) == (255, 64, 0)


def test_channel_last_multichannel():
    data = np.zeros((4, 5, 6), dtype=np.float32)
    data[..., 5] = 1.0
    out = to_rgb_uint8(data, channel_axis=-1, channels=5, contrast_limits=(0, 1))
    assert (out == 255).all()


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (np.zeros((2, 3, 4, 5)), {}, "expected one 2D slice"),
        (np.zeros(10), {}, "expected one 2D slice"),
        (np.zeros((0, 5)), {}, "empty"),
        (np.zeros((3, 3), dtype=complex), {}, "complex"),
        (np.zeros((3, 4, 5)), {}, "expected one 2D slice"),
        (np.zeros((5, 4, 4)), {"channel_axis": 0, "channels": [0, 1]}, "one channel"),
        (np.zeros((5, 4, 4)), {"channel_axis": 0, "channels": 9}, "channel 9 does not exist"),
        (np.zeros((5, 4, 4)), {"channel_axis": 7}, "channel_axis 7"),
        (np.zeros((4, 4)), {"contrast_limits": (0, 1, 2)}, "contrast_limits"),
        (np.array([["a"]]), {}, "not numeric"),
    ],
)
def test_bad_images_get_clear_errors(data, kwargs, message):
    with pytest.raises(ImageError, match=message):
        to_rgb_uint8(data, **kwargs)


def test_fingerprint_changes_with_one_pixel_and_with_limits():
    gray = np.random.default_rng(0).integers(0, 4000, (20, 30)).astype(np.uint16)
    base = image_fingerprint(to_rgb_uint8(gray))
    changed = gray.copy()
    changed[5, 5] += 500
    assert image_fingerprint(to_rgb_uint8(changed)) != base
    assert image_fingerprint(to_rgb_uint8(gray, contrast_limits=(0, 1000))) != base
    assert image_fingerprint(to_rgb_uint8(gray)) == base
