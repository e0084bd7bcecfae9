"""A whole-stack AIS / APG result → new 3D objects in an existing label stack.

Like :func:`..everything.generator.place_objects` for one plane: new ids from ``first_id``
in the result's order, nothing already labelled is painted over, an object left with no
pixel of its own gets no id. One table row per 3D object: its voxels, its box over all
planes, the planes it is on (``slices``, e.g. ``3-7``, as a propagated object's) and the mode that found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ...labels import LabelsError


@dataclass
class StackPlacement:
    """Where the new objects go: per plane ``(rows, cols, values)``, and one row per object."""

    planes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def stack_placement(
    existing: np.ndarray,
    found: np.ndarray,
    *,
    first_id: int,
    model: str = "",
    mode: str = "ais",
) -> StackPlacement:
    """Place ``found`` ((Z, H, W) labels, 0 background) around ``existing`` ((Z, H, W)).

    Raises
    ------
    LabelsError
        The new ids would not fit ``existing``'s dtype (nothing is placed).
    """
    existing = np.asarray(existing)
    free = np.where(existing == 0, np.asarray(found), 0)
    ids = np.unique(free[free != 0])
    limit = np.iinfo(existing.dtype).max if np.issubdtype(existing.dtype, np.integer) else 0
    if len(ids) and first_id + len(ids) - 1 > limit:
        raise LabelsError(
            f"{len(ids)} new objects from id {first_id} do not fit the labels' dtype "
            f"{existing.dtype} (ids up to {limit}); convert the labels to uint32."
        )
    # 1..N in the result's order, then shifted past the layer's ids
    lookup = np.zeros(int(free.max()) + 1 if free.size else 1, dtype=np.int64)
    lookup[ids] = np.arange(1, len(ids) + 1)
    local = lookup[free]
    shift = first_id - 1
    placement = StackPlacement()
    for z in range(local.shape[0]):
        rows, cols = np.nonzero(local[z])
        if len(rows):
            values = (local[z][rows, cols] + shift).astype(existing.dtype)
            placement.planes[z] = (rows, cols, values)
    counts = np.bincount(local.ravel())
    for number, where in enumerate(ndimage.find_objects(local), start=1):
        if where is None:
            continue
        zs, rs, cs = where
        slices = f"{zs.start}-{zs.stop - 1}" if zs.stop - zs.start > 1 else str(zs.start)
        placement.rows.append(
            {
                "id": number + shift,
                "predicted_iou": float("nan"),
                "stability": float("nan"),
                "area": int(counts[number]),
                "bbox_row0": rs.start,
                "bbox_col0": cs.start,
                "bbox_row1": rs.stop,
                "bbox_col1": cs.stop,
                "slice": "",
                "slices": slices,
                "candidate": 0,
                "prompts": mode,
                "model": model,
                "class": "",
            }
        )
    return placement
