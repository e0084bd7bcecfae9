"""Committed objects on a napari Labels layer: pixels, features table, undo, confidence colours.

One commit = one ``data_setitem`` inside ``block_history()``, so napari's undo removes it in
one step. The layer's ``features`` table holds one row per object, with an ``index``
column equal to the object id (napari uses it to show the row of the label under the
cursor). napari's own undo does not know about features, so after an undo or redo the
rows are reconciled with the pixels: rows of objects no longer present are set aside and
come back if a redo brings their pixels back, and a row changed in place along with an
undoable paint (:func:`replace_row`, e.g. a propagation) shows its state before or after
that paint, whichever the pixels are in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.editing import object_boxes
from ..core.labels import (
    OBJECT_COLUMNS,
    LabelsError,
    next_label_id,
    object_row,
    pixels_to_paint,
    same_row,
)
from .slices import SliceRef

ROWS_KEY = "promptseg_set_aside"  # layer.metadata key for rows of undone objects
CHANGES_KEY = "promptseg_row_changes"  # layer.metadata key for RowChange records
#: layer.metadata key for the layer's own colormap while confidence colours are shown (the
#: class colours keep theirs under classes.CLASS_COLORMAP_KEY: both can be on, each restores
#: what was there before it)
CONFIDENCE_COLORMAP_KEY = "promptseg_confidence_colormap"
MAX_CHANGES = 100  # row changes remembered for undo/redo (oldest forgotten first)
BOX_COLUMNS = ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1")


@dataclass(eq=False)
class RowChange:
    """An existing object's row, changed in place along with one undoable paint.

    ``probes`` are index arrays into the layer's data (one per axis) of pixels that paint
    gave ``object_id``: while they carry it the row should be ``after``, once an undo took
    them away ``before`` (None: the label had no row, e.g. painted by hand).
    """

    object_id: int
    before: dict | None
    after: dict
    probes: tuple[np.ndarray, ...] = field(repr=False)

    def present(self, labels_layer) -> bool | None:
        """Whether the paint is in the labels; None if the probes no longer fit the data."""
        data = labels_layer.data
        if len(self.probes) != data.ndim or any(
            len(p) and (p.min() < 0 or p.max() >= n)
            for p, n in zip(self.probes, data.shape, strict=True)
        ):
            return None
        return bool(np.any(np.asarray(data[self.probes]) == self.object_id))

    def restore(self, labels_layer, present: bool) -> bool:
        """Show the row that matches the pixels. True if it changed the rows.

        The row is replaced only if it is the one this change left (after an undo) or
        found (after a redo); any other row belongs to a later change and is left alone.
        """
        rows = object_rows(labels_layer)
        current = next((r for r in rows if int(r["id"]) == self.object_id), None)
        stale, wanted = (self.before, self.after) if present else (self.after, self.before)
        if not same_row(current, stale):
            return False
        others = [r for r in rows if int(r["id"]) != self.object_id]
        new_rows = others if wanted is None else [*others, wanted]
        set_rows(labels_layer, sorted(new_rows, key=lambda r: int(r["id"])))
        return True


def plane_of(labels_layer, ref: SliceRef) -> np.ndarray:
    """A view of the labels' plane ``ref`` (rows, cols as displayed)."""
    selection = tuple(slice(None) if i is None else i for i in ref.index)
    plane = labels_layer.data[selection]
    if ref.displayed[0] > ref.displayed[1]:
        plane = np.swapaxes(plane, 0, 1)
    return np.asarray(plane)


def commit_mask(
    labels_layer,
    ref: SliceRef,
    mask: np.ndarray,
    *,
    overwrite: bool,
    predicted_iou: float,
    stability: float,
    prompts: str,
    candidate: int,
    model: str,
    class_name: str = "",
) -> dict:
    """Paint ``mask`` as a new object (one undo step) and append its features row.

    Returns the row. Raises :class:`LabelsError` (nothing changed) when the labels cannot
    take it: wrong shape, no free id, or a mask lying wholly on existing objects.
    """
    plane = plane_of(labels_layer, ref)
    if plane.shape != mask.shape:
        raise LabelsError(
            f"the labels layer {labels_layer.name!r} has planes of shape {plane.shape}, the mask "
            f"{mask.shape}: choose a labels layer the size of the image (or a new one)."
        )
    rows, cols = pixels_to_paint(plane, mask, overwrite=overwrite)
    if len(rows) == 0:
        raise LabelsError(
            "nothing to paint: the mask lies entirely on existing objects "
            "(tick 'overwrite existing objects' to replace them)."
        )
    label_id = next_label_id(labels_layer.data)
    with labels_layer.block_history():
        labels_layer.data_setitem(ref.full_indices(rows, cols), label_id)
    painted = np.zeros(mask.shape, dtype=bool)
    painted[rows, cols] = True
    row = object_row(
        label_id,
        painted,
        predicted_iou=predicted_iou,
        stability=stability,
        prompts=prompts,
        candidate=candidate,
        model=model,
        slice_index=ref.fixed,
        class_name=class_name,
    )
    append_rows(labels_layer, [row])
    return row


def object_rows(labels_layer) -> list[dict]:
    """The features table as a list of row dicts (without napari's ``index`` column)."""
    features = labels_layer.features
    if "id" not in features:
        return []
    return [
        {k: v for k, v in row.items() if k != "index"} for row in features.to_dict(orient="records")
    ]


def append_rows(labels_layer, rows: list[dict]) -> None:
    adopt_features(labels_layer)  # a foreign table keeps its rows and columns
    table = pd.DataFrame(object_rows(labels_layer) + list(rows))
    set_rows(labels_layer, table.to_dict(orient="records"))


def adopt_features(labels_layer) -> None:
    """Give a foreign features table what edits need, keeping all its columns.

    An ``id`` column (from napari's ``index`` column, else the row number, which is how napari
    reads a table without one) and the objects' boxes where a row has none, so undo finds
    them quickly. A table without rows, or already ours, is left as it is.
    """
    table = labels_layer.features
    if len(table) == 0 or ("id" in table and _has_boxes(table)):
        return
    records = table.to_dict(orient="records")
    if "id" not in table:
        ids = table["index"].tolist() if "index" in table else list(range(len(table)))
        for record, object_id in zip(records, ids, strict=True):
            record["id"] = int(object_id)
    boxes = object_boxes(np.asarray(labels_layer.data))
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k != "index"}
        if not _row_has_box(row):
            box = boxes.get(int(row["id"]), (0, 0, 0, 0))
            row.update(zip(BOX_COLUMNS, box, strict=True))
            row.setdefault("slice", "")
        rows.append(row)
    set_rows(labels_layer, sorted(rows, key=lambda r: int(r["id"])))


def _has_boxes(table) -> bool:
    return all(c in table for c in BOX_COLUMNS) and not table[list(BOX_COLUMNS)].isna().any().any()


def _row_has_box(row: dict) -> bool:
    try:
        return all(np.isfinite(float(row[c])) for c in BOX_COLUMNS)
    except (KeyError, TypeError, ValueError):
        return False


def set_rows(labels_layer, rows: list[dict]) -> None:
    """Make ``rows`` the layer's features table (objects-table columns first).

    A text column (all its values strings) gets "" where a row has no value, not NaN.
    """
    columns = list(OBJECT_COLUMNS) + [k for r in rows for k in r if k not in OBJECT_COLUMNS]
    table = pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))
    for column in table.columns:
        values = table[column]
        given = values[values.notna()]
        if 0 < len(given) < len(values) and all(isinstance(v, str) for v in given):
            table[column] = values.fillna("")
    table.insert(
        0, "index", table["id"].astype(np.int64) if len(table) else pd.Series(dtype=np.int64)
    )
    labels_layer.features = table


def replace_row(labels_layer, row: dict, probes: tuple[np.ndarray, ...]) -> None:
    """Make ``row`` object ``row['id']``'s row, undoably along with the paint just made.

    Call it right after painting ``probes`` (index arrays into the layer's data, one per
    axis: some of the pixels that paint gave the object) in one undo step; an undo of that
    step brings back the row as it was before, a redo ``row`` again (see :func:`reconcile`).
    """
    object_id = int(row["id"])
    rows = object_rows(labels_layer)
    before = next((r for r in rows if int(r["id"]) == object_id), None)
    others = [r for r in rows if int(r["id"]) != object_id]
    set_rows(labels_layer, sorted([*others, row], key=lambda r: int(r["id"])))
    changes = [
        *labels_layer.metadata.get(CHANGES_KEY, []),
        RowChange(object_id, before, row, probes),
    ]
    labels_layer.metadata[CHANGES_KEY] = changes[-MAX_CHANGES:]


def object_present(labels_layer, row: dict) -> bool:
    """Whether object ``row['id']`` still has pixels, looking only inside its bounding box."""
    ndim = labels_layer.data.ndim
    fixed = [int(i) for i in str(row.get("slice", "")).split(",") if i != ""]
    region = [slice(None)] * ndim
    # The plane axes are the last two unless the row says otherwise; the bbox is a hint.
    for axis, position in zip(range(ndim - 2), fixed, strict=False):
        region[axis] = position
    r0, c0, r1, c1 = (int(row[k]) for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1"))
    if r1 > r0 and c1 > c0:
        region[-2], region[-1] = slice(r0, r1), slice(c0, c1)
    return bool(np.any(np.asarray(labels_layer.data[tuple(region)]) == int(row["id"])))


def reconcile(labels_layer) -> None:
    """Match the features rows to the objects present after an undo or redo."""
    rows = object_rows(labels_layer)
    aside = labels_layer.metadata.get(ROWS_KEY, [])
    present = [object_present(labels_layer, r) for r in rows]
    kept = [r for r, here in zip(rows, present, strict=True) if here]
    gone = [r for r, here in zip(rows, present, strict=True) if not here]
    returned = [object_present(labels_layer, r) for r in aside]
    back = [r for r, here in zip(aside, returned, strict=True) if here]
    still_aside = [r for r, here in zip(aside, returned, strict=True) if not here] + gone
    if gone or back:
        set_rows(labels_layer, sorted(kept + back, key=lambda r: int(r["id"])))
    labels_layer.metadata[ROWS_KEY] = still_aside
    # Rows changed in place, latest first: each shows before or after its paint.
    changes = labels_layer.metadata.get(CHANGES_KEY, [])
    fitting = []
    for change in reversed(changes):
        present = change.present(labels_layer)
        if present is None:
            continue  # the data was replaced by data of another shape: forget it
        fitting.append(change)
        change.restore(labels_layer, present)
    if changes:
        labels_layer.metadata[CHANGES_KEY] = fitting[::-1]


def undo(labels_layer) -> None:
    labels_layer.undo()
    reconcile(labels_layer)


def redo(labels_layer) -> None:
    labels_layer.redo()
    reconcile(labels_layer)


def confidence_color(score: float) -> np.ndarray:
    """RGBA from red (0.5 and below) through yellow to green (1.0)."""
    t = float(np.clip((score - 0.5) / 0.5, 0.0, 1.0))
    red = 1.0 if t < 0.5 else 2.0 * (1.0 - t)
    green = 2.0 * t if t < 0.5 else 1.0
    return np.array([red, green, 0.0, 1.0])


def confidence_colormap(labels_layer):
    """A label colormap colouring each object by its predicted IoU; unknown ids grey."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {None: np.array([0.6, 0.6, 0.6, 1.0]), 0: np.array([0, 0, 0, 0.0])}
    for row in object_rows(labels_layer):
        score = float(row["predicted_iou"])
        if np.isfinite(score):  # a foreign object has no score: grey
            colors[int(row["id"])] = confidence_color(score)
    return DirectLabelColormap(color_dict=colors)


def low_confidence(labels_layer, threshold: float) -> list[dict]:
    """Rows of objects whose predicted IoU is under ``threshold``, least confident first."""
    rows = [r for r in object_rows(labels_layer) if float(r["predicted_iou"]) < threshold]
    return sorted(rows, key=lambda r: float(r["predicted_iou"]))


__all__ = [
    "LabelsError",
    "RowChange",
    "adopt_features",
    "append_rows",
    "commit_mask",
    "confidence_colormap",
    "low_confidence",
    "object_rows",
    "reconcile",
    "redo",
    "replace_row",
    "set_rows",
    "undo",
]
