"""A folder of images annotated one after another, and where each one's results go.

    <folder>/img_2.png, img_10.tif, ...       the images (tif, tiff, png, jpg, jpeg, bmp),
                                              natural order, hidden files ignored
    <output>/img_2_labels.tif                 label image of img_2.png (uint16, or uint32)
    <output>/img_2_labels_objects.csv         its objects table, one row per object
    <output>/promptseg_progress.json          which images are done or skipped, and why

``output`` defaults to the image folder. Two images with the same stem (``a.png``,
``a.tif``) would share a labels file, so theirs are named after the whole file name
(``a.png_labels.tif``). Label images of listed images found in the image folder are not
listed as images themselves.

**What "done" means** is in :mod:`core.folder_progress`: done (moved on with *Next*),
started (saved without moving on), skipped (with the reason), or todo.
:meth:`ImageFolder.first_not_done` is the first image that is todo or started: where a
reopened folder resumes.

**Same shape.** The images of one folder must have the same shape (the napari panel
reuses one image layer; training sets want it): the first image loaded sets the shape,
kept in the progress file, unless ``shape`` is given. Another shape raises
:class:`ImageError`, which the caller turns into "skipped: <reason>".

Saving never costs earlier results: both files are written completely to hidden files in
the output folder first and only then renamed over the previous ones (see
:func:`core.export.atomic_write`); a failure leaves both previous files as they were.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, ImageError
from .export import read_objects_csv, write_labels_and_objects
from .folder_progress import (
    DONE,
    PROGRESS_NAME,
    SKIPPED,
    STARTED,
    STATES,
    TODO,
    FolderProgress,
    ImageState,
    describe_shape,
)
from .readers import read_image

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
LABELS_SUFFIX = "_labels.tif"
OBJECTS_SUFFIX = "_labels_objects.csv"

_INT_COLUMNS = ("id", "area", "bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1", "candidate")
_FLOAT_COLUMNS = ("predicted_iou", "stability")


@dataclass(frozen=True)
class SavedFiles:
    """The two files :meth:`ImageFolder.save` wrote."""

    labels: Path
    objects: Path


def natural_key(name: str) -> tuple:
    """Sort key putting ``img_2`` before ``img_10`` (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", name.casefold(), flags=re.ASCII)
    # split() alternates text, digits, text...: the types line up between any two names
    return (tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, natural order, without hidden files or our outputs."""
    folder = Path(folder)
    candidates = [
        path
        for path in folder.iterdir()
        if not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
    ]
    # labels of image "a.png" are named after "a" or, when stems are shared, "a.png"
    sources = {path.stem.casefold() for path in candidates}
    sources |= {path.name.casefold() for path in candidates}
    images = [path for path in candidates if not _is_labels_of_another(path, sources)]
    return sorted(images, key=lambda path: natural_key(path.name))


def _is_labels_of_another(path: Path, sources: set[str]) -> bool:
    # "a_labels.tif" beside "a.png" is a result, not an image to annotate
    name = path.name.casefold()
    for suffix in ("_labels.tif", "_labels.tiff"):
        if name.endswith(suffix) and name[: -len(suffix)] in sources:
            return True
    return False


def safe_output_path(output: str | os.PathLike, name: str) -> Path:
    """``output / name``, refusing any ``name`` that could lead outside ``output``.

    Raises
    ------
    ExportError
        ``name`` is not one plain file name (a separator, ``..``, empty), or a link of that
        name in ``output`` points outside it.
    """
    output = Path(output)
    separators = [s for s in (os.sep, os.altsep) if s]
    if (
        not name
        or name in (".", "..")
        or "\x00" in name
        or any(s in name for s in separators)
        or Path(name).is_absolute()
    ):
        raise ExportError(f"refusing to use {name!r} as a file name in {output}: not a plain name.")
    path = output / name
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if target.parent != Path(os.path.realpath(output)):
            raise ExportError(
                f"{path} is a link to {target}, outside the output folder; remove the link."
            )
    return path


class ImageFolder:
    """The images of one folder, their results and their progress.

    Parameters
    ----------
    folder
        Folder holding the images (not searched recursively).
    output
        Folder for labels, objects tables and the progress file; the image folder by
        default. Created if missing.
    shape
        Shape every image must have (as read: (H, W), (H, W, 3), (Z, H, W)...). Default:
        the shape recorded in the progress file, else the first image loaded.

    Raises
    ------
    ImageError
        ``folder`` is not a folder.
    ExportError
        ``output`` cannot be created or is a file.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        output: str | os.PathLike | None = None,
        *,
        shape: tuple[int, ...] | None = None,
    ) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise ImageError(f"the image folder {self.folder} does not exist or is not a folder.")
        self.output = Path(output).expanduser() if output is not None else self.folder
        if self.output.exists() and not self.output.is_dir():
            raise ExportError(f"the output folder {self.output} is a file, not a folder.")
        try:
            self.output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(
                f"cannot create the output folder {self.output}: {exc.strerror or exc}."
            ) from exc
        self.images: tuple[Path, ...] = tuple(list_images(self.folder))
        shared = _shared_stems(self.images)
        self._output_stems = tuple(
            path.name if path.stem.casefold() in shared else path.stem for path in self.images
        )
        self.progress = FolderProgress(self.output, self.folder, shape)
        self.problems = self.progress.problems  # things the user should know

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The shape every image of the folder must have (None until one is loaded)."""
        return self.progress.shape

    # -- listing ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return self.images[self._check_index(index)].name

    def labels_path(self, index: int) -> Path:
        """``output/<stem>_labels.tif`` of image ``index``."""
        return safe_output_path(
            self.output, self._output_stems[self._check_index(index)] + LABELS_SUFFIX
        )

    def objects_path(self, index: int) -> Path:
        """``output/<stem>_labels_objects.csv`` of image ``index``."""
        return safe_output_path(
            self.output, self._output_stems[self._check_index(index)] + OBJECTS_SUFFIX
        )

    @property
    def progress_path(self) -> Path:
        return self.progress.path

    # -- progress -----------------------------------------------------------------------

    def state(self, index: int) -> ImageState:
        """Where image ``index`` stands (see the module notes for the rule)."""
        return self.progress.state(self.name(index), self.labels_path(index).is_file())

    def is_done(self, index: int) -> bool:
        return self.state(index).is_done

    def first_not_done(self, start: int = 0) -> int | None:
        """The first image from ``start`` on that is neither done nor skipped, or None."""
        for index in range(max(start, 0), len(self)):
            if self.state(index).state in (TODO, STARTED):
                return index
        return None

    def counts(self) -> dict[str, int]:
        """How many images are in each state."""
        counts = dict.fromkeys(STATES, 0)
        for index in range(len(self)):
            counts[self.state(index).state] += 1
        return counts

    def mark_skipped(self, index: int, reason: str) -> None:
        """Record that image ``index`` was skipped and why (kept in the progress file).

        Raises
        ------
        ExportError
            The progress file cannot be written; the state is still kept in memory.
        """
        self.progress.mark_skipped(self.name(index), reason)

    # -- reading ------------------------------------------------------------------------

    def load_image(self, index: int) -> np.ndarray:
        """Read image ``index``.

        Raises
        ------
        ImageError
            The file cannot be read, holds no 2D image, or its shape differs from the
            folder's (see ``shape``).
        """
        path = self.images[self._check_index(index)]
        try:
            image = read_image(path)
        except ImageError as error:
            raise ImageError(_unreadable(path, error)) from error
        if image.ndim < 2 or 0 in image.shape:
            raise ImageError(f"{path.name} holds no 2D image (shape {image.shape}).")
        self.progress.check_shape(path.name, image.shape)
        return image

    def load_labels(self, index: int, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The saved labels of image ``index`` to continue from, or None if there are none.

        Parameters
        ----------
        shape
            The image's spatial shape ((H, W) or (Z, H, W)...): saved labels of another
            shape are refused rather than painted over.

        Raises
        ------
        ImageError
            The labels file exists but cannot be read, is not integer or has another shape
            (it is left alone: move it away to start the image afresh).
        """
        path = self.labels_path(index)
        if not path.is_file():
            return None
        try:
            import tifffile

            labels = np.asarray(tifffile.imread(path))
        except Exception as exc:  # any decoder error: name the file, keep the reason
            raise ImageError(
                f"the labels file {path} cannot be read ({exc}); it is left as it is: move it "
                "away to annotate the image afresh."
            ) from exc
        if not np.issubdtype(labels.dtype, np.integer):
            raise ImageError(f"the labels file {path} holds {labels.dtype} values, not object ids.")
        if shape is not None and tuple(labels.shape) != tuple(shape):
            raise ImageError(
                f"the labels file {path} is {describe_shape(labels.shape)}, the image "
                f"{describe_shape(shape)}; it is left as it is: move it away to start afresh."
            )
        return labels

    def load_rows(self, index: int) -> list[dict[str, Any]]:
        """The saved objects table of image ``index`` (numbers parsed), or [] if none.

        Raises
        ------
        ImageError
            The file exists but a number in it cannot be read.
        """
        path = self.objects_path(index)
        if not path.is_file():
            return []
        try:
            raw = read_objects_csv(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ImageError(f"the objects table {path} cannot be read: {exc}.") from exc
        return [_parse_row(row, path, line) for line, row in enumerate(raw, start=2)]

    # -- writing ------------------------------------------------------------------------

    def save(
        self,
        index: int,
        labels: np.ndarray,
        rows: Iterable[Mapping[str, Any]],
        *,
        done: bool = False,
    ) -> SavedFiles:
        """Write the labels and objects table of image ``index``, then its progress.

        Parameters
        ----------
        labels
            Integer labels with the image's spatial shape, 0 = background.
        rows
            Objects-table rows (``id`` first); rows of ids not in ``labels`` are dropped.
        done
            Mark the image done (the user moved on). Otherwise it becomes ``started``,
            unless it was done already.

        Raises
        ------
        ExportError
            Nothing could be written (bad labels, full disk, unwritable folder): the
            previous labels and table are untouched and no temporary file is left.
        """
        labels = np.asarray(labels)
        labels_path, objects_path = self.labels_path(index), self.objects_path(index)
        present = set(np.unique(labels).tolist()) if labels.size else set()
        kept = [dict(row) for row in rows if _row_id(row) in present]
        write_labels_and_objects(labels_path, labels, kept, objects_path)  # both or neither
        self.progress.mark_saved(self.name(index), len(kept), done=done)
        return SavedFiles(labels_path, objects_path)

    # -- helpers ------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self.images):
            raise IndexError(f"image {index} does not exist: the folder has {len(self)} images.")
        return index


def _shared_stems(images: Iterable[Path]) -> set[str]:
    seen: set[str] = set()
    shared: set[str] = set()
    for path in images:
        stem = path.stem.casefold()
        (shared if stem in seen else seen).add(stem)
    return shared


def _row_id(row: Mapping[str, Any]) -> int | None:
    try:
        return int(row["id"])
    except (KeyError, TypeError, ValueError):
        return None


def _parse_row(row: Mapping[str, str], path: Path, line: int) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:
            continue
        try:
            if key in _INT_COLUMNS:
                parsed[key] = int(value)
            elif key in _FLOAT_COLUMNS:
                parsed[key] = float(value) if value != "" else math.nan
            else:
                parsed[key] = value if value is not None else ""
        except (TypeError, ValueError):
            raise ImageError(
                f"{path}, line {line}: {key} {value!r} is not a number; fix or remove the file."
            ) from None
    return parsed


def _unreadable(path: Path, error: ImageError) -> str:
    """A one-line reason (decoders' messages run to several lines of install hints)."""
    cause = error.__cause__
    if cause is None:  # read_image's own message (e.g. the file is gone)
        return str(error)
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot read {path.name}: {cause.strerror}."
    lines = str(cause).strip().splitlines()
    detail = lines[0] if lines else ""
    if "backend" in detail or len(detail) > 120:
        detail = ""  # imageio's "no backend" says nothing about the file itself
    suffix = path.suffix.lower().lstrip(".")
    return f"cannot read {path.name}: damaged, or not a {suffix} image" + (
        f" ({detail})" if detail else "."
    )


__all__ = [
    "DONE",
    "IMAGE_SUFFIXES",
    "PROGRESS_NAME",
    "SKIPPED",
    "STARTED",
    "TODO",
    "FolderProgress",
    "ImageFolder",
    "ImageState",
    "SavedFiles",
    "list_images",
    "natural_key",
    "safe_output_path",
]
