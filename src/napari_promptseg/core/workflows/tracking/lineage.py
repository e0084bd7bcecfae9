"""The lineage graph as plain data: tracks, their frames and the parent links of divisions.

A label stack has time on axis 0, ``(T, Y, X)`` or ``(T, Z, Y, X)``; a label id is one track
through time. A :class:`Track` spans ``first`` .. ``last`` (inclusive frame indices) and may
have a ``parent`` (0: none). A division is a parent with exactly two daughters, each starting
after the parent's last frame. A track may be absent on some frames in between (a gap): the
lineage allows it; :mod:`.ctc` splits such a track into linked CTC tracks when it writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from ...errors import PromptSegError

COLUMNS = ("track_id", "first_frame", "last_frame", "parent")
"""The lineage table's columns (:meth:`Lineage.to_rows`)."""


class LineageError(PromptSegError, ValueError):
    """The lineage is inconsistent (cycle, one daughter, daughter before its parent ends,
    unknown id...) or an edit would make it so. The message names the ids and frames."""


@dataclass(frozen=True)
class Track:
    """One label id through time: present first on frame ``first``, last on ``last``."""

    id: int
    first: int
    last: int
    parent: int = 0  # 0: no parent


def presence(labels: np.ndarray) -> dict[int, np.ndarray]:
    """The frames on which each id is present.

    Parameters
    ----------
    labels
        ``(T, [Z,] Y, X)`` integer label stack, time on axis 0; 0 is background.

    Returns
    -------
    dict
        ``id -> sorted int array of frame indices``, ids in increasing order.
    """
    frames: dict[int, list[int]] = {}
    for t in range(labels.shape[0]):
        for value in np.unique(labels[t]):
            if value != 0:
                frames.setdefault(int(value), []).append(t)
    return {key: np.asarray(frames[key]) for key in sorted(frames)}


def measure(labels: np.ndarray) -> list[tuple[int, int, np.ndarray, int]]:
    """Centroid and area of every id on every frame, ``(id, t, centroid, area)`` rows sorted
    by id then frame; ``centroid`` is ``([z,] y, x)`` in pixels (float64)."""
    rows: list[tuple[int, int, np.ndarray, int]] = []
    for t in range(labels.shape[0]):
        plane = np.asarray(labels[t])
        ids, areas = np.unique(plane, return_counts=True)
        keep = ids != 0
        ids, areas = ids[keep], areas[keep]
        if not ids.size:
            continue
        centroids = ndimage.center_of_mass(np.ones(plane.shape), plane, ids)
        for track_id, area, centroid in zip(ids, areas, centroids, strict=True):
            rows.append((int(track_id), t, np.asarray(centroid, dtype=float), int(area)))
    rows.sort(key=lambda row: (row[0], row[1]))
    return rows


class Lineage:
    """Tracks (label id -> :class:`Track`) and the parent links of divisions.

    Immutable in use: every edit returns a new :class:`Lineage`. The constructor checks
    only that keys match ids; :meth:`validate` checks the graph (and is run by
    :meth:`from_labels`, :meth:`from_rows` and :meth:`divide`).
    """

    def __init__(self, tracks: Mapping[int, Track] | Iterable[Track] = ()) -> None:
        items = list(tracks.values()) if isinstance(tracks, Mapping) else list(tracks)
        self.tracks: dict[int, Track] = {track.id: track for track in sorted(items, key=_id)}
        if len(self.tracks) != len(items):
            raise LineageError("two tracks have the same id.")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lineage) and self.tracks == other.tracks

    def __repr__(self) -> str:
        return f"Lineage({list(self.tracks.values())!r})"

    @classmethod
    def from_labels(cls, labels: np.ndarray, parents: Mapping[int, int] | None = None) -> Lineage:
        """The lineage of a ``(T, [Z,] Y, X)`` label stack: each id's first and last frames
        where it is present along axis 0, and ``parents`` (``daughter id -> parent id``)."""
        parents = dict(parents or {})
        frames = presence(labels)
        unknown = sorted(set(parents) - set(frames))
        if unknown:
            raise LineageError(f"track(s) {_ids(unknown)} have a parent but are not in the labels.")
        tracks = [
            Track(key, int(f[0]), int(f[-1]), int(parents.get(key, 0))) for key, f in frames.items()
        ]
        lineage = cls(tracks)
        lineage.validate()
        return lineage

    def parent_of(self, track_id: int) -> int:
        """The parent of ``track_id`` (0: none)."""
        return self._get(track_id).parent

    def children_of(self, track_id: int) -> list[int]:
        """The daughters of ``track_id``, in increasing id order."""
        self._get(track_id)
        return [t.id for t in self.tracks.values() if t.parent == track_id]

    def with_tracks(self, *tracks: Track, remove: Iterable[int] = ()) -> Lineage:
        """A new lineage with ``tracks`` added or replaced and the ``remove`` ids dropped
        (not validated)."""
        drop = set(remove)
        kept = {key: t for key, t in self.tracks.items() if key not in drop}
        kept.update({t.id: t for t in tracks})
        return Lineage(kept)

    def divide(self, parent: int, daughters: Sequence[int]) -> Lineage:
        """A new lineage where ``parent`` divides into exactly two ``daughters``.

        Raises
        ------
        LineageError
            Not two distinct daughters, an unknown id, a daughter that already has another
            parent or starts on or before the parent's last frame, a parent with daughters
            already, or a cycle.
        """
        ids = [int(d) for d in daughters]
        if len(ids) != 2 or ids[0] == ids[1]:
            raise LineageError(
                f"a division needs exactly two different daughters; track {parent} got "
                f"{_ids(ids) or 'none'}."
            )
        self._get(parent)
        for daughter in ids:
            other = self._get(daughter).parent
            if other not in (0, parent):
                raise LineageError(f"track {daughter} is already a daughter of track {other}.")
        existing = [c for c in self.children_of(parent) if c not in ids]
        if existing:
            raise LineageError(f"track {parent} already divides into {_ids(existing)}.")
        lineage = self.with_tracks(*(replace(self.tracks[d], parent=parent) for d in ids))
        lineage.validate()
        return lineage

    def validate(self, labels: np.ndarray | None = None, *, allow_gaps: bool = True) -> None:
        """Check the graph; with ``labels`` (``(T, [Z,] Y, X)``), also that it describes them.

        Raises
        ------
        LineageError
            A parent id that is not a track, a cycle, a parent with one or more than two
            daughters, a daughter starting on or before its parent's last frame, a track
            whose first > last; with ``labels``: ids in the labels that are not tracks (or
            the reverse), first/last frames that differ from the labels, and gaps (frames
            without the track between its first and last) when ``allow_gaps`` is False.
        """
        for track in self.tracks.values():
            if track.id <= 0 or track.first > track.last or track.first < 0:
                raise LineageError(
                    f"track {track.id} has id/frames {track.first}..{track.last}: ids must be "
                    "positive and first <= last."
                )
            if track.parent and track.parent not in self.tracks:
                raise LineageError(f"track {track.id} has parent {track.parent}, an unknown id.")
        for track in self.tracks.values():
            seen, current = [track.id], track.parent
            while current:
                if current in seen:
                    loop = " -> ".join(str(i) for i in [*seen, current])
                    raise LineageError(f"the lineage has a cycle: {loop}.")
                seen.append(current)
                current = self.tracks[current].parent
        for track in self.tracks.values():
            children = self.children_of(track.id)
            if len(children) == 1:
                raise LineageError(
                    f"track {track.id} has one daughter ({children[0]}); a division has two."
                )
            if len(children) > 2:
                raise LineageError(
                    f"track {track.id} has {len(children)} daughters ({_ids(children)}); "
                    "a division has two."
                )
            for child in children:
                first = self.tracks[child].first
                if first <= track.last:
                    raise LineageError(
                        f"daughter {child} starts at frame {first}, on or before the last "
                        f"frame of its parent {track.id} ({track.last})."
                    )
        if labels is not None:
            self._check_labels(labels, allow_gaps)

    def _check_labels(self, labels: np.ndarray, allow_gaps: bool) -> None:
        frames = presence(labels)
        missing = sorted(set(frames) - set(self.tracks))
        if missing:
            raise LineageError(f"label id(s) {_ids(missing)} in the labels are not tracks.")
        absent = sorted(set(self.tracks) - set(frames))
        if absent:
            raise LineageError(f"track(s) {_ids(absent)} are not in the labels.")
        for key, f in frames.items():
            track = self.tracks[key]
            if (track.first, track.last) != (f[0], f[-1]):
                raise LineageError(
                    f"track {key} spans frames {track.first}..{track.last} but the labels "
                    f"show it on {f[0]}..{f[-1]}."
                )
            if not allow_gaps and len(f) != f[-1] - f[0] + 1:
                gap = sorted(set(range(int(f[0]), int(f[-1]) + 1)) - set(f.tolist()))
                raise LineageError(f"track {key} is missing on frame(s) {_ids(gap)} (a gap).")

    def to_rows(self) -> list[dict[str, int]]:
        """The lineage table, one row per track in id order, columns :data:`COLUMNS`."""
        return [
            dict(zip(COLUMNS, (t.id, t.first, t.last, t.parent), strict=True))
            for t in self.tracks.values()
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> Lineage:
        """Inverse of :meth:`to_rows` (values may be strings, as read from a CSV)."""
        try:
            tracks = [Track(*(int(row[c]) for c in COLUMNS)) for row in rows]
        except KeyError as exc:
            raise LineageError(f"a lineage row has no {exc.args[0]!r} column.") from exc
        lineage = cls(tracks)
        lineage.validate()
        return lineage

    def to_ctc_lines(self) -> list[str]:
        """The Cell Tracking Challenge ``res_track.txt`` lines ``"L B E P"``, one per track.

        Gaps are not split here (see :func:`.ctc.write_ctc`, which does)."""
        return [f"{t.id} {t.first} {t.last} {t.parent}" for t in self.tracks.values()]

    def tracks_layer_data(self, labels: np.ndarray) -> tuple[np.ndarray, dict[int, list[int]]]:
        """napari Tracks layer data for a ``(T, [Z,] Y, X)`` label stack.

        Returns
        -------
        data
            ``(N, 2 + S)`` float array, rows ``[track_id, t, ([z,] y, x) centroid]`` for every
            frame each track is present on, sorted by track id then t (``S`` spatial axes).
        graph
            ``{daughter id: [parent id]}`` for every track with a parent.
        """
        rows = [[key, t, *centroid] for key, t, centroid, _ in measure(labels)]
        data = np.asarray(rows, dtype=float).reshape(len(rows), labels.ndim + 1)
        graph = {t.id: [t.parent] for t in self.tracks.values() if t.parent}
        return data, graph

    def _get(self, track_id: int) -> Track:
        try:
            return self.tracks[int(track_id)]
        except KeyError:
            raise LineageError(f"track {track_id} is not in the lineage.") from None


def _id(track: Track) -> int:
    return track.id


def _ids(values: Iterable[int]) -> str:
    return ", ".join(str(int(v)) for v in values)
