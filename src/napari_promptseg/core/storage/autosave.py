"""Autosave and recovery of committed objects, without Qt.

After a commit (or undo, redo, a hand-painted stroke) the labels array and the objects
table are written to ``<folder>/<image-name>.autosave.tif``, with the table also beside it
as ``<image-name>.autosave_objects.csv`` (the format :mod:`.export` writes). The tif alone is
enough to recover: it carries the objects rows, the layer's scale/translate and its own
shape/dtype in its metadata, so a crash between writing the two files cannot pair labels
with another moment's table. Both files are written atomically (temporary file, then
rename): a crash while saving leaves the previous autosave as it was.

Writes are throttled (at most one per ``min_gap_s``) and run on one background thread
where only the newest snapshot matters, so committing quickly never queues up writes.

The first write of an :class:`Autosaver` to a name that already has an autosave on disk
(from an earlier session, e.g. one that crashed) first moves it aside to
``<image-name>.autosave.previous.tif``: opening the same image again and committing before
restoring does not destroy what is being recovered.

    >>> saver = Autosaver(folder)                    # on commit, at most every 2 s
    >>> saver.note_change()                          # after each commit / undo
    >>> if saver.due():
    ...     saver.save_async("cells", labels, rows)  # copies labels, writes in background
    >>> labels, rows = load_autosave(find_autosaves(folder)[0].path)
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ExportError, PromptSegError
from ..latest import JobOutcome, LatestOnlyRunner
from ..user_folders import user_folder
from .export import objects_csv_path, write_objects_csv
from .files import atomic_write

AUTOSAVE_ENV = "NAPARI_PROMPTSEG_AUTOSAVE_DIR"
SUFFIX = ".autosave.tif"
PREVIOUS_SUFFIX = ".autosave.previous.tif"
METADATA_KEY = "promptseg_autosave"
FORMAT_VERSION = 1


class RecoveryError(PromptSegError, ValueError):
    """An autosave file cannot be read back (missing, damaged, not an autosave)."""


@dataclass(frozen=True)
class AutosavePaths:
    """The two files of one autosave: the label image and the objects table beside it."""

    labels: Path
    objects: Path


@dataclass(frozen=True)
class AutosaveFile:
    """An autosave found on disk.

    Attributes
    ----------
    path
        The ``.autosave.tif`` (or ``.autosave.previous.tif``) file.
    image
        Name of the image it was made for (from its metadata; from the file name if the
        metadata cannot be read).
    modified
        Modification time (seconds since the epoch).
    previous
        Whether this is an earlier session's autosave moved aside.
    """

    path: Path
    image: str
    modified: float
    previous: bool

    @property
    def objects_path(self) -> Path:
        return objects_csv_path(self.path)


def default_folder() -> Path:
    """``$NAPARI_PROMPTSEG_AUTOSAVE_DIR``, else ``user_data_dir("napari-promptseg")/autosave``."""
    return user_folder(AUTOSAVE_ENV, "data", "autosave")


def safe_name(name: str) -> str:
    """A file-name stem for ``name`` that cannot leave the autosave folder.

    Layer names come from file names and users (``../x``, ``a/b``, ``C:\\x``, ``""``): any
    character other than letters, digits, ``.``, ``_``, ``-`` and space becomes ``_``,
    leading dots and spaces are dropped, and the result is at most 80 characters. When
    anything had to change, a short hash of the original is appended, so two names that
    clean up to the same text still get different files.
    """
    cleaned = re.sub(r"[^\w.\- ]", "_", str(name), flags=re.ASCII).strip().lstrip(". ")
    cleaned = cleaned[:80].rstrip(". ") or "untitled"
    if cleaned != name:
        cleaned += "-" + hashlib.sha256(str(name).encode("utf-8")).hexdigest()[:8]
    return cleaned


def autosave_paths(folder: str | os.PathLike, name: str) -> AutosavePaths:
    """Where the autosave of image ``name`` goes in ``folder``."""
    labels = Path(folder) / f"{safe_name(name)}{SUFFIX}"
    return AutosavePaths(labels, objects_csv_path(labels))


def write_autosave(
    folder: str | os.PathLike,
    name: str,
    labels: np.ndarray,
    rows: Iterable[Mapping[str, Any]],
    *,
    extra: Mapping[str, Any] | None = None,
) -> AutosavePaths:
    """Write one autosave (both files atomically) and return its paths.

    Parameters
    ----------
    folder
        Created if missing.
    name
        The image's name (cleaned with :func:`safe_name` for the file name).
    labels
        Integer label array of any dimensionality (e.g. (H, W) or (Z, H, W)), written with
        its own dtype.
    rows
        Objects-table rows (:data:`~.labels.OBJECT_COLUMNS` plus any extra keys).
    extra
        JSON-able values kept in the metadata (the panel stores the layer's ``scale`` and
        ``translate``).

    Raises
    ------
    ExportError
        Labels that are not an integer array, an unwritable folder, a full disk. The
        previous autosave stays intact.
    """
    import tifffile

    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim < 2:
        raise ExportError(
            f"cannot autosave labels of dtype {labels.dtype} and shape {labels.shape}: "
            "an integer array of at least 2 dimensions is needed."
        )
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot create the autosave folder {folder}: {exc.strerror or exc}."
        ) from exc
    rows = [_jsonable_row(row) for row in rows]
    paths = autosave_paths(folder, name)
    info = {
        "version": FORMAT_VERSION,
        "image": str(name),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dtype": labels.dtype.str,
        "shape": list(labels.shape),
        "rows": rows,
        **{k: _jsonable(v) for k, v in (extra or {}).items()},
    }

    def write(file: IO[bytes]) -> None:
        tifffile.imwrite(
            file,
            labels,
            compression="zlib",
            photometric="minisblack",  # a stack of 3 or 4 planes is not an RGB(A) image
            metadata={"axes": _axes(labels.ndim), METADATA_KEY: info},
        )

    atomic_write(paths.labels, write)
    write_objects_csv(paths.objects, rows)
    return paths


def autosave_info(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an autosave tif (image name, saved_at, rows, shape, dtype, extras).

    Raises
    ------
    RecoveryError
        Missing or unreadable file, or a tif that is not an autosave.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise RecoveryError(f"autosave file {path} does not exist.")
    try:
        with tifffile.TiffFile(path) as tif:
            shaped = tif.shaped_metadata or ()
    except Exception as exc:  # tifffile raises many types for damaged files
        raise RecoveryError(f"cannot read autosave {path}: {exc}") from exc
    info = shaped[0].get(METADATA_KEY) if shaped else None
    if not isinstance(info, dict):
        raise RecoveryError(f"{path} is not a napari-promptseg autosave (no autosave metadata).")
    return info


def load_autosave(path: str | os.PathLike) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Read an autosave back: the label array and the objects rows.

    Rows come from the tif's own metadata, written in the same step as the pixels (the CSV
    beside it is for people). Rows whose object has no pixel left in the labels are
    dropped, as the writer does on export.

    Returns
    -------
    labels
        The array as saved (same shape and dtype).
    rows
        One dict per object, with numbers as numbers.

    Raises
    ------
    RecoveryError
        Missing, truncated or foreign file.
    """
    import tifffile

    path = Path(path)
    info = autosave_info(path)
    try:
        labels = tifffile.imread(path)
    except Exception as exc:
        raise RecoveryError(f"cannot read the labels in autosave {path}: {exc}") from exc
    shape = tuple(info.get("shape", labels.shape))
    if labels.size != math.prod(shape):
        raise RecoveryError(
            f"autosave {path} is damaged: it holds {labels.size} pixels, its metadata says {shape}."
        )
    labels = labels.reshape(shape)
    rows = info.get("rows") or []
    present = set(np.unique(labels).tolist())
    rows = [dict(r) for r in rows if int(r.get("id", 0)) in present]
    return labels, rows


def find_autosaves(folder: str | os.PathLike | None = None) -> list[AutosaveFile]:
    """Autosaves in ``folder`` (default :func:`default_folder`), newest first."""
    folder = Path(folder) if folder is not None else default_folder()
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        previous = path.name.endswith(PREVIOUS_SUFFIX)
        if path.name.startswith(".") or not (previous or path.name.endswith(SUFFIX)):
            continue  # .part files of a write in progress, other files
        try:
            modified = path.stat().st_mtime
        except OSError:
            continue
        try:
            image = str(autosave_info(path).get("image", ""))
        except RecoveryError:
            image = ""
        suffix = PREVIOUS_SUFFIX if previous else SUFFIX
        found.append(AutosaveFile(path, image or path.name[: -len(suffix)], modified, previous))
    return sorted(found, key=lambda f: (f.modified, not f.previous), reverse=True)


class Autosaver:
    """Decides when to autosave and writes in the background.

    Parameters
    ----------
    folder
        Where autosaves go; :func:`default_folder` when None.
    interval_s
        Also save pending changes this often (seconds); None: no periodic saving.
    on_commit
        Save soon after every change (throttled by ``min_gap_s``).
    min_gap_s
        At least this long between two writes; changes in between are saved together.
    on_saved, on_error
        Called with the :class:`AutosavePaths` / an error message after each background
        write, **on the writer thread** (GUI callers forward them to the main thread).
    clock
        Monotonic seconds; replaceable in tests.
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        interval_s: float | None = None,
        on_commit: bool = True,
        *,
        min_gap_s: float = 2.0,
        on_saved: Callable[[AutosavePaths], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s is not None and interval_s <= 0:
            raise ValueError(f"interval_s must be positive; got {interval_s}.")
        self.folder = Path(folder) if folder is not None else default_folder()
        self.interval_s = interval_s
        self.on_commit = on_commit
        self.min_gap_s = float(min_gap_s)
        self.enabled = True
        self.on_saved = on_saved
        self.on_error = on_error
        self.last_error: str | None = None
        self.last_paths: AutosavePaths | None = None
        self._clock = clock
        self._dirty = False
        self._last_write: float | None = None
        self._claimed: set[Path] = set()  # autosave files this saver owns (moved aside once)
        self._lock = threading.Condition()
        self._submitted = 0
        self._finished = 0
        self._runner: LatestOnlyRunner | None = None

    # -- when ------------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Whether there are changes not yet handed to a write."""
        return self._dirty

    def note_change(self) -> None:
        """The labels or objects changed (a commit, undo, redo or a painted stroke)."""
        self._dirty = True

    def discard_changes(self) -> None:
        """Forget pending changes (e.g. their labels layer was closed: nothing left to save)."""
        self._dirty = False

    def due(self) -> bool:
        """Whether the pending changes should be written now."""
        if not (self.enabled and self._dirty) or self.busy:
            return False
        since = None if self._last_write is None else self._clock() - self._last_write
        if self.on_commit and (since is None or since >= self.min_gap_s):
            return True
        return self.interval_s is not None and (since is None or since >= self.interval_s)

    @property
    def busy(self) -> bool:
        """Whether a background write is queued or running."""
        with self._lock:
            return self._finished < self._submitted

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        name: str,
        labels: np.ndarray,
        rows: Iterable[Mapping[str, Any]],
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> AutosavePaths:
        """Write now, on this thread. Raises :class:`ExportError` (previous autosave intact)."""
        self._dirty = False
        self._last_write = self._clock()
        try:
            self._move_aside_earlier_session(name)
            paths = write_autosave(self.folder, name, labels, rows, extra=extra)
        except ExportError as error:
            self._dirty = True  # still unsaved: try again at the next chance
            self.last_error = str(error)
            raise
        self.last_error = None
        self.last_paths = paths
        return paths

    def save_async(
        self,
        name: str,
        labels: np.ndarray,
        rows: Iterable[Mapping[str, Any]],
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Snapshot ``labels`` (a copy, taken here) and ``rows``; write them in the background.

        A snapshot still waiting when a newer one arrives is dropped. The outcome goes to
        ``on_saved`` / ``on_error``.
        """
        snapshot = np.array(labels, copy=True)
        rows = [dict(r) for r in rows]
        extra = dict(extra or {})
        folder = self.folder
        if self._runner is None:
            with self._lock:
                self._submitted = self._finished = 0  # a new runner counts from 0 again
            self._runner = LatestOnlyRunner(self._on_done, name="promptseg-autosave")
        self._dirty = False
        self._last_write = self._clock()

        def job() -> AutosavePaths:
            self._move_aside_earlier_session(name, folder)
            return write_autosave(folder, name, snapshot, rows, extra=extra)

        with self._lock:  # held so _on_done cannot count this job before it is counted here
            self._submitted = self._runner.submit(job)

    def wait(self, timeout: float | None = 30.0) -> bool:
        """Block until every background write finished; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._finished < self._submitted:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def close(self, timeout: float | None = 30.0) -> None:
        """Finish the write in progress and stop the background thread."""
        self.wait(timeout)
        if self._runner is not None:
            self._runner.close(timeout)
            self._runner = None

    def _on_done(self, outcome: JobOutcome) -> None:
        if outcome.error is not None:
            self._dirty = True  # try again at the next chance
            error = outcome.error
            self.last_error = (
                str(error)
                if isinstance(error, PromptSegError)
                else f"{type(error).__name__}: {error}"
            )
            if self.on_error is not None:
                self.on_error(self.last_error)
        else:
            self.last_error = None
            self.last_paths = outcome.result
            if self.on_saved is not None:
                self.on_saved(outcome.result)
        with self._lock:
            # tickets grow with each submit; a snapshot dropped for a newer one never runs,
            # and the newer one's ticket covers it
            self._finished = max(self._finished, outcome.ticket)
            self._lock.notify_all()

    def _move_aside_earlier_session(self, name: str, folder: Path | None = None) -> None:
        """Keep an autosave this saver did not write (an earlier session's) as *.previous."""
        paths = autosave_paths(folder or self.folder, name)
        if paths.labels in self._claimed:
            return
        if paths.labels.exists():
            previous = paths.labels.with_name(paths.labels.name[: -len(SUFFIX)] + PREVIOUS_SUFFIX)
            try:
                os.replace(paths.labels, previous)
                if paths.objects.exists():
                    os.replace(paths.objects, objects_csv_path(previous))
            except OSError as exc:
                raise ExportError(
                    f"cannot keep the earlier autosave {paths.labels}: {exc.strerror or exc}."
                ) from exc
        self._claimed.add(paths.labels)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _jsonable_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _jsonable(v) for k, v in row.items() if k != "index"}


def _axes(ndim: int) -> str:
    return {2: "YX", 3: "ZYX", 4: "TZYX"}.get(ndim, "Q" * (ndim - 2) + "YX")
