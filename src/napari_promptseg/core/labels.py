"""Pure functions for turning masks into labelled objects.

Nothing here touches napari: the plugin asks which pixels to paint and writes them through
napari's undoable ``Labels.data_setitem``; the CLI pastes into a plain array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import PromptSegError

# Column order of the objects table (napari layer features, CSV export).
OBJECT_COLUMNS = (
    "id",
    "predicted_iou",
    "stability",
    "area",
    "bbox_row0",
    "bbox_col0",
    "bbox_row1",
    "bbox_col1",
    "slice",
    "candidate",
    "prompts",
    "model",
    "class",  # the object's class name ("" = none); see core.storage.classes
)


class LabelsError(PromptSegError, ValueError):
    """A mask cannot be committed to these labels (shape, dtype full, nothing left to paint)."""


def next_label_id(labels: np.ndarray) -> int:
    """The next free object id: one more than the largest id present (1 for empty labels).

    Raises
    ------
    LabelsError
        If that id does not fit the labels' dtype.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise LabelsError(f"labels must have an integer dtype; got {labels.dtype}.")
    current = int(labels.max()) if labels.size else 0
    new_id = max(current, 0) + 1
    limit = np.iinfo(labels.dtype).max
    if new_id > limit:
        raise LabelsError(
            f"no free object id: the labels' dtype {labels.dtype} holds ids up to {limit} and "
            f"id {current} is used. Convert the labels to a wider dtype (e.g. uint32)."
        )
    return new_id


def pixels_to_paint(
    labels: np.ndarray, mask: np.ndarray, *, overwrite: bool = False
) -> tuple[np.ndarray, ...]:
    """Index arrays of the mask pixels to write, sparing existing objects unless ``overwrite``.

    Parameters
    ----------
    labels
        (H, W) current labels of the slice.
    mask
        (H, W) bool mask of the new object.
    """
    labels, mask = np.asarray(labels), np.asarray(mask, dtype=bool)
    if labels.shape != mask.shape:
        raise LabelsError(f"mask shape {mask.shape} does not match labels shape {labels.shape}.")
    target = mask if overwrite else mask & (labels == 0)
    return np.nonzero(target)


def paste_mask(
    labels: np.ndarray, mask: np.ndarray, label_id: int, *, overwrite: bool = False
) -> tuple[np.ndarray, int]:
    """Return a copy of ``labels`` with ``mask`` painted as ``label_id``, and the painted area.

    Existing objects are kept unless ``overwrite``.
    """
    painted = np.array(labels, copy=True)
    where = pixels_to_paint(painted, mask, overwrite=overwrite)
    if np.iinfo(painted.dtype).max < label_id:
        raise LabelsError(f"id {label_id} does not fit the labels' dtype {painted.dtype}.")
    painted[where] = label_id
    return painted, len(where[0])


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1) of a 2D mask, end exclusive; zeros for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (0, 0, 0, 0)
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def object_row(
    label_id: int,
    painted: np.ndarray,
    *,
    predicted_iou: float,
    stability: float,
    prompts: str = "",
    candidate: int = 0,
    model: str = "",
    slice_index: tuple[int, ...] | None = None,
    class_name: str = "",
) -> dict[str, Any]:
    """The objects-table row for one committed object.

    ``painted`` is the (H, W) bool of the pixels that now carry ``label_id``; area and
    bounding box describe those, not the raw mask (overlaps spared are not counted).
    ``class_name`` is the object's class ("" when it has none).
    """
    row0, col0, row1, col1 = bounding_box(painted)
    return {
        "id": int(label_id),
        "predicted_iou": round(float(predicted_iou), 6),
        "stability": round(float(stability), 6),
        "area": int(np.count_nonzero(painted)),
        "bbox_row0": row0,
        "bbox_col0": col0,
        "bbox_row1": row1,
        "bbox_col1": col1,
        "slice": "" if not slice_index else ",".join(str(int(i)) for i in slice_index),
        "candidate": int(candidate),
        "prompts": prompts,
        "model": model,
        "class": class_name,
    }


def cell_text(value: Any) -> str:
    """An objects-table cell as text: missing (None, NaN) is ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def same_row(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two objects-table rows say the same (None: no row).

    Rows read back from a table differ from the dicts written in ways that mean nothing:
    a column another row has shows up as a missing cell (None, NaN or ""), and an int
    column with a missing cell turns into floats. Those compare equal here.
    """
    if a is None or b is None:
        return a is b
    return all(_cell_value(a.get(k)) == _cell_value(b.get(k)) for k in {*a, *b})


def _cell_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value or None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return None if math.isnan(number) else number


def smallest_dtype_for(max_id: int) -> np.dtype:
    """uint16 when the ids fit, else uint32 (uint64 beyond that)."""
    if max_id <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if max_id <= np.iinfo(np.uint32).max:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)
