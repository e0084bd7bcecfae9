"""Edits of existing objects on a napari Labels layer: in place, delete, merge, split.

Each edit is one ``data_setitem`` inside ``block_history()`` — one step of napari's undo —
and keeps the layer's dtype, its other objects and its history. Rows follow the pixels the
way commits' rows do (see :mod:`.objects`): a row changed along with an edit is recorded as
an :class:`EditChange` and shows its state before or after the edit, whichever the pixels
are in after an undo or redo; rows of objects an edit removed are set aside and come back
with their pixels.

Layers from elsewhere (Cellpose, StarDist, a threshold) may carry a features table of their
own: :func:`~.objects.adopt_features` gives it the id and box columns the rows need and keeps
every column it had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.editing import (
    EditError,
    PlaneEdit,
    delete_object,
    edited_row,
    merge_objects,
    replace_object,
    split_object,
)
from ..core.labels import next_label_id
from . import objects
from .classifier import mark_user_class
from .objects import CHANGES_KEY, MAX_CHANGES, RowChange, adopt_features
from .slices import SliceRef


@dataclass(eq=False)
class EditChange(RowChange):
    """An object's row changed along with an edit: ``values`` are what the edit wrote at
    the probe pixels, ``before`` what was there (an edit can take pixels away, so a probe
    holding the object's id does not tell whether the edit is in)."""

    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    before_values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def present(self, labels_layer) -> bool | None:
        data = labels_layer.data
        if len(self.probes) != data.ndim or any(
            len(p) and (p.min() < 0 or p.max() >= n)
            for p, n in zip(self.probes, data.shape, strict=True)
        ):
            return None
        found = np.asarray(data[self.probes]).astype(np.int64)
        # later edits may have painted over some probes; the majority says which side we are on
        return int((found == self.values).sum()) >= int((found == self.before_values).sum())


def row_of(labels_layer, object_id: int) -> dict | None:
    """Object ``object_id``'s row in the layer's features, or None."""
    return next((r for r in objects.object_rows(labels_layer) if _id(r) == object_id), None)


def replace_in_place(
    labels_layer, ref: SliceRef, object_id: int, mask: np.ndarray, *, overwrite: bool, **decoded
) -> dict:
    """Object ``object_id`` becomes ``mask`` on plane ``ref``, same id; returns its new row.

    ``decoded``: the decode's ``predicted_iou``, ``stability``, ``prompts``, ``candidate``,
    ``model`` (and ``class_name`` to change its class).
    """
    plane = objects.plane_of(labels_layer, ref)
    edit = replace_object(plane, object_id, mask, overwrite=overwrite)
    return _apply(labels_layer, ref, edit, {object_id: decoded})[object_id]


def delete(labels_layer, ref: SliceRef, object_id: int, *, whole: bool = False) -> int:
    """Object ``object_id``'s pixels on plane ``ref`` (``whole``: on every plane) become
    background, in one undo step; returns how many.

    Its row is set aside (it comes back if an undo brings the pixels back).
    """
    if not whole:
        edits = [(ref, delete_object(objects.plane_of(labels_layer, ref), object_id))]
    else:
        edits = [
            (plane, PlaneEdit.of(pixels, pixels == object_id, 0))
            for plane, pixels in _planes_holding(labels_layer, ref, object_id, "delete")
        ]
    _apply(labels_layer, ref, edits, {})
    return sum(edit.size for _plane, edit in edits)


def merge(labels_layer, ref: SliceRef, keep_id: int, other_id: int, *, whole: bool = False) -> dict:
    """Object ``other_id`` joins ``keep_id`` on plane ``ref`` (``whole``: on every plane
    ``other_id`` is on); returns ``keep_id``'s row. One undo step.

    The kept object's scores stay; its area and box grow; ``other_id``'s row is set aside.
    """
    if not whole:
        edits = [(ref, merge_objects(objects.plane_of(labels_layer, ref), keep_id, other_id))]
    else:
        if keep_id == other_id:
            raise EditError(f"object {keep_id} cannot be merged with itself: pick another object.")
        _planes_holding(labels_layer, ref, keep_id, "merge")  # it must exist
        edits = [
            (plane, PlaneEdit.of(pixels, pixels == other_id, keep_id))
            for plane, pixels in _planes_holding(labels_layer, ref, other_id, "merge")
        ]
    return _apply(labels_layer, ref, edits, {keep_id: {}})[keep_id]


def split(
    labels_layer, ref: SliceRef, object_id: int, part: np.ndarray, *, whole: bool = False,
    **decoded,
) -> tuple[dict, dict]:  # fmt: skip
    """The part of ``object_id`` inside ``part`` becomes a new object; returns (new row, rest).

    ``whole``: on every plane of the object, its pixels under ``part``'s footprint (the mask
    drawn on plane ``ref``, the same rows and columns) become the new object. One undo step.
    The new object gets the decode's scores (``decoded``) and the old object's class; the
    rest keeps ``object_id`` and its scores.
    """
    new_id = next_label_id(labels_layer.data)
    if not whole:
        edits = [(ref, split_object(objects.plane_of(labels_layer, ref), object_id, part, new_id))]
    else:
        edits = _split_through(labels_layer, ref, object_id, np.asarray(part, bool), new_id)
    old = row_of(labels_layer, object_id) or {}
    decoded.setdefault("class_name", _text(old.get("class")))
    rows = _apply(labels_layer, ref, edits, {new_id: decoded, object_id: {}})
    return rows[new_id], rows[object_id]


def _split_through(labels_layer, ref, object_id, part, new_id) -> list[tuple[SliceRef, PlaneEdit]]:
    edits, kept = [], 0
    for plane, pixels in _planes_holding(labels_layer, ref, object_id, "split"):
        if pixels.shape != part.shape:
            raise EditError(f"mask shape {part.shape} does not match the planes {pixels.shape}.")
        own = pixels == object_id
        kept += int((own & ~part).sum())
        if (own & part).any():  # a plane may go to the new object whole
            edits.append((plane, PlaneEdit.of(pixels, own & part, new_id)))
    if not edits:
        raise EditError(
            f"the mask shown covers none of object {object_id} on any plane: prompt the part "
            "to split off inside the object."
        )
    if kept == 0:
        raise EditError(
            f"the mask shown covers all of object {object_id} on every plane: nothing would "
            "keep its id; prompt only the part to split off."
        )
    return edits


def _planes_holding(labels_layer, ref: SliceRef, object_id: int, what: str):
    """(plane, its pixels) for every plane parallel to ``ref`` that holds ``object_id``."""
    data = np.asarray(labels_layer.data)
    fixed = [axis for axis, position in enumerate(ref.index) if position is not None]
    if not fixed:
        found = [ref] if (data == object_id).any() else []
    else:
        hit = np.any(data == object_id, axis=tuple(ref.displayed))
        found = [
            SliceRef(_index_at(ref, fixed, position), ref.displayed)
            for position in np.argwhere(hit)
        ]
    if not found:
        raise EditError(f"object {object_id} is not in {labels_layer.name!r}: nothing to {what}.")
    return [(plane, objects.plane_of(labels_layer, plane)) for plane in found]


def _index_at(ref: SliceRef, fixed: list[int], position: np.ndarray) -> tuple[int | None, ...]:
    index: list[int | None] = list(ref.index)
    for axis, value in zip(fixed, position, strict=True):
        index[axis] = int(value)
    return tuple(index)


def set_class(labels_layer, object_id: int, class_name: str, ref: SliceRef | None = None) -> dict:
    """Give object ``object_id`` the class ``class_name`` ("" for none); returns its row.

    Changes the row only (no pixels, so not a step of napari's undo). An object without a
    row gets one, measured on plane ``ref``.
    """
    adopt_features(labels_layer)
    row = row_of(labels_layer, object_id)
    if row is None:
        if ref is None:
            raise EditError(f"object {object_id} has no row to give a class to.")
        painted = objects.plane_of(labels_layer, ref) == object_id
        row = edited_row(None, object_id, painted, slice_index=ref.fixed)
        row["edited"] = False
    row = mark_user_class({**row, "class": class_name})  # an example for the classifier
    others = [r for r in objects.object_rows(labels_layer) if _id(r) != object_id]
    objects.set_rows(labels_layer, sorted([*others, row], key=_id))
    return row


# -- one undo step and its rows -----------------------------------------------------------


def _apply(
    labels_layer,
    ref: SliceRef,
    edits: PlaneEdit | list[tuple[SliceRef, PlaneEdit]],
    changed: dict[int, dict[str, Any]],
) -> dict[int, dict]:
    """Write ``edits`` (one plane's, or (plane, edit) pairs of several planes) as one undo
    step; new rows, measured on plane ``ref``, for the objects in ``changed`` (id → the
    decode's keywords, {} for pixels only); rows of objects left without pixels set aside."""
    if isinstance(edits, PlaneEdit):
        edits = [(ref, edits)]
    for _plane, edit in edits:
        _check_dtype(labels_layer, edit)
    adopt_features(labels_layer)
    indices = _joined([plane.full_indices(edit.rows, edit.cols) for plane, edit in edits])
    values = np.concatenate([edit.values for _plane, edit in edits])
    with labels_layer.block_history():  # one undo step, in the layer's own dtype
        labels_layer.data_setitem(indices, values.astype(labels_layer.data.dtype))
    plane = objects.plane_of(labels_layer, ref)
    probed = [(p, edit.probes(max(8, 64 // len(edits)))) for p, edit in edits]
    probes = _joined([p.full_indices(rows, cols) for p, (rows, cols, _v, _b) in probed])
    values = np.concatenate([v for _p, (_r, _c, v, _b) in probed])
    before = np.concatenate([b for _p, (_r, _c, _v, b) in probed])
    new_rows = {}
    for object_id, decoded in changed.items():
        previous = row_of(labels_layer, object_id)
        row = edited_row(previous, object_id, plane == object_id, slice_index=ref.fixed, **decoded)
        _record(labels_layer, previous, row, EditChange, probes, values, before)
        new_rows[object_id] = row
    for edited, edit in edits:
        after = plane if edited == ref else objects.plane_of(labels_layer, edited)
        if any(not (after == i).any() for i in set(np.unique(edit.before).tolist()) - {0}):
            objects.reconcile(labels_layer)  # rows of objects the edit removed go aside
            break
    return new_rows


def _joined(indices: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate(axis) for axis in zip(*indices, strict=True))


def _record(labels_layer, previous, row, kind, probes, values, before) -> None:
    """Make ``row`` the object's row, undoably along with the edit just made."""
    object_id = _id(row)
    others = [r for r in objects.object_rows(labels_layer) if _id(r) != object_id]
    objects.set_rows(labels_layer, sorted([*others, row], key=_id))
    change = kind(object_id, previous, row, probes, values=values, before_values=before)
    changes = [*labels_layer.metadata.get(CHANGES_KEY, []), change]
    labels_layer.metadata[CHANGES_KEY] = changes[-MAX_CHANGES:]


def _check_dtype(labels_layer, edit: PlaneEdit) -> None:
    dtype = labels_layer.data.dtype
    if edit.size and np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if edit.values.max() > info.max or edit.values.min() < info.min:
            raise EditError(
                f"id {int(edit.values.max())} does not fit the labels' dtype {dtype}; "
                "convert the labels to a wider dtype (e.g. uint32)."
            )


def _id(row: dict) -> int:
    return int(row["id"])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


__all__ = [
    "EditChange",
    "adopt_features",
    "delete",
    "merge",
    "replace_in_place",
    "row_of",
    "set_class",
    "split",
]
