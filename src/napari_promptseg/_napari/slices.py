"""Which 2D slice of an image layer the user is looking at, and its pixels.

SAM works on 2D images. For a 2D layer the slice is the whole image; for nD layers (z, t,
both) it is the plane the viewer shows: the two displayed axes at the current position
of every other axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import ImageError
from ..core.sam.image import to_rgb_uint8


@dataclass(frozen=True)
class SliceRef:
    """A 2D plane of a layer's data.

    Attributes
    ----------
    index
        One entry per layer axis (channel axis of RGB excluded): an int for the axes held
        fixed, None for the two displayed axes.
    displayed
        The layer axes shown as (rows, cols) on screen.
    """

    index: tuple[int | None, ...]
    displayed: tuple[int, int]

    @property
    def fixed(self) -> tuple[int, ...]:
        """Positions of the non-displayed axes, in axis order: () for a 2D image."""
        return tuple(i for i in self.index if i is not None)

    def full_indices(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """Index arrays into the nD data for 2D pixel coordinates (rows, cols) on this plane."""
        out = []
        for axis, position in enumerate(self.index):
            if axis == self.displayed[0]:
                out.append(rows)
            elif axis == self.displayed[1]:
                out.append(cols)
            else:
                out.append(np.full(len(rows), position, dtype=np.intp))
        return tuple(out)

    def on_plane(self, coords: np.ndarray) -> np.ndarray:
        """Which rows of (N, ndim) data coordinates lie on this plane (napari's 0.5 rule)."""
        coords = np.asarray(coords, dtype=float).reshape(len(coords), len(self.index))
        keep = np.ones(len(coords), dtype=bool)
        for axis, position in enumerate(self.index):
            if position is not None:
                keep &= np.abs(coords[:, axis] - position) < 0.5
        return keep

    def to_plane(self, coords: np.ndarray) -> np.ndarray:
        """(N, ndim) data coordinates → (N, 2) (row, col) on the plane."""
        coords = np.asarray(coords, dtype=float).reshape(len(coords), len(self.index))
        return coords[:, list(self.displayed)]

    def describe(self) -> str:
        return "" if not self.fixed else "slice " + ",".join(str(i) for i in self.fixed)


@dataclass(frozen=True)
class LayerSnapshot:
    """What :func:`slice_rgb` reads of an image layer, read once on the main thread.

    A worker converts planes from a snapshot, never from the layer, which napari may be
    changing meanwhile. Built from a bare array, it converts pixels exactly as a layer with
    that data, flag and limits would.
    """

    data: Any  # the layer's data (a list of levels if multiscale)
    rgb: bool
    contrast_limits: tuple[float, float] | None
    multiscale: bool = False

    @classmethod
    def of(cls, layer) -> LayerSnapshot:
        limits = getattr(layer, "contrast_limits", None)
        return cls(
            data=layer.data,
            rgb=bool(getattr(layer, "rgb", False)),
            contrast_limits=tuple(float(v) for v in limits) if limits is not None else None,
            multiscale=bool(getattr(layer, "multiscale", False)),
        )


def spatial_shape(layer) -> tuple[int, ...]:
    """Shape of an image layer's data without the RGB channel axis (level 0 if multiscale)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    shape = tuple(int(s) for s in data.shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def slice_in_view(viewer, layer) -> SliceRef:
    """The plane of ``layer`` the viewer shows now.

    Raises
    ------
    ImageError
        The viewer is in 3D display, or the layer is outside the current position.
    """
    if viewer.dims.ndisplay != 2:
        raise ImageError(
            "prompted segmentation works in 2D view: switch the viewer to 2D (Ctrl+Y)."
        )
    shape = spatial_shape(layer)
    ndim = len(shape)
    if ndim < 2:
        raise ImageError(f"the layer {layer.name!r} has {ndim} dimension(s); SAM needs 2D images.")
    offset = viewer.dims.ndim - ndim  # a layer's axes are the viewer's last ndim axes
    displayed_world = list(viewer.dims.displayed)
    displayed = tuple(axis - offset for axis in displayed_world)
    if any(axis < 0 for axis in displayed):
        raise ImageError(f"the layer {layer.name!r} does not span the displayed axes.")
    position = np.asarray(layer.world_to_data(viewer.dims.point[offset:]), dtype=float)
    index: list[int | None] = []
    for axis in range(ndim):
        if axis in displayed:
            index.append(None)
            continue
        step = int(np.round(position[axis]))
        if not 0 <= step < shape[axis]:
            raise ImageError(
                f"the layer {layer.name!r} has no data at the current position of axis {axis}."
            )
        index.append(step)
    return SliceRef(tuple(index), (displayed[0], displayed[1]))


def slice_pixels(layer, ref: SliceRef) -> np.ndarray:
    """The raw 2D (or 2D + RGB channel) data of the plane, rows and cols as displayed."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    selection = tuple(slice(None) if i is None else i for i in ref.index)
    plane = np.asarray(data[selection])
    if ref.displayed[0] > ref.displayed[1]:  # axes shown transposed
        plane = np.swapaxes(plane, 0, 1)
    return plane


def slice_rgb(layer, ref: SliceRef) -> np.ndarray:
    """The plane as SAM input, with the layer's contrast limits (see core.image)."""
    plane = slice_pixels(layer, ref)
    rgb = bool(getattr(layer, "rgb", False))
    limits = getattr(layer, "contrast_limits", None)
    return to_rgb_uint8(
        plane, contrast_limits=tuple(limits) if limits is not None else None, rgb=rgb
    )
