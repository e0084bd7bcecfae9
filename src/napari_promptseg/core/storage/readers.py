"""Reading images and prompt tables from disk (for the CLI and batch scripts).

Prompt CSV formats (one row per prompt; ``object`` groups prompts into one object):

* points: ``object,row,col[,label]`` — label 1/positive (default) or 0/negative;
* boxes: ``object,row0,col0,row1,col1``.

Coordinates are pixel (row, col), as napari shows them. Extra columns are ignored. For a
stack, each row also names its plane with one column per leading axis (``z`` for a
(z, y, x) stack, ``t,z`` for (t, z, y, x); see ``axes``): an object may have prompts on
several planes and is segmented on each of them, under one id.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import numpy as np

from ..errors import ImageError, PromptError

TIFF_SUFFIXES = (".tif", ".tiff")
Row: TypeAlias = dict[str, str]  # one CSV row, header names lower-cased
PathLike: TypeAlias = str | os.PathLike


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a numpy array (tif via tifffile, others via imageio)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file {path} does not exist.")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imageio.v3 as iio

        with warnings.catch_warnings():
            # on a file no plugin reads, imageio tries its legacy DICOM reader, which warns
            # about its own deprecation: noise for our user, the ImageError below says it all
            warnings.filterwarnings("ignore", "The legacy `DICOM` plugin", DeprecationWarning)
            return np.asarray(iio.imread(path))
    except Exception as exc:  # any decoder error: name the file, keep the reason
        raise ImageError(f"cannot read image {path}: {exc}") from exc


@dataclass
class ObjectPrompts:
    """Prompts of one object on one plane from the CSV files, in (row, col)."""

    name: str
    plane: tuple[int, ...] = ()  # indices along the leading axes; () for a 2D image
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None


_LABEL_WORDS = {"1": 1, "positive": 1, "pos": 1, "+": 1, "0": 0, "negative": 0, "neg": 0, "-": 0}


def read_prompt_tables(
    points_csv: str | os.PathLike | None = None,
    boxes_csv: str | os.PathLike | None = None,
    axes: tuple[str, ...] = (),
) -> list[ObjectPrompts]:
    """Group the rows of a points CSV and a boxes CSV by (``object``, plane), in file order.

    ``axes`` names the plane columns (e.g. ``("z",)``); every row must have them.
    """
    groups: dict[tuple[str, tuple[int, ...]], ObjectPrompts] = {}

    def group(row: Row, path: PathLike | None, line: int) -> ObjectPrompts:
        plane = tuple(_index(row, axis, path, line) for axis in axes)
        key = (row["object"], plane)
        return groups.setdefault(key, ObjectPrompts(row["object"], plane))

    for row, line in _rows(points_csv, ("object", *axes, "row", "col")):
        obj = group(row, points_csv, line)
        label_text = (row.get("label") or "1").strip().lower()
        if label_text not in _LABEL_WORDS:
            raise PromptError(
                f"{points_csv}, line {line}: label {row['label']!r} is not 1/0 or positive/negative."
            )
        obj.points.append(
            (_number(row, "row", points_csv, line), _number(row, "col", points_csv, line))
        )
        obj.labels.append(_LABEL_WORDS[label_text])
    for row, line in _rows(boxes_csv, ("object", *axes, "row0", "col0", "row1", "col1")):
        obj = group(row, boxes_csv, line)
        if obj.box is not None:
            where = f" on plane {obj.plane}" if obj.plane else ""
            raise PromptError(
                f"{boxes_csv}, line {line}: object {row['object']!r} has a second box{where}; "
                "one box per object and plane."
            )
        row0, col0, row1, col1 = (
            _number(row, k, boxes_csv, line) for k in ("row0", "col0", "row1", "col1")
        )
        obj.box = (row0, col0, row1, col1)
    return list(groups.values())


def _index(row: Row, column: str, path: PathLike | None, line: int) -> int:
    value = _number(row, column, path, line)
    if value != int(value) or value < 0:
        raise PromptError(f"{path}, line {line}: {column} {row[column]!r} is not a plane index.")
    return int(value)


def _rows(path: PathLike | None, required: Sequence[str]) -> Iterator[tuple[Row, int]]:
    if path is None:
        return
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"prompt file {path} does not exist.")
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise PromptError(
                f"{path}: missing column(s) {', '.join(missing)}; expected header "
                f"{','.join(required)} (found {','.join(header) or 'nothing'})."
            )
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k is not None}
            if not row.get("object"):
                raise PromptError(f"{path}, line {line}: empty object name.")
            yield row, line


def _number(row: Row, column: str, path: PathLike | None, line: int) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise PromptError(
            f"{path}, line {line}: {column} {row.get(column)!r} is not a number."
        ) from None
    if not np.isfinite(value):
        raise PromptError(f"{path}, line {line}: {column} must be finite.")
    return value
