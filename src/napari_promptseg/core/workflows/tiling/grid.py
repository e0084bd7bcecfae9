"""Tiles of a large 2D image: the grid geometry (pure numpy; no model).

A :class:`TileGrid` covers an (H, W) image with overlapping square tiles; a :class:`Tile`
is one of them. Coordinates are napari's (row, col) with pixel centres on integers: a tile
of rows ``row0 .. row1 - 1`` covers the continuous extent ``row0 - 0.5 .. row1 - 0.5``.
Decoding on tiles lives in :mod:`.tiling`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ...errors import ImageError, PromptError

TILE = 1024  # SAM's input size: a tile is embedded without downscaling
OVERLAP = 256
# Planes whose longest side exceeds this are segmented by tiles (SAM sees 1024 px at most:
# beyond ~2x downscaling small objects vanish). The napari session and the batch commands
# both decide with :func:`needs_tiling`, so a plane embedded by ``promptseg embed`` is found
# tile by tile in napari. See docs/tiling.md.
TILE_ABOVE = 2048


def needs_tiling(shape: Sequence[int], above: int = TILE_ABOVE) -> bool:
    """Whether an (H, W) plane is embedded by tiles: its longest side exceeds ``above`` px."""
    return max(int(shape[0]), int(shape[1])) > above


@dataclass(frozen=True, order=True)
class Tile:
    """Pixel rows ``row0 .. row1 - 1`` and columns ``col0 .. col1 - 1`` of the image.

    ``index`` is the (grid row, grid column); None for the whole image (the fallback for
    prompts that no tile holds).
    """

    index: tuple[int, int] | None
    row0: int
    col0: int
    row1: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.row1 - self.row0, self.col1 - self.col0

    @property
    def offset(self) -> tuple[int, int]:
        return self.row0, self.col0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row0, self.row1), slice(self.col0, self.col1)

    @property
    def is_whole(self) -> bool:
        return self.index is None

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: which (N, 2) (row, col) points lie on the tile (pixel edges included)."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        return (
            (points[:, 0] >= self.row0 - 0.5)
            & (points[:, 0] <= self.row1 - 0.5)
            & (points[:, 1] >= self.col0 - 0.5)
            & (points[:, 1] <= self.col1 - 0.5)
        )

    def overlap_in(self, other: Tile) -> tuple[slice, slice]:
        """The part of this tile that ``other`` also covers, in this tile's frame (may be empty)."""
        rows = slice(max(other.row0 - self.row0, 0), max(min(other.row1, self.row1) - self.row0, 0))
        cols = slice(max(other.col0 - self.col0, 0), max(min(other.col1, self.col1) - self.col0, 0))
        return rows, cols

    def __str__(self) -> str:
        if self.is_whole:
            return "whole image"
        return (
            f"{self.index} (rows {self.row0}..{self.row1 - 1}, cols {self.col0}..{self.col1 - 1})"
        )


class TileGrid:
    """Overlapping tiles covering an (H, W) image, row-major.

    Along each axis, an image no longer than ``tile`` is one tile; a longer one gets the
    fewest tiles of exactly ``tile`` px whose neighbours overlap by at least ``overlap`` px,
    spread evenly with the last one ending on the image border.

    Parameters
    ----------
    shape
        (H, W) of the image.
    tile
        Tile side in pixels.
    overlap
        Least overlap of neighbouring tiles in pixels, ``0 <= overlap < tile``. Objects
        smaller than the overlap always fit wholly in some tile.
    """

    def __init__(self, shape: Sequence[int], tile: int = TILE, overlap: int = OVERLAP) -> None:
        if len(shape) < 2 or int(shape[0]) < 1 or int(shape[1]) < 1:
            raise ImageError(f"tiling needs an (H, W) image of at least 1x1; got {shape}.")
        if int(tile) < 16:
            raise ImageError(f"tiles must be at least 16 px; got {tile}.")
        if not 0 <= int(overlap) < int(tile):
            raise ImageError(f"the tile overlap must be in 0..{int(tile) - 1} px; got {overlap}.")
        self.shape = (int(shape[0]), int(shape[1]))
        self.tile, self.overlap = int(tile), int(overlap)
        self.row_starts = _starts(self.shape[0], self.tile, self.overlap)
        self.col_starts = _starts(self.shape[1], self.tile, self.overlap)
        self._sizes = (min(self.tile, self.shape[0]), min(self.tile, self.shape[1]))

    @property
    def n_rows(self) -> int:
        return len(self.row_starts)

    @property
    def n_cols(self) -> int:
        return len(self.col_starts)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def __iter__(self) -> Iterator[Tile]:
        for i in range(self.n_rows):
            for j in range(self.n_cols):
                yield self[i, j]

    def __getitem__(self, index: tuple[int, int]) -> Tile:
        i, j = int(index[0]), int(index[1])
        if not (0 <= i < self.n_rows and 0 <= j < self.n_cols):
            raise IndexError(f"tile {index} is outside the {self.n_rows}x{self.n_cols} grid.")
        r0, c0 = int(self.row_starts[i]), int(self.col_starts[j])
        return Tile((i, j), r0, c0, r0 + self._sizes[0], c0 + self._sizes[1])

    @property
    def whole(self) -> Tile:
        """The whole image as one (downscaled) tile."""
        return Tile(None, 0, 0, *self.shape)

    def route(self, points: np.ndarray) -> Tile | None:
        """The tile holding all (N, 2) (row, col) ``points`` with the most margin, or None.

        The margin is the distance to the nearest inner edge (image borders do not count);
        rows and columns are independent, so each axis is chosen on its own. Ties go to the
        first tile.
        """
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        if len(points) == 0:
            raise PromptError("no prompt to route to a tile.")
        i = _best_on_axis(self.row_starts, self._sizes[0], self.shape[0], points[:, 0])
        j = _best_on_axis(self.col_starts, self._sizes[1], self.shape[1], points[:, 1])
        return None if i is None or j is None else self[i, j]

    def tile_of(self, point: Sequence[float]) -> Tile:
        """The tile a (row, col) point is decoded in: the one holding it with most margin."""
        tile = self.route(np.asarray(point, dtype=float).reshape(1, 2))
        if tile is None:
            raise PromptError(f"the point {tuple(point)} lies outside the {self.shape} image.")
        return tile

    def tiles_at(self, point: Sequence[float]) -> list[Tile]:
        """Every tile a (row, col) point lies on (more than one in overlaps)."""
        xy = np.asarray(point, dtype=float).reshape(1, 2)
        return [t for t in self if t.contains(xy)[0]]

    def tiles_of_box(self, box: Sequence[float]) -> list[Tile]:
        """Every tile a (row0, col0, row1, col1) box overlaps (corners in any order)."""
        row0, row1 = sorted((float(box[0]), float(box[2])))
        col0, col1 = sorted((float(box[1]), float(box[3])))
        return [
            t
            for t in self
            if row0 <= t.row1 - 0.5
            and row1 >= t.row0 - 0.5
            and col0 <= t.col1 - 0.5
            and col1 >= t.col0 - 0.5
        ]

    def tiles_holding(self, rows: ArrayLike, cols: ArrayLike) -> set[Tile]:
        """Tiles whose rows include any of ``rows`` and whose columns any of ``cols`` (pixels)."""
        grid_rows = _axis_hits(self.row_starts, self._sizes[0], rows)
        grid_cols = _axis_hits(self.col_starts, self._sizes[1], cols)
        return {self[i, j] for i in grid_rows for j in grid_cols}


def _starts(length: int, tile: int, overlap: int) -> np.ndarray:
    if length <= tile:
        return np.zeros(1, dtype=int)
    count = int(np.ceil((length - tile) / (tile - overlap))) + 1
    return np.round(np.linspace(0, length - tile, count)).astype(int)


def _best_on_axis(starts: np.ndarray, size: int, length: int, coords: np.ndarray) -> int | None:
    low, high = float(coords.min()), float(coords.max())
    best, best_margin = None, -np.inf
    for i, start in enumerate(starts):
        end = start + size
        if low < start - 0.5 or high > end - 0.5:
            continue
        margin = min(
            low - (start - 0.5) if start > 0 else np.inf,
            (end - 0.5) - high if end < length else np.inf,
        )
        if margin > best_margin:
            best, best_margin = i, margin
    return best


def _axis_hits(starts: np.ndarray, size: int, coords: ArrayLike) -> list[int]:
    coords = np.asarray(coords, dtype=int).reshape(-1)
    if len(coords) == 0:
        return []
    low, high = coords.min(), coords.max()
    # a tile holds some coordinate if any lies in [start, start + size)
    return [
        i
        for i, start in enumerate(starts)
        if high >= start
        and low < start + size
        and np.any((coords >= start) & (coords < start + size))
    ]


__all__ = ["OVERLAP", "TILE", "TILE_ABOVE", "Tile", "TileGrid", "needs_tiling"]
