"""The units of work the commands split into, and what each sends back.

Each ``*_task(segmenter, task)`` is a module-level function run by
:func:`.runner.run_items` in this process or on a Dask worker; each ``task`` is a small
frozen dataclass naming the file (an :class:`.sources.ImageSource`), the plane(s) and the
parameters, never pixels. Results are small (counts), or one plane's labels and table rows,
which the command assembles in item order, so a run on a cluster writes the same files as
a run in one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ImageError
from ...labels import object_row, pixels_to_paint
from ...sam.engine import PromptSegmenter
from ...sam.prompts import Prompts
from ..everything.generator import segment_everything
from ..everything.params import EverythingParams
from ..stack import PlaneLabel, iter_embed_planes
from .sources import ImageSource

# -- embed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbedTask:
    """Embed ``planes`` of ``source`` into the engine's store (None: every plane)."""

    source: ImageSource
    planes: tuple[PlaneLabel, ...] | None = None
    skip_unreadable: bool = False  # a folder's file that is not an image: report, go on


@dataclass(frozen=True)
class EmbedOutcome:
    """What one :class:`EmbedTask` did."""

    name: str
    computed: int = 0
    reused: int = 0
    total: int = 0
    skipped: str | None = None  # why the file was skipped


def embed_task(segmenter: PromptSegmenter, task: EmbedTask) -> EmbedOutcome:
    """Embed the task's planes; planes already in the store cost a read, not an encoder run."""
    try:
        planes = task.source.planes()
        labels = planes.labels if task.planes is None else list(task.planes)

        def pairs() -> Iterator[tuple[PlaneLabel, np.ndarray]]:
            for label in labels:
                yield label, planes.rgb(label)

        steps = iter_embed_planes(segmenter, pairs(), total=len(labels))
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
    return EmbedOutcome(task.source.name, summary.computed, summary.reused, summary.total)


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


def stack_objects(
    results: list[PlaneObjects], planes_shape: tuple[int, ...], plane_shape: tuple[int, int]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Planes' objects → one label image with ids unique over the stack, and its table.

    Ids continue from plane to plane in plane order (plane 0: 1..N0, plane 1: N0+1...),
    and each row names its plane in ``slice``. A 2D image keeps its ids and rows as they are.
    """
    total = sum(len(r.rows) for r in results)
    labels = np.zeros(
        (*planes_shape, *plane_shape), dtype=np.uint32 if total < 2**32 else np.uint64
    )
    rows: list[dict[str, Any]] = []
    offset = 0
    for result in sorted(results, key=lambda r: r.plane):
        plane = result.labels.astype(labels.dtype)
        plane[plane > 0] += offset
        labels[result.plane] = plane
        for row in result.rows:
            row = dict(row, id=int(row["id"]) + offset)
            if result.plane:
                row["slice"] = ",".join(str(int(i)) for i in result.plane)
            rows.append(row)
        offset += len(result.rows)
    return labels, rows


# -- segment with prompts ---------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTask:
    """Decode every object prompted on one plane; ``objects`` are (index, prompts) pairs."""

    source: ImageSource
    plane: PlaneLabel
    objects: tuple[tuple[int, Prompts], ...]
    multimask: bool | None = None


@dataclass(eq=False)
class ObjectMask:
    """One object's decoded mask and scores, before it is painted."""

    index: int  # position of the object in the prompt files' order
    mask: np.ndarray  # (H, W) bool
    predicted_iou: float
    stability: float
    candidate: int


def prompt_task(segmenter: PromptSegmenter, task: PromptTask) -> list[ObjectMask]:
    """Embed the plane once (or read it from the store) and decode each object's prompts."""
    embedding = segmenter.embed(task.source.planes().rgb(task.plane))
    out = []
    for index, prompts in task.objects:
        result = segmenter.predict(embedding, prompts, multimask=task.multimask)
        out.append(
            ObjectMask(
                index,
                np.asarray(result.mask, dtype=bool),
                float(result.iou[result.best]),
                float(result.stability[result.best]),
                int(result.best),
            )
        )
    return out


def paint_objects(
    labels: np.ndarray,
    plane: PlaneLabel,
    found: ObjectMask,
    label_id: int,
    *,
    overwrite: bool,
    prompts: Prompts,
    model: str,
) -> dict[str, Any]:
    """Paint one decoded object into ``labels[plane]`` (never over others unless asked);
    returns its objects-table row."""
    view = labels[plane]  # a view: painting it paints the stack
    where = pixels_to_paint(view, found.mask, overwrite=overwrite)
    view[where] = label_id
    painted = np.zeros(view.shape, dtype=bool)
    painted[where] = True
    return object_row(
        label_id,
        painted,
        predicted_iou=found.predicted_iou,
        stability=found.stability,
        prompts=prompts.summary(),
        candidate=found.candidate,
        model=model,
        slice_index=plane,
    )
