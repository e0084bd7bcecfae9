"""Writing label images and objects tables, atomically.

Every writer goes through :func:`.files.atomic_write`: the data goes to a temporary file in the
target folder, is flushed to disk, then renamed over the target in one step. An export that
fails or is interrupted midway leaves the previous file as it was, never half a file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ExportError
from ..labels import OBJECT_COLUMNS, smallest_dtype_for
from .files import atomic_write

LABEL_SUFFIXES = (".tif", ".tiff")


def label_image_for_export(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint16 when every id fits, else uint32 (uint64 beyond).

    Raises
    ------
    ExportError
        Non-integer labels or negative ids.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ExportError(f"label images must hold integer ids; got dtype {labels.dtype}.")
    if labels.size and labels.min() < 0:
        raise ExportError("label images cannot hold negative ids.")
    max_id = int(labels.max()) if labels.size else 0
    return labels.astype(smallest_dtype_for(max_id), copy=False)


def write_labels_tif(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write a 2D or nD label image as a zlib-compressed tif (uint16 or uint32), atomically."""
    import tifffile

    path = Path(path)
    if path.suffix.lower() not in LABEL_SUFFIXES:
        raise ExportError(f"label images are written as .tif/.tiff; got {path.name}.")
    data = label_image_for_export(labels)

    def write(file: IO[bytes]) -> None:
        # minisblack: a (3, H, W) or (4, H, W) stack of labels is not an RGB picture
        tifffile.imwrite(
            file,
            data,
            compression="zlib",
            photometric="minisblack",
            metadata={"axes": _axes(data.ndim)},
        )

    return atomic_write(path, write)


def write_objects_csv(
    path: str | os.PathLike,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> Path:
    """Write the objects table as CSV (one row per object), atomically.

    Columns default to :data:`OBJECT_COLUMNS` followed by any extra keys in the rows.
    """
    rows = list(rows)
    if columns is None:
        extra = [key for row in rows for key in row if key not in OBJECT_COLUMNS]
        columns = list(OBJECT_COLUMNS) + list(dict.fromkeys(extra))
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key, "")) for key in columns})
    payload = buffer.getvalue().encode("utf-8")
    return atomic_write(path, lambda file: file.write(payload))


def write_labels_and_objects(
    labels_path: str | os.PathLike,
    labels: np.ndarray,
    rows: Iterable[Mapping[str, Any]],
    objects_path: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write a label image and its objects table together: both new files, or neither.

    Each file is first written completely beside its target (a hidden staging name), then
    both are renamed over the targets, so a failure (full disk, unwritable folder) leaves
    the previous pair as it was and never a new image beside an old table.
    """
    labels_path = Path(labels_path)
    objects_path = Path(objects_path) if objects_path is not None else objects_csv_path(labels_path)
    staged_labels = labels_path.with_name(f".{labels_path.name}.saving{labels_path.suffix}")
    staged_objects = objects_path.with_name(f".{objects_path.name}.saving")
    try:
        write_labels_tif(staged_labels, labels)
        write_objects_csv(staged_objects, rows)
        os.replace(staged_labels, labels_path)
        os.replace(staged_objects, objects_path)
    except BaseException as exc:
        for staged in (staged_labels, staged_objects):
            with contextlib.suppress(OSError):
                staged.unlink()
        if not isinstance(exc, OSError):  # ExportError is an OSError too
            raise
        # name the file the user asked for, not the staging file
        which = objects_path if staged_objects.name in str(exc) else labels_path
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        detail = cause.strerror or str(exc).split(": ", 1)[-1].rstrip(".")
        raise ExportError(f"cannot write {which}: {detail}.") from exc
    return labels_path, objects_path


def objects_csv_path(labels_path: str | os.PathLike) -> Path:
    """Where the objects table of a label image goes: ``cells.tif`` → ``cells_objects.csv``."""
    labels_path = Path(labels_path)
    return labels_path.with_name(f"{labels_path.stem}_objects.csv")


def read_objects_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of an objects CSV as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _axes(ndim: int) -> str:
    return {2: "YX", 3: "ZYX", 4: "TZYX"}.get(ndim, "Q" * (ndim - 2) + "YX")
