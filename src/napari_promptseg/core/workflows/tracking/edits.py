"""Editing tracks on a label stack: split, merge, delete, mark a division, propose divisions.

Pure numpy on ``(T, [Z,] Y, X)`` label stacks (time on axis 0). Every edit leaves its inputs
untouched and returns a :class:`TrackEdit`: the new label stack (a copy), the new
:class:`.Lineage`, and the frames whose pixels changed. The caller records the undo step,
e.g. for napari, per changed frame ``t``: ``where = labels[t] != edit.labels[t]`` then
``layer.data_setitem((t, *np.nonzero(where)), edit.labels[t][where])`` in one
``block_history()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .lineage import Lineage, LineageError, Track, presence


class TrackEdit(NamedTuple):
    """What an edit returns."""

    labels: np.ndarray  # (T, [Z,] Y, X), a new array
    lineage: Lineage
    frames: tuple[int, ...]  # frames whose pixels changed, increasing


@dataclass(frozen=True)
class Division:
    """A proposed division: track ``parent`` is one piece on the frame before ``frame`` and
    two pieces on ``frame``; ``parts`` are their ``([Z,] Y, X)`` bool masks, larger first."""

    parent: int
    frame: int
    parts: tuple[np.ndarray, np.ndarray]


def split_track(
    labels: np.ndarray, lineage: Lineage, track_id: int, frame: int, new_id: int
) -> TrackEdit:
    """Give ``track_id``'s pixels on frames ``>= frame`` the id ``new_id``: two tracks.

    The new track has no parent (mark a division with :func:`mark_division` if it is one)
    and takes over ``track_id``'s daughters, if any.

    Raises
    ------
    LineageError
        ``new_id`` already used or not positive, or ``track_id`` unknown or not present both
        before ``frame`` and on or after it.
    """
    _check_new_id(labels, lineage, new_id)
    track = _get(lineage, track_id)
    frames = presence(labels).get(track_id, np.empty(0, int))
    before, after = frames[frames < frame], frames[frames >= frame]
    if not before.size or not after.size:
        raise LineageError(
            f"cannot split track {track_id} at frame {frame}: it spans frames "
            f"{track.first}..{track.last}; a split needs frames on both sides."
        )
    out = labels.copy()
    later = out[frame:]
    later[later == track_id] = new_id
    moved = [replace(lineage.tracks[c], parent=new_id) for c in lineage.children_of(track_id)]
    result = lineage.with_tracks(
        replace(track, last=int(before[-1])),
        Track(new_id, int(after[0]), track.last, 0),
        *moved,
    )
    result.validate()
    return TrackEdit(out, result, tuple(int(t) for t in after))


def merge_tracks(labels: np.ndarray, lineage: Lineage, keep_id: int, other_id: int) -> TrackEdit:
    """Relabel ``other_id`` as ``keep_id``: one track over both tracks' frames.

    The merged track keeps the parent of whichever track starts first and the daughters of
    both.

    Raises
    ------
    LineageError
        The ids are equal or unknown, both are present on the same frame (named), the
        earlier track already divides, the later one is a daughter, or the result is
        inconsistent (a daughter starting before the merged track ends).
    """
    keep, other = _get(lineage, keep_id), _get(lineage, other_id)
    if keep_id == other_id:
        raise LineageError(f"cannot merge track {keep_id} with itself.")
    frames = presence(labels)
    both = np.intersect1d(frames.get(keep_id, []), frames.get(other_id, []))
    if both.size:
        shown = ", ".join(str(int(t)) for t in both[:10]) + (" ..." if both.size > 10 else "")
        raise LineageError(
            f"cannot merge tracks {keep_id} and {other_id}: both are present on frame(s) {shown}."
        )
    early, late = sorted((keep, other), key=lambda t: t.first)
    if lineage.children_of(early.id):
        raise LineageError(
            f"cannot merge tracks {keep_id} and {other_id}: track {early.id} divides at its "
            f"end (frame {early.last}); the later track {late.id} cannot continue it."
        )
    if late.parent:
        raise LineageError(
            f"cannot merge tracks {keep_id} and {other_id}: the later track {late.id} is a "
            f"daughter of track {late.parent}; remove that division first."
        )
    out = labels.copy()
    out[out == other_id] = keep_id
    moved = [replace(lineage.tracks[c], parent=keep_id) for c in lineage.children_of(other_id)]
    merged = Track(keep_id, min(keep.first, other.first), max(keep.last, other.last), early.parent)
    result = lineage.with_tracks(merged, *moved, remove=[other_id])
    result.validate()
    return TrackEdit(out, result, tuple(int(t) for t in frames.get(other_id, [])))


def delete_track(labels: np.ndarray, lineage: Lineage, track_id: int) -> TrackEdit:
    """Erase ``track_id`` (its pixels become 0) and remove it from the lineage.

    Its daughters become tracks without a parent. If it was a daughter, its sibling loses
    its parent too (a division needs two daughters); merge the sibling into the parent with
    :func:`merge_tracks` if the division was a mistake.
    """
    _get(lineage, track_id)
    frames = presence(labels).get(track_id, np.empty(0, int))
    out = labels.copy()
    out[out == track_id] = 0
    parent = lineage.parent_of(track_id)
    orphans = lineage.children_of(track_id)
    if parent:
        orphans += [c for c in lineage.children_of(parent) if c != track_id]
    result = lineage.with_tracks(
        *(replace(lineage.tracks[c], parent=0) for c in orphans), remove=[track_id]
    )
    result.validate()
    return TrackEdit(out, result, tuple(int(t) for t in frames))


def mark_division(
    labels: np.ndarray,
    lineage: Lineage,
    parent_id: int,
    frame: int,
    daughter_ids: Sequence[int],
) -> TrackEdit:
    """``parent_id`` divides: it ends on ``frame - 1`` and two daughters start on ``frame``.

    Each daughter id is either an existing track, which must start on ``frame``, or a new id,
    which takes the parent's pixels from ``frame`` on. With one new daughter it takes all of
    them; with two, the parent's mask on ``frame`` must be two connected pieces (the larger
    goes to the first id) and on later frames each piece goes to the daughter it overlaps
    most on the frame before (else the nearest by centroid).

    Raises
    ------
    LineageError
        Not two daughters, an existing daughter that does not start on ``frame``, a parent
        present on ``frame`` or later with no new daughter to take those pixels, a parent
        that is not two pieces on ``frame`` for two new daughters, or a graph error.
    """
    parent = _get(lineage, parent_id)
    ids = [int(d) for d in daughter_ids]
    if len(ids) != 2 or ids[0] == ids[1]:
        raise LineageError(
            f"a division needs exactly two different daughters; track {parent_id} got "
            f"{', '.join(map(str, ids)) or 'none'}."
        )
    new = [d for d in ids if d not in lineage.tracks]
    for daughter in ids:
        if daughter in new:
            _check_new_id(labels, lineage, daughter)
        elif lineage.tracks[daughter].first != frame:
            raise LineageError(
                f"daughter {daughter} starts at frame {lineage.tracks[daughter].first}, not at "
                f"the division frame {frame} of track {parent_id}."
            )
    out = labels.copy()
    mask = out[frame:] == parent_id
    if mask.any() and not new:
        raise LineageError(
            f"track {parent_id} is still present on frame {frame} or later; give a new id "
            "for the daughter that continues it."
        )
    if len(new) == 1:
        out[frame:][mask] = new[0]
    elif len(new) == 2:
        _assign_pieces(out[frame:], mask, parent_id, new)
    frames = presence(out)
    if parent_id not in frames:
        raise LineageError(f"track {parent_id} has no frame before the division frame {frame}.")
    tracks = [replace(parent, last=int(frames[parent_id][-1]))]
    for d in new:
        if d not in frames:
            raise LineageError(f"new daughter {d} got no pixels (track {parent_id} at {frame}).")
        tracks.append(Track(d, int(frames[d][0]), int(frames[d][-1]), 0))
    changed = np.nonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0] + frame
    result = lineage.with_tracks(*tracks).divide(parent_id, ids)
    return TrackEdit(out, result, tuple(int(t) for t in changed))


def propose_divisions(labels: np.ndarray, lineage: Lineage, min_area: int = 20) -> list[Division]:
    """Frames where a track's mask goes from one piece to two pieces of ``min_area`` pixels
    or more (connected components, corners connect), for tracks of ``lineage`` without
    daughters. Sorted by frame then parent id."""
    found: list[Division] = []
    structure = None
    for track in lineage.tracks.values():
        if lineage.children_of(track.id):
            continue
        was_one = False
        for t in range(track.first, track.last + 1):
            mask = np.asarray(labels[t]) == track.id
            if structure is None:
                structure = np.ones((3,) * mask.ndim, bool)
            pieces, n = ndimage.label(mask, structure=structure)
            sizes = np.bincount(pieces.ravel(), minlength=n + 1)[1:]
            big = np.nonzero(sizes >= min_area)[0]
            if was_one and big.size == 2:
                order = big[np.argsort(-sizes[big], kind="stable")] + 1
                found.append(Division(track.id, t, (pieces == order[0], pieces == order[1])))
            was_one = big.size == 1
    found.sort(key=lambda d: (d.frame, d.parent))
    return found


def _assign_pieces(stack: np.ndarray, mask: np.ndarray, parent_id: int, new: list[int]) -> None:
    """Relabel the parent's pixels ``mask`` in ``stack`` (``(T', ...)``, from the division
    frame on) to the two ``new`` daughters, piece by piece, in place."""
    structure = np.ones((3,) * (stack.ndim - 1), bool)
    pieces, n = ndimage.label(mask[0], structure=structure)
    if n != 2:
        raise LineageError(
            f"track {parent_id} is {n} connected piece(s) on the division frame, not two; "
            "split it by hand or give one new daughter id."
        )
    sizes = np.bincount(pieces.ravel())[1:]
    first = 1 if sizes[0] >= sizes[1] else 2
    stack[0][pieces == first] = new[0]
    stack[0][pieces == 3 - first] = new[1]
    for t in range(1, stack.shape[0]):
        pieces, n = ndimage.label(mask[t], structure=structure)
        previous = [stack[t - 1] == d for d in new]
        for piece in range(1, n + 1):
            where = pieces == piece
            overlap = [int((where & p).sum()) for p in previous]
            if max(overlap):
                stack[t][where] = new[int(np.argmax(overlap))]
                continue
            centre = np.argwhere(where).mean(axis=0)
            dist = [
                float(np.linalg.norm(np.argwhere(p).mean(axis=0) - centre)) if p.any() else np.inf
                for p in previous
            ]
            stack[t][where] = new[int(np.argmin(dist))]


def _get(lineage: Lineage, track_id: int) -> Track:
    if int(track_id) not in lineage.tracks:
        raise LineageError(f"track {track_id} is not in the lineage.")
    return lineage.tracks[int(track_id)]


def _check_new_id(labels: np.ndarray, lineage: Lineage, new_id: int) -> None:
    if new_id <= 0:
        raise LineageError(f"a new track id must be positive; got {new_id}.")
    if new_id in lineage.tracks or bool((labels == new_id).any()):
        raise LineageError(f"id {new_id} is already used; pick an unused id.")
