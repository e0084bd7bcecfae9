"""Large 2D images by tiles: SAM at full resolution on images far bigger than 1024 px.

SAM resizes every image's longest side to 1024 px, so on a 5000x5000 image a 20 px object
shrinks to 4 px and vanishes. Here the image is cut into overlapping tiles of ``tile`` px
(1024 by default, SAM's own input size, so a tile is seen at full resolution) and each tile
is embedded on its own, only when a prompt needs it. See docs/tiling.md for the size limit.

Routing
    All the prompts of one object (points, scribble points, box corners) go to the tile that
    holds them all with the most margin from its inner edges (edges on the image border do
    not count: nothing lies beyond them). They are shifted into that tile's frame, decoded
    there, and the masks are pasted back at the tile's offset into full-size masks.

Continuation
    A mask that touches an inner edge of its tile goes on in the tile(s) across that edge.
    There it is decoded again, prompted with interior points of the part already known (the
    overlap) plus the user's points inside that tile; of the three candidates the one that
    agrees best with the known part is kept, and of it only the pieces that touch the known
    mask, so the object stays one connected whole (union of the pieces). This repeats from
    each new tile, up to ``reach`` tiles (grid steps) from the routing tile. Every candidate
    mask is continued on its own. A box prompt bounds the object inside its tile, so
    box-prompted objects are not continued.

Scores
    ``iou`` and ``stability`` are the routing tile's: the decode of the prompts the user
    gave, on the tile that holds them. Continuation decodes only extend the masks, and
    ``low_res_logits`` are the routing tile's (refine with ``tile=result.tile``).

Prompts that no tile holds
    ``spanning="whole"`` (default): decoded on the whole image embedded at once, SAM's
    downscaled view (one more embedding); prompts spread that far mark an object large
    enough for that view. ``spanning="error"``: a :class:`PromptError` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...errors import ImageError, PromptError, PromptSegError
from ...sam.decode import DecodeResult
from ...sam.embedding import EmbeddingKey, ImageEmbedding, ProgressCallback
from ...sam.engine import PromptSegmenter
from ...sam.prompts import Prompts, to_sam_prompts
from .grid import OVERLAP, TILE, Tile, TileGrid

MAX_SEEDS = 3  # interior points prompting a continuation tile
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity: diagonal pixels touch


@dataclass(eq=False)
class TiledResult(DecodeResult):
    """A :class:`DecodeResult` at full image size, plus where it came from.

    Attributes
    ----------
    tile
        The routing tile (``iou``, ``stability``, ``low_res_logits`` and ``key`` are its).
    tiles
        Every tile whose decode contributed, the routing tile included.
    pending
        Tiles the masks reach into but which were not embedded (``embed_missing=False``):
        embed them and predict again for the whole object.
    """

    tile: Tile | None = None
    tiles: tuple[Tile, ...] = ()
    pending: tuple[Tile, ...] = ()


class TiledImage:
    """One large (H, W, 3) uint8 image, embedded tile by tile on demand and decoded at full size.

    Parameters
    ----------
    segmenter
        A :class:`~napari_promptseg.core.sam.engine.PromptSegmenter` (anything with its
        ``key_for``, ``cached``, ``embed``, ``iter_embed`` and ``predict``). Each tile is
        embedded through it, so its content key makes each tile its own cache/store entry.
    rgb
        (H, W, 3) uint8, e.g. from :func:`~napari_promptseg.core.sam.image.to_rgb_uint8`.
    tile, overlap
        Grid geometry, see :class:`TileGrid`.
    reach
        How many grid steps from the routing tile an object may be continued; 0: never.
    spanning
        ``"whole"`` or ``"error"``: what prompts that no tile holds get (module docstring).
    """

    def __init__(
        self,
        segmenter: PromptSegmenter,
        rgb: np.ndarray,
        *,
        tile: int = TILE,
        overlap: int = OVERLAP,
        reach: int = 1,
        spanning: str = "whole",
    ) -> None:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape[2:] != (3,):
            raise ImageError(
                "tiling needs an (H, W, 3) uint8 image; convert with core.image.to_rgb_uint8 "
                f"(got {getattr(rgb, 'shape', None)} {getattr(rgb, 'dtype', '')})."
            )
        if spanning not in ("whole", "error"):
            raise ValueError(f"spanning must be 'whole' or 'error'; got {spanning!r}.")
        self.grid = TileGrid(rgb.shape[:2], tile, overlap)
        if reach > 0 and overlap < 1 and len(self.grid) > 1:
            raise ImageError("continuing objects across tiles needs an overlap of at least 1 px.")
        self.segmenter, self.rgb = segmenter, rgb
        self.reach, self.spanning = int(reach), spanning
        self._keys: dict[Tile, EmbeddingKey] = {}

    # -- embeddings -----------------------------------------------------------------------

    def tile_rgb(self, tile: Tile) -> np.ndarray:
        """The tile's pixels, (h, w, 3) uint8, C-contiguous."""
        return np.ascontiguousarray(self.rgb[tile.slices])

    def key(self, tile: Tile) -> EmbeddingKey:
        if tile not in self._keys:
            self._keys[tile] = self.segmenter.key_for(self.tile_rgb(tile))
        return self._keys[tile]

    def cached(self, tile: Tile) -> ImageEmbedding | None:
        """The tile's embedding from memory or the disk store, never computed."""
        return self.segmenter.cached(self.tile_rgb(tile), self.key(tile))

    def embed(
        self,
        tile: Tile,
        *,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> ImageEmbedding:
        """Embed one tile (cached); raises :class:`Cancelled` when ``should_cancel()``."""
        return self.segmenter.embed(
            self.tile_rgb(tile), progress=progress, should_cancel=should_cancel
        )

    def iter_embed(
        self, tiles: Sequence[Tile]
    ) -> Generator[tuple[int, int], None, list[ImageEmbedding]]:
        """Embed ``tiles`` in turn, yielding (steps done, steps total) over all of them.

        For a napari generator worker: closing the generator cancels. Cached tiles cost
        nothing and yield nothing.
        """
        embeddings = []
        for n, tile in enumerate(tiles):
            steps = self.segmenter.iter_embed(self.tile_rgb(tile))
            try:
                while True:
                    done, total = next(steps)
                    yield n * total + done, len(tiles) * total
            except StopIteration as finished:
                embeddings.append(finished.value)
        return embeddings

    # -- routing and decoding -------------------------------------------------------------

    def route(self, prompts: Prompts, tile: Tile | None = None) -> Tile:
        """The tile ``prompts`` are decoded in (validated against the whole image first).

        Raises
        ------
        PromptError
            Invalid prompts; a given ``tile`` that does not hold them all; prompts that no
            tile holds with ``spanning="error"``; a ``mask_input`` without ``tile`` (on a
            grid of more than one tile).
        """
        points, _, box = _flatten(prompts, self.grid.shape)
        corners = points if box is None else np.vstack([points, box.reshape(2, 2)])
        if tile is not None:
            if not tile.contains(corners).all():
                raise PromptError(f"the prompts do not all lie on the tile {tile}.")
            return tile
        if prompts.mask_input is not None and len(self.grid) > 1:
            raise PromptError(
                "a mask_input refines the mask of one tile: pass tile=<previous result>.tile."
            )
        routed = self.grid.route(corners)
        if routed is not None:
            return routed
        if self.spanning == "whole":
            return self.grid.whole
        rows, cols = np.ptp(corners[:, 0]) + 1, np.ptp(corners[:, 1]) + 1
        raise PromptError(
            f"the prompts of one object span {rows:.0f}x{cols:.0f} px, more than one "
            f"{self.grid.tile} px tile with {self.grid.overlap} px overlap holds: place them "
            "closer together, or segment this object on the whole (downscaled) image."
        )

    def tiles_needed(self, prompts: Prompts, multimask: bool | None = None) -> list[Tile]:
        """Tiles to embed before :meth:`predict` can run without computing an embedding.

        The routing tile if it is not embedded; else the tiles the object continues into
        (found by decoding, which is cheap). Embedding those can reveal further ones: a GUI
        embeds in the background until this returns ``[]``, then predicts.
        """
        home = self.route(prompts)
        if self.cached(home) is None:
            return [home]
        result = self.predict(prompts, multimask=multimask, embed_missing=False)
        return list(result.pending)

    def predict(
        self,
        prompts: Prompts,
        multimask: bool | None = None,
        *,
        tile: Tile | None = None,
        embed_missing: bool = True,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> TiledResult:
        """Masks for ``prompts`` (napari (row, col), whole-image frame) at full image size.

        Parameters
        ----------
        multimask
            As :meth:`SamDecoder.predict`: None = three candidates for a lone point.
        tile
            Decode on this tile instead of routing (needed with a ``mask_input``).
        embed_missing
            Embed tiles not yet embedded (slow, with ``progress``/``should_cancel``); if
            False, continuation stops there and lists them in ``pending``, and a routing
            tile not embedded raises :class:`PromptSegError`.

        Returns
        -------
        TiledResult
            ``masks`` (K, H, W) bool; scores of the routing tile (module docstring).
        """
        home = self.route(prompts, tile)
        embedding = self._embedding(home, embed_missing, progress, should_cancel)
        if embedding is None:
            raise PromptSegError(
                f"the tile {home} is not embedded yet: embed tiles_needed(prompts) first."
            )
        points, labels, box = _flatten(prompts, self.grid.shape)
        if home.is_whole:
            local = prompts  # the untouched prompts on the whole image
        else:
            offset = np.array(home.offset, dtype=float)
            local = Prompts(
                points=points - offset,
                labels=labels,
                box=None if box is None else box - np.tile(offset, 2),
                mask_input=prompts.mask_input,
            )
        result = self.segmenter.predict(embedding, local, multimask=multimask)
        masks = np.zeros((len(result.masks), *self.grid.shape), dtype=bool)
        rows, cols = home.slices
        masks[:, rows, cols] = result.masks
        used: set[Tile] = {home}
        pending: set[Tile] = set()
        if not home.is_whole and self.reach > 0 and box is None:
            used, pending = self._continue(
                masks, home, points, labels, embed_missing, progress, should_cancel
            )
        return TiledResult(
            masks=masks,
            iou=result.iou,
            stability=result.stability,
            low_res_logits=result.low_res_logits,
            best=result.best,
            key=result.key,
            tile=home,
            tiles=tuple(sorted(used)),
            pending=tuple(sorted(pending)),
        )

    # -- continuation ---------------------------------------------------------------------

    def _continue(
        self,
        masks: np.ndarray,
        home: Tile,
        points: np.ndarray,
        labels: np.ndarray,
        embed_missing: bool,
        progress: ProgressCallback | None,
        should_cancel: Callable[[], bool] | None,
    ) -> tuple[set[Tile], set[Tile]]:
        """Extend every candidate of ``masks`` (K, H, W) in place across inner tile edges.

        Breadth first over tiles, all candidates that reach a tile decoded there together
        (so its decoder state is prepared once). Returns (tiles used, tiles pending).
        """
        used = [{home} for _ in masks]  # per candidate: tiles whose decode its mask holds
        tried = [{home} for _ in masks]
        waiting: dict[Tile, set[int]] = {}  # tile → candidates to continue there, in order
        pending: set[Tile] = set()

        def reach_from(tile: Tile, k: int) -> None:
            for nxt in sorted(self._across_edges(masks[k], tile, home) - tried[k]):
                tried[k].add(nxt)
                waiting.setdefault(nxt, set()).add(k)

        for k in range(len(masks)):
            reach_from(home, k)
        while waiting:
            tile = next(iter(waiting))
            candidates = waiting.pop(tile)
            embedding = self._embedding(tile, embed_missing, progress, should_cancel)
            if embedding is None:
                pending.add(tile)
                continue
            for k in sorted(candidates):
                covered = np.zeros(tile.shape, dtype=bool)  # pixels decoded for k elsewhere
                for other in used[k]:
                    covered[tile.overlap_in(other)] = True
                known = masks[k][tile.slices] & covered
                local = _continuation_prompts(known, tile, points, labels)
                if local is None:
                    continue
                result = self.segmenter.predict(embedding, local, multimask=True)
                piece = _agreeing_piece(result.masks, known, covered)
                if piece is None:
                    continue
                masks[k][tile.slices] |= piece
                used[k].add(tile)
                reach_from(tile, k)
        return set().union(*used), pending

    def _across_edges(self, mask: np.ndarray, tile: Tile, home: Tile) -> set[Tile]:
        """Tiles holding the pixels just beyond ``tile``'s inner edges that ``mask`` touches."""
        height, width = self.grid.shape
        r0, c0, r1, c1 = tile.row0, tile.col0, tile.row1, tile.col1
        found: set[Tile] = set()
        if r1 < height:
            found |= self.grid.tiles_holding([r1], np.flatnonzero(mask[r1 - 1, c0:c1]) + c0)
        if r0 > 0:
            found |= self.grid.tiles_holding([r0 - 1], np.flatnonzero(mask[r0, c0:c1]) + c0)
        if c1 < width:
            found |= self.grid.tiles_holding(np.flatnonzero(mask[r0:r1, c1 - 1]) + r0, [c1])
        if c0 > 0:
            found |= self.grid.tiles_holding(np.flatnonzero(mask[r0:r1, c0]) + r0, [c0 - 1])
        hi, hj = _grid_index(home)
        return {
            t
            for t in found
            if max(abs(_grid_index(t)[0] - hi), abs(_grid_index(t)[1] - hj)) <= self.reach
        } - {tile}

    def _embedding(
        self,
        tile: Tile,
        embed_missing: bool,
        progress: ProgressCallback | None,
        should_cancel: Callable[[], bool] | None,
    ) -> ImageEmbedding | None:
        embedding = self.cached(tile)
        if embedding is None and embed_missing:
            embedding = self.embed(tile, progress=progress, should_cancel=should_cancel)
        return embedding


def _grid_index(tile: Tile) -> tuple[int, int]:
    if tile.index is None:  # the whole image has no neighbours to continue into
        raise ValueError("the whole-image tile has no grid index")
    return tile.index


def _continuation_prompts(
    known: np.ndarray, tile: Tile, points: np.ndarray, labels: np.ndarray
) -> Prompts | None:
    """Interior points of the known mask part (h, w) plus the user's points on ``tile``.

    One point per connected part of ``known`` (the largest :data:`MAX_SEEDS`), at its
    deepest pixel: the farthest from the part's edge, so well inside the object.
    """
    rows, cols = np.flatnonzero(known.any(axis=1)), np.flatnonzero(known.any(axis=0))
    if len(rows) == 0:
        return None
    # work on the known part's bounding box only (a strip of the overlap), padded by one
    # pixel so the box edge counts as background for the distance
    r0, c0 = rows[0], cols[0]
    part = np.pad(known[r0 : rows[-1] + 1, c0 : cols[-1] + 1], 1)
    components, _ = ndimage.label(part, structure=_EIGHT)
    sizes = np.bincount(components.ravel())[1:]
    depth = ndimage.distance_transform_edt(part)
    seeds = []
    for component in np.argsort(sizes)[::-1][:MAX_SEEDS] + 1:
        deepest = np.argmax(np.where(components == component, depth, -1.0))
        row, col = np.unravel_index(deepest, part.shape)
        seeds.append((row - 1 + r0, col - 1 + c0))
    mine = tile.contains(points)
    user = points[mine] - np.array(tile.offset, dtype=float)
    return Prompts(
        points=np.vstack([np.array(seeds, dtype=float), user]),
        labels=np.concatenate([np.ones(len(seeds), dtype=int), labels[mine]]),
    )


def _agreeing_piece(masks: np.ndarray, known: np.ndarray, covered: np.ndarray) -> np.ndarray | None:
    """Of (K, h, w) candidates, the one with the best IoU with ``known`` inside ``covered``,
    cut to its connected parts that touch ``known``; None when none agrees at all."""
    best, best_iou = None, 0.0
    for candidate in masks:
        union = np.count_nonzero((candidate | known) & covered)
        iou = np.count_nonzero(candidate & known) / union if union else 0.0
        if iou > best_iou:
            best, best_iou = candidate, iou
    if best is None:
        return None
    components, _ = ndimage.label(best, structure=_EIGHT)
    touching = np.unique(components[best & known])
    return np.isin(components, touching[touching > 0])


def _flatten(
    prompts: Prompts, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated prompts as (N, 2) (row, col) points in SAM's order, (N,) labels and the
    (row0, col0, row1, col1) box clipped to the image (or None)."""
    sam = to_sam_prompts(prompts, shape)
    if sam.point_coords is None:
        points, labels = np.zeros((0, 2)), np.zeros(0, dtype=int)
    else:
        points = sam.point_coords[:, ::-1].astype(float)
        labels = np.asarray(sam.point_labels, dtype=int)
    box = None if sam.box is None else sam.box[[1, 0, 3, 2]].astype(float)
    return points, labels, box


__all__ = ["OVERLAP", "TILE", "Tile", "TileGrid", "TiledImage", "TiledResult"]
