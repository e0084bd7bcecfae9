"""Embedding every 2D plane of a stack ahead of time.

    >>> planes = planes_of(stack)                       # (z, y, x): 1 plane per z
    >>> for done, total, label in iter_embed_planes(segmenter, planes):
    ...     print(f"{done}/{total}", label)

Planes already in the segmenter's memory cache or disk store cost nothing; closing the
generator (``.close()``, or a napari worker's ``quit()``) stops after the current encoder
block, so cancelling never waits for a whole plane.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import product
from typing import Any, overload

import numpy as np

from ..errors import ImageError, PromptSegError
from ..sam.engine import PromptSegmenter
from ..sam.image import ContrastLimits, to_rgb_uint8

PlaneLabel = tuple[int, ...]  # indices of the non-spatial axes, () for a 2D image


@dataclass(frozen=True)
class PrecomputeSummary:
    """What :func:`iter_embed_planes` did: ``computed`` planes ran the encoder, ``reused``
    ones came from memory or the disk store."""

    computed: int
    reused: int
    total: int


class StackPlanes(Sequence[tuple[PlaneLabel, np.ndarray]]):
    """The 2D planes of an array as lazy ``(label, rgb)`` pairs; see :func:`planes_of`.

    ``rgb`` is each plane as SAM input, (H, W, 3) uint8, converted only when asked for, so
    a large stack is never held in memory twice.
    """

    def __init__(
        self,
        array: np.ndarray,
        *,
        contrast_limits: ContrastLimits | Sequence[ContrastLimits] | None,
        colour: bool,
        channels: int | Sequence[int] | None,
    ) -> None:
        self._array = array  # (..., H, W) or (..., H, W, C) with C colours/channels
        self._contrast_limits = contrast_limits
        self._colour = colour
        self._channels = channels
        self._planes_shape = tuple(array.shape[: -3 if colour else -2])
        self.labels: list[PlaneLabel] = [
            tuple(int(i) for i in index) for index in product(*map(range, self._planes_shape))
        ]

    @property
    def plane_shape(self) -> tuple[int, int]:
        """(H, W) of every plane."""
        spatial = self._array.shape[-3:-1] if self._colour else self._array.shape[-2:]
        return int(spatial[0]), int(spatial[1])

    @property
    def contrast_limits(self) -> ContrastLimits | Sequence[ContrastLimits] | None:
        """The limits every plane is converted with (resolved once for the whole stack)."""
        return self._contrast_limits

    def __len__(self) -> int:
        return len(self.labels)

    @overload
    def __getitem__(self, index: int) -> tuple[PlaneLabel, np.ndarray]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[PlaneLabel, np.ndarray]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[PlaneLabel, np.ndarray] | list[tuple[PlaneLabel, np.ndarray]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        label = self.labels[index]
        return label, self.rgb(label)

    def __iter__(self) -> Iterator[tuple[PlaneLabel, np.ndarray]]:
        for label in self.labels:
            yield label, self.rgb(label)

    def rgb(self, label: PlaneLabel, region: tuple[slice, slice] | None = None) -> np.ndarray:
        """Plane ``label`` as (H, W, 3) uint8, or only its ``region`` ((rows, cols) slices).

        A region is read alone (a lazy zarr plane's other chunks are not read) and equals
        the same region of the whole converted plane: with the stack's contrast limits set
        (:func:`planes_of` always sets them but for uint8 and bool data, which are not
        scaled) the conversion is pixel by pixel.
        """
        index: tuple[Any, ...] = label if region is None else (*label, *region)
        plane = np.asarray(self._array[index])
        try:
            return to_rgb_uint8(
                plane,
                contrast_limits=self._contrast_limits,
                channel_axis=-1 if self._channels is not None else None,
                channels=self._channels,
                rgb=self._colour and self._channels is None,
            )
        except ImageError as error:
            where = f"plane {label}: " if label else ""
            raise ImageError(f"{where}{error}") from None


def planes_of(
    array: np.ndarray,
    *,
    contrast_limits: ContrastLimits | Sequence[ContrastLimits] | None = None,
    rgb: bool | None = None,
    channel_axis: int | None = None,
    channels: int | Sequence[int] | None = None,
) -> StackPlanes:
    """Every 2D plane of a 2D image or a stack, as SAM input.

    Parameters
    ----------
    array
        (y, x), (z, y, x), (t, z, y, x)... with the two spatial axes last; or with a
        trailing colour axis of 3 or 4 (RGB(A), guessed like napari when ``rgb`` is None);
        or multichannel with ``channel_axis`` naming the channel axis (anywhere).
    contrast_limits
        (low, high), or one pair per selected channel. None: the limits napari would give
        the stack as a new layer (:func:`stack_contrast_limits`: one range for all planes,
        per channel; uint8 and bool data pass through unchanged), so planes precomputed
        here are found when the file is opened in napari with default contrast.
    rgb, channels
        As in :func:`~napari_promptseg.core.sam.image.to_rgb_uint8`.

    Returns
    -------
    StackPlanes
        A sequence of ``(label, rgb)``; ``label`` is the tuple of indices along the
        leading (non-spatial) axes, ``()`` for a 2D image.
    """
    array = np.asarray(array) if not hasattr(array, "shape") else array
    if channel_axis is not None:
        if not -array.ndim <= channel_axis < array.ndim:
            raise ImageError(f"channel_axis {channel_axis} does not exist in shape {array.shape}.")
        array = np.moveaxis(np.asarray(array), channel_axis, -1)
        if channels is None:
            channels = 0 if array.shape[-1] < 3 else [0, 1, 2]
        colour = True
    else:
        if rgb is None:
            rgb = array.ndim >= 3 and array.shape[-1] in (3, 4)
        colour = bool(rgb)
        if channels is not None and not colour:
            raise ImageError(
                f"channels {channels!r} given for an image of shape {array.shape} without a "
                "colour axis: pass channel_axis too."
            )
    spatial_ndim = 3 if colour else 2
    if array.ndim < spatial_ndim:
        raise ImageError(
            f"expected a 2D image or a stack of them; got shape {array.shape}"
            + (" with a colour/channel axis" if colour else "")
            + "."
        )
    if any(size == 0 for size in array.shape):
        raise ImageError(f"the image is empty (shape {array.shape}).")
    if contrast_limits is None:
        contrast_limits = stack_contrast_limits(array, colour=colour, channels=channels)
    return StackPlanes(array, contrast_limits=contrast_limits, colour=colour, channels=channels)


def stack_contrast_limits(
    array: np.ndarray, *, colour: bool = False, channels: int | Sequence[int] | None = None
) -> ContrastLimits | list[ContrastLimits] | None:
    """The contrast limits napari gives a new image layer of ``array``, per selected channel.

    Embeddings are keyed by the converted pixels, so planes precomputed here are found in
    napari only if they were converted with the same limits; this mirrors napari's default
    (``napari.layers.utils.layer_utils.calc_data_range``, napari 0.5 to 0.9, checked by a test):
    the finite min/max of the data, or, above 10 million values, of the first, middle and
    last planes only. None for uint8 and bool data (converted without scaling, as napari's
    (0, 255) and (0, 1) limits would).
    """
    if array.dtype in (np.uint8, np.bool_):
        return None
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise ImageError(f"image dtype {array.dtype} is not a real number type.")
    if colour and channels is not None:
        # napari splits channels into one layer each, each with its own range
        picked = [channels] if isinstance(channels, int | np.integer) else list(channels)
        return [napari_data_range(array[..., int(c)]) for c in picked]
    return napari_data_range(array, rgb=colour)


NAPARI_FULL_RANGE_MAX = 1e7  # napari looks at three planes only above this many values


def napari_data_range(data: np.ndarray, *, rgb: bool = False) -> ContrastLimits:
    """napari's default contrast limits for in-memory ``data`` (see stack_contrast_limits)."""
    if data.ndim < 3 or data.size <= NAPARI_FULL_RANGE_MAX:
        parts = [np.asarray(data)]
    else:
        offset = 2 + int(rgb)
        leading = data.shape[:-offset]
        planes = [
            (0,) * len(leading),
            tuple(s // 2 for s in leading),
            tuple(s - 1 for s in leading),
        ]
        plane_shape = data.shape[-offset:]
        if np.prod(plane_shape) > NAPARI_FULL_RANGE_MAX and min(plane_shape[:2]) > 64:
            patch = tuple(slice(c // 2 - 31, c // 2 + 31) for c in plane_shape[:2])
            planes = [index + patch for index in planes]
        parts = [np.asarray(data[index]) for index in planes]
    # like napari: per-part min and max (0 and 1 when a part has no finite value), then
    # the extremes of all of them
    values = [_finite_extreme(p, np.min, 0.0) for p in parts]
    values += [_finite_extreme(p, np.max, 1.0) for p in parts]
    low, high = min(values), max(values)
    if low == high:
        low, high = min(low, 0.0), max(high, 1.0)
    return low, high


def _finite_extreme(values: np.ndarray, reduce: Callable[[np.ndarray], Any], empty: float) -> float:
    value = reduce(values)
    if not np.isfinite(value):
        finite = values[np.isfinite(values)]
        return float(reduce(finite)) if finite.size else empty
    return float(value)


def iter_embed_planes(
    segmenter: PromptSegmenter,
    planes: Iterable[tuple[Hashable, np.ndarray]],
    *,
    total: int | None = None,
) -> Generator[tuple[int, int, Hashable], None, PrecomputeSummary]:
    """Embed every plane, yielding ``(done, total, label)``; returns a :class:`PrecomputeSummary`.

    Parameters
    ----------
    segmenter
        A :class:`~napari_promptseg.core.PromptSegmenter`; results go to its memory cache
        and, if it has one, its disk store.
    planes
        ``(label, rgb)`` pairs, ``rgb`` (H, W, 3) uint8 (e.g. :func:`planes_of`).
    total
        The number of planes, when ``planes`` has no ``len()``. Otherwise they are listed
        first (which holds every plane in memory).

    Yields
    ------
    (done, total, label)
        After every encoder block of a plane being computed (``done`` unchanged: these are
        the points where closing the generator cancels) and once when plane ``label`` is
        ready (``done`` counts it).
    """
    if total is None:
        if not isinstance(planes, Sized):
            planes = list(planes)
        total = len(planes)
    done = computed = 0
    for label, rgb in planes:
        steps = segmenter.iter_embed(rgb)
        ran = False
        try:
            while True:
                try:
                    next(steps)
                except StopIteration:
                    break
                ran = True
                yield done, total, label
        except PromptSegError as error:
            where = f"plane {label}: " if label not in ((), None) else ""
            raise type(error)(f"{where}{error}") from error
        finally:
            steps.close()  # on cancel: abandon the encoder run, store nothing
        computed += ran
        done += 1
        yield done, total, label
    return PrecomputeSummary(computed=computed, reused=done - computed, total=total)


def cached_planes(
    segmenter: PromptSegmenter, planes: Iterable[tuple[Hashable, np.ndarray]]
) -> Iterator[tuple[Hashable, bool]]:
    """``(label, cached)`` for every plane: whether its embedding is in memory or on disk.

    Never runs the encoder and never reads an entry (a store file counts as present).
    """
    store = segmenter.store
    for label, rgb in planes:
        key = segmenter.key_for(rgb)
        yield label, key in segmenter.cache or (store is not None and key in store)
