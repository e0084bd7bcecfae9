"""``promptseg everything --mode ais|apg``: one plane's automatic instances, as a task.

A task runs in this process or on a Dask worker like the grid mode's
:func:`.tasks.everything_task` and sends back the same :class:`.tasks.PlaneObjects` (the
plane's labels 1..N and one table row per object), so the assemblers and outputs are shared.
The instance decoder is read once per engine (the checkpoint's ``decoder_state``, or a
separate decoder file) and kept beside it; the plane's embedding comes from the engine's
cache and store, as every other task's does.

``mode="auto"`` is resolved where the model is: AIS when it has a decoder, else the grid.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ...errors import ImageError, ModelError
from ...labels import object_row
from ...sam.engine import PromptSegmenter
from ..everything.params import EverythingParams
from ..instances import APGParams, InstanceSegmenter, WatershedParams
from ..instances.clicks import check_automatic_mode
from ..stack import PlaneLabel
from .sources import ImageSource
from .tasks import EverythingTask, ImageObjects, PlaneObjects, everything_task

MODES = ("auto", "grid", "ais", "apg")

# engine → decoder file (None: its checkpoint) → its instance segmenter, or why it has none
_INSTANCES: weakref.WeakKeyDictionary[
    PromptSegmenter, dict[str | None, InstanceSegmenter | ModelError]
] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class InstanceTask:
    """Automatic segmentation of one plane of ``source`` in ``mode``.

    ``params`` are the mode's parameters as keywords (:class:`WatershedParams` for AIS,
    :class:`APGParams` for APG); ``grid`` those of :class:`EverythingParams` for the grid.
    ``decoder`` names a decoder file of its own (micro-sam ships some that way).
    ``tile_shape`` and ``halo``: AIS / APG by micro-sam's tiles (default: tiles for planes
    larger than ``TILE_ABOVE`` only; see :mod:`..instances.tiles`).
    """

    source: ImageSource
    plane: PlaneLabel
    mode: str = "auto"
    params: tuple[tuple[str, Any], ...] = ()
    grid: EverythingParams = field(default_factory=EverythingParams)
    decoder: str | None = None
    tile_shape: tuple[int, int] | None = None
    halo: tuple[int, int] | None = None


def instances_for(segmenter: PromptSegmenter, decoder: str | None = None) -> InstanceSegmenter:
    """The engine's :class:`InstanceSegmenter`, its decoder read on first use.

    Raises
    ------
    ModelError
        The model has no instance decoder (the message names the modes it has), or the
        decoder does not fit it.
    """
    with _LOCK:
        kept = _INSTANCES.setdefault(segmenter, {})
        found = kept.get(decoder)
        if isinstance(found, ModelError):
            raise found
        if found is None:
            source = decoder if decoder is not None else segmenter.checkpoint
            try:
                found = InstanceSegmenter.from_segmenter(segmenter, source)
            except ModelError as error:
                kept[decoder] = error  # asked again for every plane: answer at once
                raise
            kept[decoder] = found
        return found


def resolve_mode(segmenter: PromptSegmenter, mode: str, decoder: str | None = None) -> str:
    """``auto`` → ``ais`` where the model has an instance decoder, else ``grid``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode != "auto":
        return mode
    if segmenter.family == "sam2.1" and decoder is None:
        return "grid"
    try:
        instances_for(segmenter, decoder)
    except ModelError:
        return "grid"
    return "ais"


def instance_task(segmenter: PromptSegmenter, task: InstanceTask) -> PlaneObjects:
    """Segment the task's plane automatically (module level: Dask pickles it by name)."""
    mode = resolve_mode(segmenter, task.mode, task.decoder)
    check_automatic_mode(segmenter, mode)
    if mode == "grid":
        result = everything_task(segmenter, EverythingTask(task.source, task.plane, task.grid))
        for row in result.rows:
            row["mode"] = "grid"
        return result
    instances = instances_for(segmenter, task.decoder)
    rgb = task.source.planes().rgb(task.plane)
    options = dict(task.params)
    params = WatershedParams(**options) if mode == "ais" else APGParams(**options)
    labels, maps = instances.segment_plane(rgb, params, tile_shape=task.tile_shape, halo=task.halo)
    rows = instance_rows(labels, maps.foreground, mode=mode, model=segmenter.name)
    return PlaneObjects(task.plane, labels.astype(np.uint32, copy=False), rows, len(rows))


@dataclass(frozen=True)
class InstanceImageTask:
    """Every plane of one file of a folder in ``mode`` (one task per image; see
    :class:`.tasks.EverythingImageTask`)."""

    source: ImageSource
    mode: str = "auto"
    params: tuple[tuple[str, Any], ...] = ()
    grid: EverythingParams = field(default_factory=EverythingParams)
    decoder: str | None = None
    tile_shape: tuple[int, int] | None = None
    halo: tuple[int, int] | None = None


def instance_image_task(segmenter: PromptSegmenter, task: InstanceImageTask) -> ImageObjects:
    """Each plane of the task's file in turn; an unreadable file is reported as skipped."""
    try:
        planes = task.source.planes()
        results = [
            instance_task(
                segmenter,
                InstanceTask(
                    task.source,
                    label,
                    task.mode,
                    task.params,
                    task.grid,
                    task.decoder,
                    task.tile_shape,
                    task.halo,
                ),
            )
            for label in planes.labels
        ]
        shape = tuple(i + 1 for i in planes.labels[-1])
        return ImageObjects(
            task.source.name, shape, planes.plane_shape, task.source.axes(), results
        )
    except ImageError as error:
        return ImageObjects(task.source.name, (), (0, 0), None, [], skipped=str(error))


def instance_rows(
    labels: np.ndarray, foreground: np.ndarray, *, mode: str, model: str
) -> list[dict[str, Any]]:
    """One objects-table row per id of an (H, W) label image, ids renumbered 1..N.

    The instance decoder scores no mask the way SAM's decoder does, so ``predicted_iou``
    and ``stability`` stay empty and ``foreground`` holds the object's mean foreground
    probability (the decoder's own confidence in it).
    """
    ids = [int(i) for i in np.unique(labels) if i != 0]
    if ids and ids != list(range(1, len(ids) + 1)):
        lookup = np.zeros(int(labels.max()) + 1, dtype=np.uint32)
        lookup[ids] = np.arange(1, len(ids) + 1, dtype=np.uint32)
        labels[...] = lookup[labels]
        ids = list(range(1, len(ids) + 1))
    if not ids:
        return []
    sums = np.bincount(labels.ravel(), weights=foreground.ravel(), minlength=len(ids) + 1)
    counts = np.bincount(labels.ravel(), minlength=len(ids) + 1)
    rows = []
    for label_id, where in enumerate(ndimage.find_objects(labels), start=1):
        if where is None:
            continue
        row = object_row(
            label_id,
            labels[where] == label_id,
            predicted_iou=float("nan"),
            stability=float("nan"),
            model=model,
        )
        for key, offset in (("bbox_row0", 0), ("bbox_row1", 0), ("bbox_col0", 1), ("bbox_col1", 1)):
            row[key] += where[offset].start  # the crop's box, in the plane
        row["foreground"] = round(float(sums[label_id] / counts[label_id]), 4)
        row["mode"] = mode
        rows.append(row)
    return rows
