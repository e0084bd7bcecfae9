"""Committed objects on a napari Labels layer: pixels, features table, undo, confidence colours.

One commit = one ``data_setitem`` inside ``block_history()``, so napari's undo removes it in
one step. The layer's ``features`` table holds one row per object, with an ``index``
column equal to the object id (napari uses it to show the row of the label under the
cursor). napari's own undo does not know about features, so after an undo or redo the
rows are reconciled with the pixels: rows of objects no longer present are set aside and
come back if a redo brings their pixels back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.labels import OBJECT_COLUMNS, LabelsError, next_label_id, object_row, pixels_to_paint
from .slices import SliceRef

ROWS_KEY = "promptseg_set_aside"  # layer.metadata key for rows of undone objects


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
    table = pd.DataFrame(object_rows(labels_layer) + list(rows))
    set_rows(labels_layer, table.to_dict(orient="records"))


def set_rows(labels_layer, rows: list[dict]) -> None:
    columns = list(OBJECT_COLUMNS) + [k for r in rows for k in r if k not in OBJECT_COLUMNS]
    table = pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))
    table.insert(
        0, "index", table["id"].astype(np.int64) if len(table) else pd.Series(dtype=np.int64)
    )
    labels_layer.features = table


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
    kept = [r for r in rows if object_present(labels_layer, r)]
    gone = [r for r in rows if r not in kept]
    back = [r for r in aside if object_present(labels_layer, r)]
    still_aside = [r for r in aside if r not in back] + gone
    if gone or back:
        set_rows(labels_layer, sorted(kept + back, key=lambda r: int(r["id"])))
    labels_layer.metadata[ROWS_KEY] = still_aside


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
        colors[int(row["id"])] = confidence_color(float(row["predicted_iou"]))
    return DirectLabelColormap(color_dict=colors)


def low_confidence(labels_layer, threshold: float) -> list[dict]:
    """Rows of objects whose predicted IoU is under ``threshold``, least confident first."""
    rows = [r for r in object_rows(labels_layer) if float(r["predicted_iou"]) < threshold]
    return sorted(rows, key=lambda r: float(r["predicted_iou"]))


__all__ = [
    "LabelsError",
    "append_rows",
    "commit_mask",
    "confidence_colormap",
    "low_confidence",
    "object_rows",
    "reconcile",
    "redo",
    "undo",
]
