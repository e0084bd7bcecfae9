"""An object's row in the objects table after it was propagated through slices.

Propagation adds per-slice scores to the row of the object it extends: ``slice_ious`` holds
one predicted IoU per slice (``"3:0.930 4:0.910"``), ``slices`` the planes it covers
(``"0-2,5"``), ``slice_axis`` the layer axis; confidence, area and box become those of all
its slices together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ...labels import bounding_box, cell_text
from .propagate import PlaneResult, format_ranges


def propagated_row(
    row: Mapping[str, Any],
    painted: Mapping[int, tuple[PlaneResult, np.ndarray, np.ndarray]],
    kept: Iterable[int],
    *,
    axis: int,
    start_index: int,
    scored_start: bool,
) -> dict[str, Any]:
    """An object's objects-table row after propagating it along ``axis`` from ``start_index``.

    Parameters
    ----------
    row
        The row before (for a hand-painted label: one without scores).
    painted
        plane index → (PlaneResult, rows, cols): the plane's result and the (P,) pixel
        coordinates written on that plane.
    kept
        Planes where the object already was (not painted; their old score, if any, stays).
    axis, start_index
        The layer axis propagated along and the plane the object was propagated from.
    scored_start
        Whether ``row['predicted_iou']`` is the start slice's own score.

    ``slice_ious`` holds one SAM predicted IoU per slice along ``slice_axis``; it merges with
    the scores of an earlier propagation along the same axis. ``predicted_iou`` and
    ``stability`` become the minimum over the slices (the conservative confidence), ``area``
    the total over all slices, the bbox the union of the slices' boxes.
    """
    scores: dict[int, float] = {}
    if _cell_int(row.get("slice_axis")) == axis:
        scores = parse_scores(cell_text(row.get("slice_ious")))
    if scored_start and start_index not in scores:
        scores[start_index] = float(row["predicted_iou"])
    stabilities = [float(row["stability"])] if scored_start else []
    area = int(row["area"])
    box = [int(row[k]) for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1")]
    for index, (plane, rows, cols) in painted.items():
        scores[index] = plane.predicted_iou
        stabilities.append(plane.stability)
        area += len(rows)
        mask = np.zeros(plane.mask.shape, dtype=bool)
        mask[rows, cols] = True
        r0, c0, r1, c1 = bounding_box(mask)
        box = [min(box[0], r0), min(box[1], c0), max(box[2], r1), max(box[3], c1)]
    covered = set(scores) | set(kept) | {start_index}
    prompts = cell_text(row.get("prompts"))
    updated = dict(row)
    updated.update(
        {
            "predicted_iou": round(min(scores.values()), 6),
            "stability": round(min(v for v in stabilities if not math.isnan(v)), 6),
            "area": area,
            "bbox_row0": box[0],
            "bbox_col0": box[1],
            "bbox_row1": box[2],
            "bbox_col1": box[3],
            "prompts": prompts if "propagated" in prompts else f"{prompts} propagated".strip(),
            "slices": format_ranges(covered),
            "slice_ious": " ".join(f"{i}:{scores[i]:.3f}" for i in sorted(scores)),
            "slice_axis": axis,
        }
    )
    return updated


def parse_scores(text: str) -> dict[int, float]:
    """A row's ``slice_ious``, ``"3:0.930 4:0.910"``, as {3: 0.93, 4: 0.91}."""
    scores = {}
    for item in text.split():
        index, _, value = item.partition(":")
        scores[int(index)] = float(value)
    return scores


def _cell_int(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else int(number)
