"""Turn any 2D image slice into the HxWx3 uint8 RGB array SAM expects.

This is the one place that decides how pixels become SAM input. The rules:

========================  ==========================================================
input (one 2D slice)      what SAM gets
========================  ==========================================================
(H, W) uint8              the gray values copied to R, G and B, unchanged
(H, W) any other dtype    linearly scaled from contrast limits to 0..255 and rounded;
                          limits default to the finite min/max (napari's default)
(H, W) bool               False → 0, True → 255
(H, W, 3) uint8 RGB       unchanged (so results equal ``SamPredictor.set_image``)
(H, W, 3) other dtype     each channel scaled with the same limits
(H, W, 4) RGBA            alpha dropped, then as RGB
multichannel              ``channel_axis`` names the channel axis; ``channels`` picks
                          one channel (gray) or three (as R, G, B); each channel may
                          have its own contrast limits
========================  ==========================================================

Non-finite values: NaN and -inf become the low limit, +inf the high limit; limits are
computed from finite values only. An image with no finite value, an empty image, complex
values or a shape that is not a 2D slice raise :class:`ImageError`.

Contrast limits are those a napari user set on the layer (``layer.contrast_limits``):
when given, they are applied to every dtype, uint8 included, so what SAM sees is what the
user sees. uint8 data with limits (0, 255) is passed through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ImageError

ContrastLimits = tuple[float, float]


def to_rgb_uint8(
    image: np.ndarray,
    *,
    contrast_limits: ContrastLimits | Sequence[ContrastLimits] | None = None,
    channel_axis: int | None = None,
    channels: int | Sequence[int] | None = None,
    rgb: bool | None = None,
) -> np.ndarray:
    """Convert one 2D slice to a C-contiguous (H, W, 3) uint8 array.

    Parameters
    ----------
    image
        The slice: (H, W), (H, W, 3|4) when ``rgb``, or multichannel with ``channel_axis``.
        Anything array-like (dask, zarr) is read into memory.
    contrast_limits
        (low, high) applied to every channel, or one pair per selected channel.
    channel_axis
        Axis holding channels for multichannel data (napari's ``channel_axis``).
    channels
        With ``channel_axis``: one index (shown as gray) or three (R, G, B).
        Default: the first channel if there are fewer than three, else the first three.
    rgb
        Whether a trailing axis of 3 or 4 is colour. None guesses like napari does:
        a trailing axis of length 3 or 4 on a 3D array is colour.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.
    """
    array = np.asarray(image)
    _check_dtype(array)

    if channel_axis is not None:
        planes = _select_channels(array, channel_axis, channels)
    elif array.ndim == 2:
        planes = [array]
    elif array.ndim == 3 and (rgb or (rgb is None and array.shape[-1] in (3, 4))):
        planes = [array[..., i] for i in range(3)]  # RGBA: alpha dropped
    else:
        raise ImageError(
            f"expected one 2D slice, shape (H, W), (H, W, 3) or (H, W, 4); got shape "
            f"{array.shape}. For multichannel data pass channel_axis (and channels)."
        )

    height, width = planes[0].shape
    if height == 0 or width == 0:
        raise ImageError(f"the image is empty (shape {array.shape}).")

    limits = _limits_per_plane(contrast_limits, len(planes))
    converted = [_plane_to_uint8(p, lim) for p, lim in zip(planes, limits, strict=True)]
    if len(converted) == 1:
        converted = converted * 3
    return np.ascontiguousarray(np.stack(converted, axis=-1))


def _check_dtype(array: np.ndarray) -> None:
    if np.iscomplexobj(array):
        raise ImageError(
            "complex-valued images are not supported; pass a real image, e.g. np.abs(image)."
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ImageError(f"image dtype {array.dtype} is not numeric.")


def _select_channels(
    array: np.ndarray, channel_axis: int, channels: int | Sequence[int] | None
) -> list[np.ndarray]:
    if array.ndim != 3:
        raise ImageError(
            f"multichannel slice must be 3D (two spatial axes + channels); got shape {array.shape}."
        )
    try:
        stacked = np.moveaxis(array, channel_axis, 0)
    except np.exceptions.AxisError as exc:
        raise ImageError(
            f"channel_axis {channel_axis} does not exist in shape {array.shape}."
        ) from exc
    n_channels = stacked.shape[0]
    if channels is None:
        picked = [0] if n_channels < 3 else [0, 1, 2]
    elif isinstance(channels, int | np.integer):
        picked = [int(channels)]
    else:
        picked = [int(c) for c in channels]
    if len(picked) not in (1, 3):
        raise ImageError(
            f"pick one channel (gray) or three (R, G, B); got {len(picked)}: {picked}."
        )
    for index in picked:
        if not -n_channels <= index < n_channels:
            raise ImageError(
                f"channel {index} does not exist; the image has {n_channels} channels."
            )
    return [stacked[i] for i in picked]


def _limits_per_plane(
    contrast_limits: ContrastLimits | Sequence[ContrastLimits] | None, n_planes: int
) -> list[ContrastLimits | None]:
    if contrast_limits is None:
        return [None] * n_planes
    limits = np.asarray(contrast_limits, dtype=float)
    if limits.shape == (2,):
        return [(float(limits[0]), float(limits[1]))] * n_planes
    if limits.shape == (n_planes, 2):
        return [(float(lo), float(hi)) for lo, hi in limits]
    raise ImageError(
        f"contrast_limits must be (low, high) or one pair per channel ({n_planes}); "
        f"got {contrast_limits!r}."
    )


def _plane_to_uint8(plane: np.ndarray, limits: ContrastLimits | None) -> np.ndarray:
    if plane.dtype == bool:
        plane = plane.astype(np.uint8) * 255
        if limits is None:
            return plane
    if plane.dtype == np.uint8 and (limits is None or tuple(limits) == (0.0, 255.0)):
        return plane  # the exact bytes SamPredictor would get

    values = plane.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if limits is None:
        if not finite.any():
            raise ImageError("the image has no finite values (all NaN or infinite).")
        low, high = float(values[finite].min()), float(values[finite].max())
    else:
        low, high = limits
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ImageError(f"contrast limits must be finite numbers; got ({low}, {high}).")
        if not finite.any():
            raise ImageError("the image has no finite values (all NaN or infinite).")
    if high < low:
        low, high = high, low
    if not np.isfinite(high - low):  # e.g. ±1e308: scale in halves, which cannot overflow
        values, low, high = values / 2, low / 2, high / 2
    span = high - low
    if span == 0:
        # a flat image: everything at or above the limit is white, below is black
        scaled = np.where(values >= high, 255.0, 0.0)
    else:
        scaled = (values - low) * (255.0 / span)
    # NaN and -inf → low, +inf → high (np.clip passes NaN through, so set it explicitly)
    scaled = np.where(np.isnan(scaled), 0.0, scaled)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def image_fingerprint(rgb: np.ndarray) -> str:
    """A content hash of an (H, W, 3) uint8 array: changes when any pixel changes.

    Contrast limits and channel choice are part of it automatically, since they change
    the converted pixels.
    """
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(rgb.shape).encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()
