"""The command's side: task results, as they arrive in any order, into the output files.

Each assembler takes results one at a time (``add``), writes every plane to its
:class:`~napari_promptseg.core.storage.label_output.LabelOutput` as soon as the plane is
complete, and keeps only the objects-table rows; ``finish`` publishes the label image and
the table. The files equal what assembling the results in task order gives (tests compare
them with the single-process run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...labels import object_row, pixels_to_paint, smallest_dtype_for
from ...sam.prompts import Prompts
from ...storage.label_output import LabelOutput
from ..stack import PlaneLabel
from .tasks import ObjectMask, PlaneObjects, PromptTask

Row = dict[str, Any]

# -- segment everything -------------------------------------------------------------------------


class EverythingAssembly:
    """Planes' objects → one label image with ids unique over the stack, and its table.

    Ids continue from plane to plane in plane order (plane 0: 1..N0, plane 1: N0+1...),
    and each row names its plane in ``slice``; a 2D image keeps its ids and rows. A plane is
    written with its own ids 1..N as it arrives; the output shifts them at the end.
    """

    def __init__(self, output: LabelOutput) -> None:
        self.output = output
        self.masks = 0  # masks SAM kept, over all planes
        self._rows: dict[PlaneLabel, list[Row]] = {}

    def add(self, result: PlaneObjects) -> None:
        self.output.write(result.plane, result.labels)
        self._rows[result.plane] = result.rows
        self.masks += result.masks

    def finish(self) -> tuple[Path, Path, list[Row]]:
        """Publish the label image and table; returns their paths and the table's rows."""
        offsets, rows = number_objects(self._rows)
        written, table = self.output.finish(rows, offsets=offsets)
        return written, table, rows


def number_objects(
    rows_by_plane: Mapping[PlaneLabel, Sequence[Row]],
) -> tuple[dict[PlaneLabel, int], list[Row]]:
    """Each plane's id offset, and the rows renumbered in plane order (see
    :class:`EverythingAssembly`)."""
    offsets: dict[PlaneLabel, int] = {}
    rows: list[Row] = []
    offset = 0
    for plane in sorted(rows_by_plane):
        offsets[plane] = offset
        for row in rows_by_plane[plane]:
            row = dict(row, id=int(row["id"]) + offset)
            if plane:
                row["slice"] = ",".join(str(int(i)) for i in plane)
            rows.append(row)
        offset += len(rows_by_plane[plane])
    return offsets, rows


# -- segment with prompts -----------------------------------------------------------------------


@dataclass(frozen=True)
class PromptedObject:
    """One object of the prompt tables on one plane: its name, label id and prompts."""

    plane: PlaneLabel
    name: str
    label_id: int
    prompts: Prompts


class SegmentAssembly:
    """Decoded objects → painted planes, each written once all its tasks have arrived.

    Objects are painted in the prompt tables' order (later objects never over earlier
    ones unless ``overwrite``), exactly as painting the whole stack in that order does.
    """

    def __init__(
        self,
        output: LabelOutput,
        objects: Sequence[PromptedObject],
        tasks: Sequence[PromptTask],
        *,
        overwrite: bool,
        model: str,
    ) -> None:
        self.output, self.objects = output, list(objects)
        self.overwrite, self.model = overwrite, model
        top = output.max_id if output.max_id is not None else max(o.label_id for o in objects)
        self.dtype = smallest_dtype_for(top)
        self._waiting = Counter(task.plane for task in tasks)
        self._found: dict[PlaneLabel, list[ObjectMask]] = {}
        self._rows: dict[int, Row] = {}

    def add(self, task: PromptTask, masks: Sequence[ObjectMask]) -> None:
        self._found.setdefault(task.plane, []).extend(masks)
        self._waiting[task.plane] -= 1
        if self._waiting[task.plane] == 0:
            self._paint(task.plane, self._found.pop(task.plane))

    def finish(self) -> tuple[Path, Path, list[Row]]:
        """Publish the label image and table; returns their paths and the rows in order."""
        rows = [self._rows[index] for index in sorted(self._rows)]
        written, table = self.output.finish(rows)
        return written, table, rows

    def _paint(self, plane: PlaneLabel, found: list[ObjectMask]) -> None:
        labels = np.zeros(self.output.plane_shape, dtype=self.dtype)
        for mask in sorted(found, key=lambda m: m.index):
            obj = self.objects[mask.index]
            row = paint_object(
                labels,
                mask,
                obj.label_id,
                overwrite=self.overwrite,
                prompts=obj.prompts,
                model=self.model,
                plane=plane,
            )
            row["object"] = obj.name
            self._rows[mask.index] = row
        self.output.write(plane, labels)


def paint_object(
    labels: np.ndarray,
    found: ObjectMask,
    label_id: int,
    *,
    overwrite: bool,
    prompts: Prompts,
    model: str,
    plane: PlaneLabel,
) -> Row:
    """Paint one decoded object into the (H, W) ``labels`` of its plane (never over others
    unless asked); returns its objects-table row."""
    rows, cols = found.slices
    view = labels[rows, cols]  # a view: painting it paints the plane
    where = pixels_to_paint(view, found.mask, overwrite=overwrite)
    view[where] = label_id
    painted = np.zeros(labels.shape, dtype=bool)
    painted[rows, cols][where] = True
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


# -- automatic instances merged across z -------------------------------------------------------


class MergedStackAssembly:
    """Planes' automatic instances (AIS / APG) → 3D objects merged across z.

    The planes are kept until the last arrives, then merged as micro-sam's
    ``automatic_3d_segmentation`` does (:func:`..instances.merge_planes`) and written with
    ids 1..N over the stack; the table has one row per 3D object: its voxels, its box over
    all planes, the planes it is on (``slices``) and its mean foreground probability.
    """

    def __init__(self, output: LabelOutput) -> None:
        self.output = output
        self.masks = 0
        self._planes: dict[PlaneLabel, PlaneObjects] = {}

    def add(self, result: PlaneObjects) -> None:
        self._planes[result.plane] = result
        self.masks += result.masks

    def finish(self) -> tuple[Path, Path, list[Row]]:
        from ..instances import merge_planes, offset_planes

        order = sorted(self._planes)
        results = [self._planes[plane] for plane in order]
        before = offset_planes([r.labels for r in results])
        merged = merge_planes(before)
        ids = np.unique(merged[merged != 0])
        lookup = np.zeros(int(merged.max()) + 1, dtype=np.uint32)
        lookup[ids] = np.arange(1, len(ids) + 1, dtype=np.uint32)
        merged = lookup[merged]
        # merging only joins objects: each plane object lies in one 3D object
        became = np.zeros(int(before.max()) + 1, dtype=np.int64)
        became[before.ravel()] = merged.ravel()
        fg_sum = np.zeros(len(ids) + 1)
        offset = 0
        for result in results:
            for row in result.rows:
                target = became[int(row["id"]) + offset]
                fg_sum[target] += float(row.get("foreground", 0.0) or 0.0) * int(row["area"])
            offset += int(result.labels.max())
        for plane, labels in zip(order, merged, strict=True):
            self.output.write(plane, labels)
        rows = _rows_3d(merged, fg_sum, order, results[0].rows)
        written, table = self.output.finish(rows, offsets=dict.fromkeys(order, 0))
        return written, table, rows


def _rows_3d(
    merged: np.ndarray, fg_sum: np.ndarray, order: list[PlaneLabel], sample: Sequence[Row]
) -> list[Row]:
    from scipy import ndimage

    rows = []
    counts = np.bincount(merged.ravel())
    first = dict(sample[0]) if sample else {}
    for label_id, where in enumerate(ndimage.find_objects(merged), start=1):
        if where is None:
            continue
        zs, rs, cs = where
        planes = [order[z] for z in range(zs.start, zs.stop)]
        rows.append(
            {
                "id": label_id,
                "predicted_iou": float("nan"),
                "stability": float("nan"),
                "area": int(counts[label_id]),
                "bbox_row0": rs.start,
                "bbox_col0": cs.start,
                "bbox_row1": rs.stop,
                "bbox_col1": cs.stop,
                "slice": "",
                "slices": f"{planes[0][-1]}-{planes[-1][-1]}"
                if len(planes) > 1
                else str(planes[0][-1]),
                "candidate": 0,
                "prompts": "",
                "model": first.get("model", ""),
                "class": "",
                "foreground": round(float(fg_sum[label_id] / counts[label_id]), 4),
                "mode": first.get("mode", ""),
            }
        )
    return rows
