"""Planes too large for one SAM embedding, segmented by tiles.

:mod:`.grid` lays out overlapping 1024 px tiles and routes prompts to them;
:mod:`.tiled_image` embeds tiles on demand and stitches masks across tile borders.
"""

from .grid import OVERLAP, TILE, Tile, TileGrid
from .tiled_image import TiledImage, TiledResult

__all__ = ["OVERLAP", "TILE", "Tile", "TileGrid", "TiledImage", "TiledResult"]
