"""The lineage of a Labels layer, kept with the layer and undone with its pixels.

The lineage (track id, first frame, last frame, parent) of a label stack follows from the
pixels except for the parents, the divisions the user marked. So the layer keeps the
parents, and the table is rebuilt from the labels after every edit with the parents still
valid (:func:`lineage_of`); the table is also left in ``layer.metadata`` under
:data:`LINEAGE_KEY` (rows of :data:`~napari_promptseg.core.workflows.tracking.lineage.COLUMNS`)
for whoever reads the layer.

Undo: every tracking edit (a propagation, split, merge, delete, division) is one step of
napari's Labels history, and that step carries a *marker*: one history atom that rewrites a
pixel with its own value. The parents after the edit are stored against the marker
(:data:`STEPS_KEY`). The parents in force are those of the newest marker still in the
layer's undo history: after Ctrl+Z (napari's or the session's) the edit's marker moves to
the redo history and the parents before it apply again, with no listener needed. A
division of two existing tracks changes no pixel; its marker alone is the undo step. Once
more later edits than napari's history holds (100) pushed every marker out, the parents
are those of the newest tracking edit not undone.

The tracked axis may be any non-displayed axis: the lineage is of the stack with that axis
moved to the front (``np.moveaxis(data, axis, 0)``, a view).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.workflows.tracking.edits import TrackEdit
from ..core.workflows.tracking.lineage import Lineage, LineageError, presence

LINEAGE_KEY = "promptseg_lineage"  # {"axis": int, "rows": [row dict, ...]}
STEPS_KEY = "promptseg_lineage_steps"  # [LineageStep, ...], oldest first
BASE_KEY = "promptseg_lineage_parents"  # parents before the first recorded step
#: steps remembered: more than napari's Labels history (100 steps) holds
MAX_STEPS = 200


@dataclass(eq=False)
class LineageStep:
    """The parents (daughter → parent) after one tracking edit, and its history marker."""

    marker: tuple = field(repr=False)  # the history atom inside the edit's undo step
    parents: dict[int, int]
    axis: int


def stack(layer, axis: int) -> np.ndarray:
    """The labels with the tracked ``axis`` first: ``(T, [Z,] Y, X)``, a view of the data."""
    return np.moveaxis(np.asarray(layer.data), int(axis), 0)


def has_tracking(layer) -> bool:
    """Whether a tracking edit or propagation ever wrote to ``layer`` (so a lineage is kept)."""
    return bool(layer.metadata.get(STEPS_KEY))


def parents_now(layer) -> dict[int, int]:
    """The parents of the state the labels are in (see the module docstring)."""
    steps: list[LineageStep] = layer.metadata.get(STEPS_KEY, [])
    undo = getattr(layer, "_undo_history", None)
    if undo is None:  # a napari without Labels history internals: the latest edit's
        return dict(steps[-1].parents) if steps else dict(layer.metadata.get(BASE_KEY, {}))
    live = {id(atom) for item in undo for atom in item}
    for step in reversed(steps):
        if id(step.marker) in live:
            return dict(step.parents)
    redo = {id(atom) for item in getattr(layer, "_redo_history", ()) for atom in item}
    if len(undo) == undo.maxlen:  # older steps fell off the history: the newest not undone
        for step in reversed(steps):
            if id(step.marker) not in redo:
                return dict(step.parents)
    return dict(layer.metadata.get(BASE_KEY, {}))


def lineage_of(layer, axis: int) -> Lineage:
    """The lineage of the labels along ``axis``: frames from the pixels, parents kept.

    A parent link the pixels no longer allow (a daughter erased, a parent painted on after
    its daughters start) is dropped, never raised: the lineage always describes the labels.
    The table is stored under :data:`LINEAGE_KEY`.
    """
    labels = stack(layer, axis)
    lineage = consistent(labels, parents_now(layer))
    layer.metadata[LINEAGE_KEY] = {"axis": int(axis), "rows": lineage.to_rows()}
    return lineage


def consistent(labels: np.ndarray, parents: dict[int, int]) -> Lineage:
    """``Lineage.from_labels(labels, parents)`` without the links that make it invalid."""
    frames = presence(labels)
    links = {d: p for d, p in parents.items() if d in frames and p in frames}
    while True:
        try:
            return Lineage.from_labels(labels, links)
        except LineageError:
            pass
        span = {key: (int(f[0]), int(f[-1])) for key, f in frames.items()}
        children: dict[int, list[int]] = {}
        for daughter, parent in links.items():
            children.setdefault(parent, []).append(daughter)
        bad = {
            parent
            for parent, kids in children.items()
            if len(kids) != 2 or any(span[k][0] <= span[parent][1] for k in kids)
        }
        if not bad:  # a cycle: drop every link (should not happen from edits)
            return Lineage.from_labels(labels, {})
        links = {d: p for d, p in links.items() if p not in bad}


def commit_step(
    layer, axis: int, paint: Callable[[], None] | None, *, parents: dict[int, int]
) -> LineageStep:
    """Run ``paint`` (``data_setitem`` calls) and record ``parents`` in ONE undo step."""
    if STEPS_KEY not in layer.metadata:
        layer.metadata[BASE_KEY] = parents_now(layer)
    with layer.block_history():
        if paint is not None:
            paint()
        marker = _marker(layer)
    step = LineageStep(marker, dict(parents), int(axis))
    steps = [*layer.metadata.get(STEPS_KEY, []), step]
    layer.metadata[STEPS_KEY] = steps[-MAX_STEPS:]
    lineage_of(layer, axis)
    return step


def apply_edit(layer, axis: int, edit: TrackEdit) -> None:
    """Write a :class:`TrackEdit` (new labels along ``axis`` and lineage) as one undo step."""
    labels = stack(layer, axis)
    parts, values = [], []
    for t in edit.frames:
        where = np.asarray(labels[t]) != edit.labels[t]
        if not where.any():
            continue
        rest = list(np.nonzero(where))
        rest.insert(int(axis), np.full(len(rest[0]), t, dtype=np.intp))
        parts.append(tuple(rest))
        values.append(edit.labels[t][where])

    def paint() -> None:
        if parts:
            indices = tuple(np.concatenate(a) for a in zip(*parts, strict=True))
            layer.data_setitem(indices, np.concatenate(values).astype(layer.data.dtype))

    parents = {t.id: t.parent for t in edit.lineage.tracks.values() if t.parent}
    commit_step(layer, axis, paint, parents=parents)


def _marker(layer) -> tuple:
    """A history atom that rewrites one pixel with its own value, staged in the open step."""
    corner = tuple(np.zeros(1, dtype=np.intp) for _ in range(layer.data.ndim))
    value = np.array(layer.data[corner], copy=True)
    atom = (corner, value, value.copy())
    layer._save_history(atom)  # data_setitem would skip an unchanged pixel
    return atom
