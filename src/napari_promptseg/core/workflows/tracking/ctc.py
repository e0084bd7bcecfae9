"""The Cell Tracking Challenge result format (RES): ``maskNNN.tif`` + ``res_track.txt``.

A RES folder holds one uint16 mask per frame, ``mask000.tif``, ``mask001.tif``... (four
digits when there are 1000 frames or more), 2D ``(Y, X)`` or 3D ``(Z, Y, X)``, and
``res_track.txt`` with one line ``L B E P`` per track: label, first frame, last frame,
parent label (0: none).

CTC tracks have no gaps. :func:`write_ctc` writes a track that is absent on some frames as
one CTC track per run of consecutive frames: the first run keeps the track's id, each later
run gets a new id (above every id in use, in track then time order) whose parent is the
run before it, and the masks carry the new ids on those frames. The daughters of a gapped
track have its last run as parent. :func:`read_ctc` undoes this: a CTC track whose parent
has it as its only daughter is a gap, so it is relabelled with its parent's id (a
division always has two daughters), which gives back the labels and lineage written.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...errors import ExportError
from ...storage.files import atomic_folder
from .lineage import Lineage, LineageError, Track, presence

TRACK_FILE = "res_track.txt"
_MASK = re.compile(r"mask(\d{3,4})\.tif$")


def mask_name(frame: int, n_frames: int) -> str:
    """``mask007.tif`` (``mask0007.tif`` when ``n_frames >= 1000``)."""
    return f"mask{frame:0{4 if n_frames >= 1000 else 3}d}.tif"


def ctc_tracks(labels: np.ndarray, lineage: Lineage) -> tuple[np.ndarray, list[Track]]:
    """The CTC form of a lineage: gapped tracks split into runs (see the module docstring).

    Parameters
    ----------
    labels
        ``(T, [Z,] Y, X)`` integer label stack, time on axis 0.
    lineage
        Its lineage (validated against ``labels``).

    Returns
    -------
    masks
        ``(T, [Z,] Y, X)`` uint16 stack with the later runs of gapped tracks relabelled.
    tracks
        The CTC tracks in id order.

    Raises
    ------
    LineageError
        ``lineage`` does not describe ``labels``, or is inconsistent.
    ExportError
        An id does not fit in uint16, as CTC masks must.
    """
    lineage.validate(labels)
    frames = presence(labels)
    next_id = max(frames, default=0) + 1
    masks = np.asarray(labels).copy()
    runs: dict[int, list[Track]] = {}
    for key, present in frames.items():
        cuts = np.nonzero(np.diff(present) > 1)[0] + 1
        pieces = np.split(present, cuts)
        runs[key] = [Track(key, int(pieces[0][0]), int(pieces[0][-1]))]
        for piece in pieces[1:]:
            runs[key].append(Track(next_id, int(piece[0]), int(piece[-1]), runs[key][-1].id))
            block = masks[piece[0] : piece[-1] + 1]
            block[block == key] = next_id
            next_id += 1
    if next_id - 1 > np.iinfo(np.uint16).max:
        raise ExportError(
            f"CTC masks are uint16: id {next_id - 1} does not fit (at most 65535 ids, gaps "
            "included as extra ids)."
        )
    tracks: list[Track] = []
    for key, chain in runs.items():
        parent = lineage.parent_of(key)
        if parent:
            chain[0] = replace(chain[0], parent=runs[parent][-1].id)
        tracks += chain
    tracks.sort(key=lambda t: t.id)
    return masks.astype(np.uint16), tracks


def write_ctc(folder: str | os.PathLike, labels: np.ndarray, lineage: Lineage) -> list[Path]:
    """Write a CTC RES folder: ``maskNNN.tif`` per frame (uint16) and ``res_track.txt``.

    ``folder`` must be new or empty. Everything is written into a temporary sibling folder
    that is then renamed to ``folder``: a failure leaves nothing half written.

    Parameters
    ----------
    folder
        The RES folder to create (its parent must exist).
    labels
        ``(T, Y, X)`` or ``(T, Z, Y, X)`` integer label stack, time on axis 0.
    lineage
        Its lineage; tracks with gaps are split into linked CTC tracks (module docstring).

    Returns
    -------
    list of Path
        The masks in frame order, then ``res_track.txt``, at their final paths.

    Raises
    ------
    ExportError
        ``folder`` is a file or a non-empty folder (it is left untouched), its parent is
        missing, an id does not fit in uint16, or a write fails.
    LineageError
        ``lineage`` does not describe ``labels``.
    """
    import tifffile

    folder = Path(folder)
    labels = np.asarray(labels)
    if labels.ndim not in (3, 4):
        raise LineageError(f"CTC needs a (T, Y, X) or (T, Z, Y, X) stack; got {labels.shape}.")
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"cannot write CTC results to {folder}: it is a file.")
    if folder.is_dir() and any(folder.iterdir()):
        raise ExportError(
            f"cannot write CTC results to {folder}: the folder is not empty; choose a new "
            "or empty folder."
        )
    if not folder.parent.is_dir():
        raise ExportError(f"cannot write {folder}: the folder {folder.parent} does not exist.")
    masks, tracks = ctc_tracks(labels, lineage)
    names = [mask_name(t, len(masks)) for t in range(len(masks))]
    with atomic_folder(folder) as staging:
        for name, mask in zip(names, masks, strict=True):
            tifffile.imwrite(staging / name, mask, photometric="minisblack")
        lines = "".join(f"{t.id} {t.first} {t.last} {t.parent}\n" for t in tracks)
        (staging / TRACK_FILE).write_text(lines, encoding="ascii")
    return [folder / name for name in names] + [folder / TRACK_FILE]


def read_ctc(folder: str | os.PathLike) -> tuple[np.ndarray, Lineage]:
    """Read a CTC RES (or GT ``TRA``) folder written by :func:`write_ctc` or another tool.

    Returns
    -------
    labels
        ``(T, [Z,] Y, X)`` stack of the masks (their dtype, usually uint16), frame ``t`` from
        ``mask{t}.tif``; gap links are merged back into one id (module docstring).
    lineage
        The lineage of ``labels``.

    Raises
    ------
    LineageError
        No masks, missing frame numbers, no or malformed ``res_track.txt``, or a track whose
        frames differ from the masks (all named).
    """
    import tifffile

    folder = Path(folder)
    found = {int(m.group(1)): p for p in folder.glob("mask*.tif") if (m := _MASK.match(p.name))}
    if not found:
        raise LineageError(f"{folder} has no maskNNN.tif files.")
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise LineageError(f"{folder} has no mask for frame(s) {missing[:10]}.")
    labels = np.stack([tifffile.imread(found[t]) for t in range(len(found))])
    table = _read_track_file(folder / TRACK_FILE)
    frames = presence(labels)
    for track in table.values():
        present = frames.get(track.id)
        if present is None or (present[0], present[-1]) != (track.first, track.last):
            shown = "no frame" if present is None else f"frames {present[0]}..{present[-1]}"
            raise LineageError(
                f"{TRACK_FILE} has track {track.id} on frames {track.first}..{track.last} "
                f"but the masks show it on {shown}."
            )
    unlisted = sorted(set(frames) - set(table))
    if unlisted:
        raise LineageError(f"mask id(s) {unlisted[:10]} are not in {TRACK_FILE}.")
    children: dict[int, list[int]] = {}
    for track in table.values():
        if track.parent:
            children.setdefault(track.parent, []).append(track.id)
    gap_of = {kids[0]: parent for parent, kids in children.items() if len(kids) == 1}

    def root(track_id: int) -> int:
        seen = set()
        while track_id in gap_of and track_id not in seen:
            seen.add(track_id)
            track_id = gap_of[track_id]
        return track_id

    lut = np.arange(int(labels.max()) + 1, dtype=labels.dtype)
    for child in gap_of:
        lut[child] = root(child)
    labels = lut[labels]
    parents = {k: root(t.parent) for k, t in table.items() if t.parent and k not in gap_of}
    return labels, Lineage.from_labels(labels, parents)


def _read_track_file(path: Path) -> dict[int, Track]:
    if not path.is_file():
        raise LineageError(f"{path.parent} has no {TRACK_FILE}.")
    tracks: dict[int, Track] = {}
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        try:
            label, first, last, parent = (int(v) for v in line.split())
        except ValueError:
            raise LineageError(f"{TRACK_FILE} line {number} is not 'L B E P': {line!r}.") from None
        tracks[label] = Track(label, first, last, parent)
    return tracks
