"""AIS on planes larger than one embedding: micro-sam's tiles, decoder maps stitched.

micro-sam 1.8.14's ``TiledInstanceSegmentationWithDecoder``: the plane is cut into a regular
grid of inner tiles (``tile_shape``, the last row and column cut by the border), each grown
by a ``halo`` on every side (clipped to the plane) and embedded on its own; the decoder runs
on each tile's embedding and only its inner part goes into the plane's maps. The watershed
then runs once on the whole stitched maps, so objects across tile borders stay whole.
Same layout (bioimage_cpp's ``Blocking``, tiles in row-major order) and the same crops, so
the label image equals micro-sam's for the same ``tile_shape`` and ``halo``.

Planes larger than :data:`~..tiling.TILE_ABOVE` are tiled by default with
:data:`DEFAULT_TILE_SHAPE` + :data:`DEFAULT_HALO`: 768 + 2 x 128 = 1024 px, SAM's input
size, so no tile is downscaled.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import ImageError
from ...sam.embedding import ImageEmbedding
from ..tiling import needs_tiling
from .ais import InstanceMaps

DEFAULT_TILE_SHAPE = (768, 768)
DEFAULT_HALO = (128, 128)

Slices = tuple[slice, slice]


@dataclass(frozen=True)
class Block:
    """One tile: its ``inner`` part and the ``outer`` part embedded (both in the plane),
    and where the inner part lies in the outer one (``inner_local``)."""

    index: int
    inner: Slices
    outer: Slices
    inner_local: Slices

    @property
    def offset(self) -> tuple[int, int]:
        """(row, col) of the outer tile's first pixel in the plane."""
        return int(self.outer[0].start), int(self.outer[1].start)

    @property
    def outer_shape(self) -> tuple[int, int]:
        return (
            int(self.outer[0].stop - self.outer[0].start),
            int(self.outer[1].stop - self.outer[1].start),
        )


class TileLayout:
    """micro-sam's tiling of an (H, W) plane: inner tiles of ``tile_shape`` plus ``halo``.

    Raises
    ------
    ImageError
        A tile side under 16 px, or a negative halo.
    """

    def __init__(
        self, shape: Sequence[int], tile_shape: Sequence[int], halo: Sequence[int]
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.tile_shape = (int(tile_shape[0]), int(tile_shape[1]))
        self.halo = (int(halo[0]), int(halo[1]))
        if min(self.tile_shape) < 16:
            raise ImageError(f"tile shape must be at least 16 px a side; got {self.tile_shape}")
        if min(self.halo) < 0:
            raise ImageError(f"halo cannot be negative; got {self.halo}")
        self.grid = tuple(-(-s // t) for s, t in zip(self.shape, self.tile_shape, strict=True))
        self.blocks = [self._block(i) for i in range(self.grid[0] * self.grid[1])]

    def __len__(self) -> int:
        return len(self.blocks)

    def __repr__(self) -> str:
        return f"TileLayout({self.shape}, tile_shape={self.tile_shape}, halo={self.halo})"

    def _block(self, index: int) -> Block:
        position = divmod(index, self.grid[1])
        inner, outer, local = [], [], []
        for axis in range(2):
            begin = position[axis] * self.tile_shape[axis]
            end = min(begin + self.tile_shape[axis], self.shape[axis])
            outer_begin = max(begin - self.halo[axis], 0)
            outer_end = min(end + self.halo[axis], self.shape[axis])
            inner.append(slice(begin, end))
            outer.append(slice(outer_begin, outer_end))
            local.append(slice(begin - outer_begin, end - outer_begin))
        return Block(index, (inner[0], inner[1]), (outer[0], outer[1]), (local[0], local[1]))

    def block_at(self, row: int, col: int) -> Block:
        """The tile whose inner part holds pixel (row, col)."""
        if not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]):
            raise ImageError(f"pixel ({row}, {col}) is outside the {self.shape} plane")
        return self.blocks[(row // self.tile_shape[0]) * self.grid[1] + col // self.tile_shape[1]]


def tile_layout(
    shape: Sequence[int],
    tile_shape: Sequence[int] | None = None,
    halo: Sequence[int] | None = None,
) -> TileLayout | None:
    """The layout for a plane: the given ``tile_shape`` (and ``halo``, default
    :data:`DEFAULT_HALO`); without one, the default tiles for planes larger than
    ``TILE_ABOVE`` and None (one embedding) for the others."""
    if tile_shape is None:
        if halo is not None:
            raise ImageError("a halo needs a tile shape")
        if not needs_tiling(shape):
            return None
        tile_shape = DEFAULT_TILE_SHAPE
    return TileLayout(shape, tile_shape, DEFAULT_HALO if halo is None else halo)


def tile_rgb(rgb: np.ndarray, block: Block) -> np.ndarray:
    """The (h, w, 3) pixels of a tile's outer part (contiguous: it is hashed and embedded)."""
    return np.ascontiguousarray(rgb[block.outer])


def iter_tiled_maps(
    rgb: np.ndarray,
    layout: TileLayout,
    embed: Callable[[np.ndarray], ImageEmbedding],
    maps_of: Callable[[ImageEmbedding], InstanceMaps],
    should_cancel: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, InstanceMaps | None]:
    """Embed each tile, run the decoder on it and keep its inner part; yields
    ``(tiles done, tiles)`` and returns the plane's maps (None when cancelled)."""
    if tuple(rgb.shape[:2]) != layout.shape:
        raise ImageError(f"the layout is for a {layout.shape} plane, not {rgb.shape[:2]}")
    planes = [np.zeros(layout.shape, np.float32) for _ in range(3)]
    for done, block in enumerate(layout.blocks, start=1):
        if should_cancel is not None and should_cancel():
            return None
        maps = maps_of(embed(tile_rgb(rgb, block)))
        parts = (maps.foreground, maps.center_distances, maps.boundary_distances)
        for whole, part in zip(planes, parts, strict=True):
            whole[block.inner] = part[block.inner_local]
        yield done, len(layout)
    return InstanceMaps(planes[0], planes[1], planes[2])
