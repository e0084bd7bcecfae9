"""Planes too large for one SAM embedding, segmented by tiles.

:mod:`.grid` lays out overlapping 1024 px tiles and routes prompts to them;
:mod:`.tiled_image` embeds tiles on demand and stitches masks across tile borders.
"""

from .grid import OVERLAP, TILE, TILE_ABOVE, Tile, TileGrid, needs_tiling
from .tiled_image import TiledImage, TiledResult

__all__ = [
    "OVERLAP",
    "TILE",
    "TILE_ABOVE",
    "Tile",
    "TileGrid",
    "TiledImage",
    "TiledResult",
    "needs_tiling",
]
