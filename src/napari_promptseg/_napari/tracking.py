"""Memory-propagation results written into a napari Labels layer, sparing the user's frames.

A :class:`~napari_promptseg.core.workflows.tracking.results.TrackRun` (or any frame → mask
table) is painted into the labels layer in ONE undo step, each object with its own id,
never over other objects unless ``overwrite``. The lineage step goes into the same undo
step (:func:`.lineage_store.commit_step`), so Ctrl+Z takes back the pixels and the
lineage together.

Which frames propagation may rewrite: every frame it writes is remembered per labels layer
and object with a fingerprint of the object's pixels there after the write
(:data:`WRITTEN_KEY` in ``layer.metadata``). On a later propagation a frame where the object
already has pixels is rewritten only if those pixels are one of propagation's own writes;
a frame the user committed, painted or corrected by hand keeps its pixels unless
``replace_hand_made`` is asked for. Fingerprints are kept as sets, so a frame whose
propagation was undone back to an earlier propagation's pixels still counts as written by
propagation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .lineage_store import commit_step, lineage_of
from .objects import plane_of
from .slices import SliceRef

#: layer.metadata key: {(object id, fixed positions of the plane): {fingerprint, ...}}
WRITTEN_KEY = "promptseg_memory_frames"


@dataclass(frozen=True)
class TrackTarget:
    """Where a memory tracker works: planes along layer ``axis``, the other axes as at ``ref``.

    Attributes
    ----------
    ref
        The plane shown when tracking started (the displayed axes as rows, cols).
    axis
        The layer axis tracked along (a non-displayed axis of ``ref``).
    """

    ref: SliceRef
    axis: int

    @property
    def start(self) -> int:
        return int(self.ref.index[self.axis])  # type: ignore[arg-type]

    def ref_at(self, frame: int) -> SliceRef:
        """The plane at ``frame`` along the axis, every other position as at the start."""
        index = list(self.ref.index)
        index[self.axis] = int(frame)
        return SliceRef(tuple(index), self.ref.displayed)

    def key(self) -> tuple[int | None, ...]:
        """The positions of the other non-displayed axes: which line of planes this is."""
        return tuple(None if a == self.axis else i for a, i in enumerate(self.ref.index))


@dataclass
class WriteReport:
    """What :func:`write_masks` did, per object: frames written, kept and blocked."""

    written: dict[int, list[int]] = field(default_factory=dict)
    hand_made: dict[int, list[int]] = field(default_factory=dict)  # kept: the user's pixels
    covered: dict[int, list[int]] = field(default_factory=dict)  # wholly on other objects
    empty: dict[int, list[int]] = field(default_factory=dict)  # the tracked mask is empty

    @property
    def n_written(self) -> int:
        return sum(len(v) for v in self.written.values())

    def describe(self) -> str:
        """One line per object, e.g. ``object 3: wrote 0, 2-4; kept hand-made 1``."""
        lines = []
        for obj_id in sorted({*self.written, *self.hand_made, *self.covered, *self.empty}):
            parts = [f"wrote {_ranges(self.written.get(obj_id, []))}"]
            if self.hand_made.get(obj_id):
                parts.append(f"kept hand-made {_ranges(self.hand_made[obj_id])}")
            if self.covered.get(obj_id):
                parts.append(f"on other objects {_ranges(self.covered[obj_id])}")
            if self.empty.get(obj_id):
                parts.append(f"empty mask {_ranges(self.empty[obj_id])}")
            lines.append(f"object {obj_id}: " + "; ".join(parts))
        return "\n".join(lines) if lines else "nothing to write"


def fingerprint(mask: np.ndarray) -> str:
    """A short hash of an (H, W) bool mask (its shape included)."""
    digest = hashlib.blake2b(np.packbits(np.asarray(mask, bool)).tobytes(), digest_size=12)
    digest.update(repr(tuple(mask.shape)).encode())
    return digest.hexdigest()


def written_frames(layer, obj_id: int) -> dict[tuple[int, ...], set[str]]:
    """Planes (their fixed positions) propagation wrote for ``obj_id``, with fingerprints."""
    table = layer.metadata.get(WRITTEN_KEY, {})
    return {plane: prints for (oid, plane), prints in table.items() if oid == int(obj_id)}


def is_hand_made(layer, ref: SliceRef, obj_id: int) -> bool:
    """Whether ``obj_id`` has pixels on plane ``ref`` that propagation did not write."""
    mask = plane_of(layer, ref) == obj_id
    if not mask.any():
        return False
    prints = layer.metadata.get(WRITTEN_KEY, {}).get((int(obj_id), ref.fixed), set())
    return fingerprint(mask) not in prints


def write_masks(
    layer,
    target: TrackTarget,
    masks: Mapping[int, Mapping[int, np.ndarray]],
    *,
    overwrite: bool,
    replace_hand_made: bool = False,
    force: frozenset[tuple[int, int]] = frozenset(),
) -> WriteReport:
    """Paint tracked masks into ``layer`` as one undo step (with the lineage).

    Parameters
    ----------
    layer
        The napari Labels layer, the image's shape.
    target
        The planes tracked along.
    masks
        object id → frame → (H, W) bool mask of that plane (rows, cols as displayed).
    overwrite
        Paint over other objects (the session's "overwrite existing objects").
    replace_hand_made
        Also rewrite frames where the object has pixels propagation did not write.
    force
        (object id, frame) pairs written whatever is there of the object (a correction the
        user just made on that frame); other objects are still spared unless ``overwrite``.
    """
    report = WriteReport()
    table = dict(layer.metadata.get(WRITTEN_KEY, {}))
    frames = sorted({f for per in masks.values() for f in per})
    parts: list[tuple[np.ndarray, ...]] = []
    values: list[np.ndarray] = []
    prints: dict[tuple[int, tuple[int, ...]], str] = {}
    for frame in frames:
        ref = target.ref_at(frame)
        before = plane_of(layer, ref)
        plane = before.copy()  # objects written earlier in this loop are "other objects" too
        for obj_id in sorted(masks):
            mask = masks[obj_id].get(frame)
            if mask is None:
                continue
            if not np.any(mask):
                report.empty.setdefault(obj_id, []).append(frame)
                continue
            own = plane == obj_id
            ours = fingerprint(own) in table.get((obj_id, ref.fixed), set())
            if own.any() and not ours and not replace_hand_made and (obj_id, frame) not in force:
                report.hand_made.setdefault(obj_id, []).append(frame)
                continue
            free = plane == 0 if not overwrite else np.ones_like(own)
            drawn = np.asarray(mask, bool) & (free | own)
            if not drawn.any():
                report.covered.setdefault(obj_id, []).append(frame)
                continue
            plane[own & ~drawn] = 0  # the object's old pixels that the new mask drops
            plane[drawn] = obj_id
            prints[(obj_id, ref.fixed)] = fingerprint(plane == obj_id)
            report.written.setdefault(obj_id, []).append(frame)
        changed = plane != before
        if changed.any():
            rows, cols = np.nonzero(changed)
            parts.append(ref.full_indices(rows, cols))
            values.append(plane[rows, cols])
    if not parts:
        return report
    indices = tuple(np.concatenate(axis) for axis in zip(*parts, strict=True))
    flat = np.concatenate(values).astype(layer.data.dtype)

    def paint() -> None:
        layer.data_setitem(indices, flat)

    lineage = lineage_of(layer, target.axis)  # the parents before: kept where still valid
    commit_step(layer, target.axis, paint, parents=_parents(lineage))
    for key, value in prints.items():
        table[key] = {*table.get(key, set()), value}
    layer.metadata[WRITTEN_KEY] = table
    return report


def _parents(lineage) -> dict[int, int]:
    return {t.id: t.parent for t in lineage.tracks.values() if t.parent}


def _ranges(frames: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0-2, 5"``."""
    values = sorted(set(frames))
    if not values:
        return "none"
    runs = [[values[0], values[0]]]
    for value in values[1:]:
        if value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
