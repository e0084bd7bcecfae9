"""An image file as SAM planes, described by a small picklable object a worker can open.

:class:`ImageSource` names a file (tif, png..., a zarr array or an OME-Zarr image) and how
to convert it (contrast limits, channels). It travels to the workers instead of pixels:
each worker reads the planes it is given, and zarr images are read lazily there, one
plane at a time. For one stack split by plane, the client resolves the contrast limits
once (:meth:`ImageSource.resolved`) so every worker converts every plane exactly as the
single-process run does.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import ImageError
from ...sam.image import ContrastLimits
from ...storage.ome_zarr import ZarrImage, is_zarr_path, open_zarr_image
from ...storage.readers import read_image
from ..stack import StackPlanes, planes_of, stack_contrast_limits

Limits = tuple[float, float] | tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ImageSource:
    """A file of one 2D image or a stack, and how its planes become SAM input.

    Attributes
    ----------
    path
        Absolute path as the workers see it (a shared filesystem).
    contrast_limits
        (low, high), one pair per channel, or None for napari's default of the file (see
        :func:`~napari_promptseg.core.workflows.stack.stack_contrast_limits`).
    channel_axis, channels
        As for :func:`~napari_promptseg.core.workflows.stack.planes_of`; an OME-Zarr's
        ``c`` axis is found from its metadata.
    """

    path: str
    contrast_limits: Limits | None = None
    channel_axis: int | None = None
    channels: int | tuple[int, ...] | None = None

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        contrast_limits: ContrastLimits | Sequence[ContrastLimits] | None = None,
        channel_axis: int | None = None,
        channels: int | Sequence[int] | None = None,
    ) -> ImageSource:
        """A source with an absolute path and hashable settings."""
        return cls(
            os.path.abspath(os.fspath(path)),
            _limits(contrast_limits),
            channel_axis,
            channels if channels is None or isinstance(channels, int) else tuple(channels),
        )

    @property
    def name(self) -> str:
        return os.path.basename(self.path.rstrip("/"))

    def planes(self) -> StackPlanes:
        """Every plane as lazy SAM input (cached per process: workers open a file once)."""
        return _open_planes(self)

    def axes(self) -> tuple[str, ...] | None:
        """The OME axes of an OME-Zarr image (its labels get them without ``c``); else None."""
        return open_zarr_image(self.path).axes if is_zarr_path(self.path) else None

    def resolved(self) -> ImageSource:
        """This source with its contrast limits computed, so every worker uses the same."""
        if self.contrast_limits is not None:
            return self
        return dataclasses.replace(self, contrast_limits=_limits(self.planes().contrast_limits))


@functools.lru_cache(maxsize=2)
def _open_planes(source: ImageSource) -> StackPlanes:
    if is_zarr_path(source.path):
        return zarr_planes(open_zarr_image(source.path), source)
    return planes_of(
        read_image(source.path),
        contrast_limits=source.contrast_limits,
        channel_axis=source.channel_axis,
        channels=source.channels,
    )


def zarr_planes(image: ZarrImage, source: ImageSource) -> StackPlanes:
    """The planes of a lazily opened zarr image; pixels are read one plane at a time.

    The channel axis (``--channel-axis`` or the OME ``c`` axis) is moved last lazily; without
    contrast limits, napari's default is computed on the lowest resolution level, as napari
    does for a multiscale image.
    """
    import dask.array as da

    axis = source.channel_axis if source.channel_axis is not None else image.channel_axis
    data, lowest = image.data, image.lowest
    channels: int | tuple[int, ...] | None
    if any(size == 0 for size in data.shape):
        raise ImageError(f"the image {source.path} is empty (shape {data.shape}).")
    if axis is None and image.axes is None and data.ndim >= 3 and data.shape[-1] in (3, 4):
        # a plain zarr array with a trailing colour axis: RGB(A), as napari guesses
        colour, channels = True, None
    elif axis is None:
        if source.channels is not None:
            raise ImageError(
                f"channels {source.channels!r} given for {source.name}, which has no channel "
                "axis: pass --channel-axis too."
            )
        colour, channels = False, None
    else:
        if not -data.ndim <= axis < data.ndim:
            raise ImageError(f"channel axis {axis} does not exist in shape {data.shape}.")
        data, lowest = da.moveaxis(data, axis, -1), da.moveaxis(lowest, axis, -1)
        count = int(data.shape[-1])
        channels = source.channels
        if channels is None:
            channels = 0 if count < 3 else (0, 1, 2)
        colour = True
    limits: Any = source.contrast_limits
    if limits is None:
        limits = stack_contrast_limits(lowest, colour=colour, channels=channels)
    return StackPlanes(data, contrast_limits=limits, colour=colour, channels=channels)


def _limits(value: Any) -> Limits | None:
    if value is None:
        return None
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        return (float(value[0]), float(value[1]))
    return tuple((float(low), float(high)) for low, high in value)
