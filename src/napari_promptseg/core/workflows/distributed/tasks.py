"""The units of work the commands split into, and what each sends back.

Each ``*_task(segmenter, task)`` is a module-level function run by
:func:`.runner.run_items` in this process or on a Dask worker; each ``task`` is a small
frozen dataclass naming the file (an :class:`.sources.ImageSource`), the plane(s), the
tile and the parameters, never pixels. Results are small (counts), or one plane's labels
and table rows, or objects' masks cut to their bounding boxes, which the command
assembles (:mod:`.assemble`) so a run on a cluster writes the same files as a run in one
process.

Large planes (longest side above
:data:`~napari_promptseg.core.workflows.tiling.TILE_ABOVE`) are handled by tiles exactly as
the napari session handles them: embedded tile by tile (one task per tile, each tile its
own store entry under the same key the session's
:class:`~napari_promptseg.core.workflows.tiling.TiledImage` looks up), and prompts decoded
through ``TiledImage`` (routed to the tile holding them, continued across tile edges).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ImageError
from ...sam.decode import DecodeResult
from ...sam.engine import PromptSegmenter
from ...sam.prompts import Prompts, to_sam_prompts
from ..everything.generator import segment_everything
from ..everything.params import EverythingParams
from ..stack import PlaneLabel, iter_embed_planes
from ..tiling import Tile, TiledImage, TileGrid, needs_tiling
from .sources import ImageSource

# -- embed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbedTask:
    """Embed ``planes`` of ``source`` into the engine's store (None: every plane).

    ``tile`` set: only that tile of each plane (a plane too large for one embedding, split
    into one task per tile). Unset: each plane whole, or, when it is large, every tile of
    it in turn (a folder's file: one task per file).
    """

    source: ImageSource
    planes: tuple[PlaneLabel, ...] | None = None
    skip_unreadable: bool = False  # a folder's file that is not an image: report, go on
    tile: Tile | None = None


@dataclass(frozen=True)
class EmbedOutcome:
    """What one :class:`EmbedTask` did; ``computed``, ``reused`` and ``total`` count
    embeddings (store entries): planes, or tiles of large planes."""

    name: str
    computed: int = 0
    reused: int = 0
    total: int = 0
    skipped: str | None = None  # why the file was skipped
    planes: int = 0  # planes embedded whole or by all their tiles (a tile task: 0)
    tiles: int = 0  # how many of the embeddings are tiles


def embed_tasks(source: ImageSource) -> list[EmbedTask]:
    """One task per plane of ``source``, or per tile of a plane too large for one embedding."""
    planes = source.planes()
    if not needs_tiling(planes.plane_shape):
        return [EmbedTask(source, (label,)) for label in planes.labels]
    grid = TileGrid(planes.plane_shape)
    return [EmbedTask(source, (label,), tile=tile) for label in planes.labels for tile in grid]


def embed_task(segmenter: PromptSegmenter, task: EmbedTask) -> EmbedOutcome:
    """Embed the task's planes or tiles; those already stored cost a read, not an encoder run."""
    try:
        planes = task.source.planes()
        labels = planes.labels if task.planes is None else list(task.planes)
        units = list(_embedding_units(planes.plane_shape, labels, task.tile))

        def pairs() -> Iterator[tuple[PlaneLabel, np.ndarray]]:
            for label, tile in units:
                yield label, planes.rgb(label, None if tile is None else tile.slices)

        steps = iter_embed_planes(segmenter, pairs(), total=len(units))
        while True:
            try:
                next(steps)
            except StopIteration as finished:
                summary = finished.value
                break
    except ImageError as error:
        if not task.skip_unreadable:
            raise
        return EmbedOutcome(task.source.name, skipped=str(error))
    return EmbedOutcome(
        task.source.name,
        summary.computed,
        summary.reused,
        summary.total,
        planes=0 if task.tile is not None else len(labels),
        tiles=sum(tile is not None for _label, tile in units),
    )


def _embedding_units(
    shape: tuple[int, int], labels: Sequence[PlaneLabel], tile: Tile | None
) -> Iterator[tuple[PlaneLabel, Tile | None]]:
    """(plane, tile or None for the whole plane) of every embedding to make, in order."""
    tiles: Sequence[Tile | None]
    if tile is not None:
        tiles = [tile]
    elif needs_tiling(shape):
        tiles = list(TileGrid(shape))  # the session's grid: TiledImage's defaults
    else:
        tiles = [None]
    for label in labels:
        for each in tiles:
            yield label, each


# -- segment everything ---------------------------------------------------------------------


@dataclass(frozen=True)
class EverythingTask:
    """Segment everything on one plane of ``source``."""

    source: ImageSource
    plane: PlaneLabel
    params: EverythingParams = field(default_factory=EverythingParams)


@dataclass(eq=False)
class PlaneObjects:
    """One plane's objects: ``labels`` (H, W) uint32 with ids 1..N and N table rows."""

    plane: PlaneLabel
    labels: np.ndarray
    rows: list[dict[str, Any]]
    masks: int  # masks SAM kept (some may end with no pixel of their own)


def everything_task(segmenter: PromptSegmenter, task: EverythingTask) -> PlaneObjects:
    """Segment everything on the task's plane (embedding from the store when present)."""
    rgb = task.source.planes().rgb(task.plane)
    result = segment_everything(segmenter, rgb, task.params)
    rows = [dict(row, model=segmenter.name) for row in result.rows]
    return PlaneObjects(task.plane, result.labels, rows, len(result.masks))


@dataclass(frozen=True)
class EverythingImageTask:
    """Segment everything on every plane of one file of a folder (one task per image).

    ``source`` is not resolved: the worker converts the file with napari's default contrast
    for it, as ``promptseg everything FILE`` would.
    """

    source: ImageSource
    params: EverythingParams = field(default_factory=EverythingParams)


@dataclass(eq=False)
class ImageObjects:
    """Every plane's objects of one image, and what its label image needs."""

    name: str
    planes_shape: tuple[int, ...]  # sizes of the leading axes; () for a 2D image
    plane_shape: tuple[int, int]
    axes: tuple[str, ...] | None  # an OME-Zarr's axes
    planes: list[PlaneObjects]
    skipped: str | None = None  # why the file was skipped (not an image...)


def everything_image_task(segmenter: PromptSegmenter, task: EverythingImageTask) -> ImageObjects:
    """Segment everything on each plane of the task's file, in turn; an unreadable file is
    reported as skipped."""
    try:
        planes = task.source.planes()
        results = [
            everything_task(segmenter, EverythingTask(task.source, label, task.params))
            for label in planes.labels
        ]
        last = planes.labels[-1]
        shape = tuple(i + 1 for i in last)
        return ImageObjects(
            task.source.name, shape, planes.plane_shape, task.source.axes(), results
        )
    except ImageError as error:
        return ImageObjects(task.source.name, (), (0, 0), None, [], skipped=str(error))


# -- segment with prompts ---------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTask:
    """Decode every object prompted on one plane; ``objects`` are (index, prompts) pairs.

    On a large plane the objects are grouped by the tile their prompts are routed to, one
    task per group (``tile`` names it; the task routes each object itself all the same).
    """

    source: ImageSource
    plane: PlaneLabel
    objects: tuple[tuple[int, Prompts], ...]
    multimask: bool | None = None
    tile: Tile | None = None


@dataclass(eq=False)
class ObjectMask:
    """One object's decoded mask and scores, before it is painted.

    ``mask`` is cut to the mask's bounding box, whose top-left pixel is ``offset`` in the
    plane (a large plane's full-size masks would be heavy to send back).
    """

    index: int  # position of the object in the prompt files' order
    mask: np.ndarray  # (h, w) bool
    predicted_iou: float
    stability: float
    candidate: int
    offset: tuple[int, int] = (0, 0)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Where ``mask`` lies in the plane."""
        (row, col), (height, width) = self.offset, self.mask.shape
        return slice(row, row + height), slice(col, col + width)


def prompt_tasks(
    source: ImageSource,
    plane_shape: tuple[int, int],
    objects: Sequence[tuple[PlaneLabel, int, Prompts]],
    multimask: bool | None = None,
) -> list[PromptTask]:
    """``(plane, index, prompts)`` objects as tasks: one per plane, or per plane and routing
    tile on a large plane (objects routed to no single tile share a whole-image task)."""
    groups: dict[tuple[PlaneLabel, Tile | None], list[tuple[int, Prompts]]] = {}
    grid = TileGrid(plane_shape) if needs_tiling(plane_shape) else None
    for plane, index, prompts in objects:
        tile = None if grid is None else routing_tile(grid, prompts)
        groups.setdefault((plane, tile), []).append((index, prompts))
    return [
        PromptTask(source, plane, tuple(items), multimask, tile)
        for (plane, tile), items in groups.items()
    ]


def routing_tile(grid: TileGrid, prompts: Prompts) -> Tile:
    """The tile :meth:`TiledImage.route` decodes ``prompts`` on (``spanning="whole"``)."""
    sam = to_sam_prompts(prompts, grid.shape)
    corners = [np.zeros((0, 2))]
    if sam.point_coords is not None:
        corners.append(np.asarray(sam.point_coords, dtype=float)[:, ::-1])
    if sam.box is not None:
        corners.append(np.asarray(sam.box, dtype=float)[[1, 0, 3, 2]].reshape(2, 2))
    routed = grid.route(np.vstack(corners))
    return grid.whole if routed is None else routed


def prompt_task(segmenter: PromptSegmenter, task: PromptTask) -> list[ObjectMask]:
    """Embed the plane once (or read it from the store) and decode each object's prompts;
    a large plane through :class:`TiledImage`, as the napari session does."""
    rgb = task.source.planes().rgb(task.plane)
    out = []
    if needs_tiling(rgb.shape[:2]):
        tiled = TiledImage(segmenter, rgb)  # the session's defaults: tiles, overlap, reach
        for index, prompts in task.objects:
            out.append(_object_mask(index, tiled.predict(prompts, multimask=task.multimask)))
        return out
    embedding = segmenter.embed(rgb)
    for index, prompts in task.objects:
        out.append(_object_mask(index, segmenter.predict(embedding, prompts, task.multimask)))
    return out


def _object_mask(index: int, result: DecodeResult) -> ObjectMask:
    """The best candidate of a decode result, cut to its bounding box."""
    mask = np.asarray(result.mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        box, offset = mask[:0, :0], (0, 0)
    else:
        box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        offset = (int(rows[0]), int(cols[0]))
    return ObjectMask(
        index,
        np.ascontiguousarray(box),
        float(result.iou[result.best]),
        float(result.stability[result.best]),
        int(result.best),
        offset,
    )
