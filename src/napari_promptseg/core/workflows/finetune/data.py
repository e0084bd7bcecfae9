"""Training data for finetuning: (image plane, labels plane) pairs, checked and split.

A :class:`TrainingPlane` is one 2D plane as SAM sees it ((H, W, 3) uint8, converted with
:func:`..sam.image.to_rgb_uint8` exactly as the widget converts what the user sees) and its
instance labels ((H, W) integers, 0 = background, every other id one object). Planes come
from the session's committed objects (the napari side builds them) or from folders of
image/label pairs (:func:`planes_from_folder`, the layout the *Image folder* workflow writes,
or two folders with the same file names).

Validation is held out by plane when there are enough planes (the honest test: images the
model has not seen), otherwise by object within the planes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ImageError, PromptSegError
from ...sam.image import to_rgb_uint8
from ...storage.folder import LABELS_SUFFIX, list_images
from ...storage.readers import read_image

#: Fewest annotated objects a finetune accepts: fewer cannot be split into training and
#: validation objects that say anything.
MIN_OBJECTS = 10
#: Objects smaller than this (pixels) are left out: at SAM's mask resolution (a quarter of
#: the 1024-pixel input) they are a speck or nothing.
MIN_OBJECT_AREA = 12
#: With at least this many planes holding objects, whole planes are held out for validation.
MIN_PLANES_FOR_PLANE_SPLIT = 4


class TrainingDataError(PromptSegError, ValueError):
    """The training data cannot be used: says which file or plane and why."""


@dataclass(eq=False)
class TrainingPlane:
    """One annotated plane.

    Attributes
    ----------
    rgb
        (H, W, 3) uint8, as SAM sees the plane.
    labels
        (H, W) integer instance labels; 0 = background.
    source
        Where it came from, for messages and the data summary (a file name, "plane (3,)").
    holdout
        Object ids of this plane kept for validation (set by :func:`split_planes` when
        splitting by object); empty when the plane is wholly training or validation.
    """

    rgb: np.ndarray
    labels: np.ndarray
    source: str
    holdout: frozenset[int] = frozenset()

    def object_ids(self, *, min_area: int = MIN_OBJECT_AREA) -> list[int]:
        """Ids with at least ``min_area`` pixels, increasing."""
        ids, counts = np.unique(self.labels[self.labels > 0], return_counts=True)
        return [int(i) for i, c in zip(ids, counts, strict=True) if c >= min_area]


def make_plane(
    image: np.ndarray,
    labels: np.ndarray,
    source: str,
    *,
    contrast_limits: tuple[float, float] | None = None,
) -> TrainingPlane:
    """Check one (image, labels) pair and convert the image for SAM.

    Parameters
    ----------
    image
        (H, W) gray, or (H, W, 3|4) RGB(A); any dtype ``to_rgb_uint8`` takes.
    labels
        (H, W) integer ids; bool is taken as one object.

    Raises
    ------
    TrainingDataError
        Labels of another shape than the image, or not integer ids, or negative ids.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    plane_shape = image.shape[:2]
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.shape != plane_shape:
        raise TrainingDataError(
            f"{source}: the labels are {_shape_text(labels.shape)}, the image "
            f"{_shape_text(plane_shape)}; they must have the same rows and columns."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TrainingDataError(
            f"{source}: the labels hold {labels.dtype} values, not integer object ids."
        )
    if labels.size and labels.min() < 0:
        raise TrainingDataError(f"{source}: the labels hold negative ids.")
    try:
        rgb = to_rgb_uint8(image, contrast_limits=contrast_limits, rgb=image.ndim == 3)
    except ImageError as error:
        raise TrainingDataError(f"{source}: {error}") from None
    return TrainingPlane(rgb=rgb, labels=labels.astype(np.int64, copy=False), source=source)


def planes_from_stack(
    image: np.ndarray,
    labels: np.ndarray,
    source: str,
    *,
    contrast_limits: tuple[float, float] | None = None,
) -> list[TrainingPlane]:
    """The planes of a 2D image or a stack ((Z, H, W), (T, Z, H, W)) that hold objects.

    ``image`` and ``labels`` must have the same shape, except that an RGB image has a
    trailing axis of 3 or 4 the labels do not have.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    is_rgb = image.ndim == labels.ndim + 1 and image.shape[-1] in (3, 4)
    spatial = image.shape[:-1] if is_rgb else image.shape
    if labels.shape != spatial:
        raise TrainingDataError(
            f"{source}: the labels are {_shape_text(labels.shape)}, the image "
            f"{_shape_text(spatial)}; they must have the same shape."
        )
    if labels.ndim < 2:
        raise TrainingDataError(f"{source}: holds no 2D image (shape {image.shape}).")
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise TrainingDataError(
            f"{source}: the labels hold {labels.dtype} values, not integer object ids."
        )
    if contrast_limits is None and labels.ndim > 2 and image.dtype != np.uint8:
        # one contrast for the whole stack, as napari shows it
        finite = image[np.isfinite(image)] if image.dtype.kind == "f" else image
        if finite.size:
            contrast_limits = (float(finite.min()), float(finite.max()))
    planes = []
    for index in np.ndindex(*labels.shape[:-2]):
        if not labels[index].any():
            continue
        name = f"{source} plane {index}" if index else source
        planes.append(
            make_plane(image[index], labels[index], name, contrast_limits=contrast_limits)
        )
    return planes


def find_labels_file(image_path: Path, labels_folder: Path) -> Path | None:
    """The labels of ``image_path`` in ``labels_folder``, or None.

    Looked for as ``<stem>_labels.tif`` (what the Image folder workflow and
    ``promptseg segment`` write), ``<name>_labels.tif``, then a file of the same name or
    stem with any image suffix (two folders, ``images/`` and ``masks/``).
    """
    candidates = [
        labels_folder / f"{image_path.stem}{LABELS_SUFFIX}",
        labels_folder / f"{image_path.name}{LABELS_SUFFIX}",
    ]
    if labels_folder.resolve() != image_path.parent.resolve():
        candidates.append(labels_folder / image_path.name)
        candidates += [
            labels_folder / f"{image_path.stem}{suffix}" for suffix in (".tif", ".tiff", ".png")
        ]
    return next((path for path in candidates if path.is_file()), None)


def planes_from_folder(
    images: str | os.PathLike, labels: str | os.PathLike | None = None
) -> tuple[list[TrainingPlane], list[str]]:
    """Image/label pairs of a folder.

    Parameters
    ----------
    images
        Folder of images (tif, png, jpg, bmp; not searched recursively).
    labels
        Folder of their label images (default: the image folder); see
        :func:`find_labels_file` for the names looked for.

    Returns
    -------
    (planes, skipped)
        The planes holding objects, and one line per image left out and why.

    Raises
    ------
    TrainingDataError
        A folder is missing; a labels file is unreadable, not integer, or of another shape
        than its image (named, with both shapes).
    """
    image_folder = Path(images).expanduser()
    labels_folder = Path(labels).expanduser() if labels is not None else image_folder
    for folder, what in ((image_folder, "image"), (labels_folder, "labels")):
        if not folder.is_dir():
            raise TrainingDataError(f"the {what} folder {folder} does not exist.")
    planes: list[TrainingPlane] = []
    skipped: list[str] = []
    for path in list_images(image_folder):
        labels_path = find_labels_file(path, labels_folder)
        if labels_path is None:
            skipped.append(f"{path.name}: no labels file")
            continue
        try:
            image = read_image(path)
            label_image = read_image(labels_path)
        except ImageError as error:
            raise TrainingDataError(str(error)) from None
        found = planes_from_stack(image, label_image, path.name)
        if not found:
            skipped.append(f"{path.name}: its labels hold no object")
        planes += found
    return planes, skipped


def count_objects(planes: Iterable[TrainingPlane]) -> int:
    """Objects large enough to train on, over all planes."""
    return sum(len(plane.object_ids()) for plane in planes)


def check_enough(planes: Sequence[TrainingPlane], minimum: int = MIN_OBJECTS) -> int:
    """The number of usable objects; :class:`TrainingDataError` with the minimum if too few."""
    count = count_objects(planes)
    if count < minimum:
        where = f"in {len(planes)} plane{'s' if len(planes) != 1 else ''}"
        raise TrainingDataError(
            f"finetuning needs at least {minimum} annotated objects (of at least "
            f"{MIN_OBJECT_AREA} pixels); found {count} {where}. Commit more objects first."
        )
    return count


def split_planes(
    planes: Sequence[TrainingPlane], validation_fraction: float, seed: int
) -> tuple[list[TrainingPlane], list[TrainingPlane]]:
    """(training, validation) planes; held-out planes, or held-out objects of every plane.

    With :data:`MIN_PLANES_FOR_PLANE_SPLIT` planes or more, whole planes (at least one) go
    to validation. Otherwise each plane appears in both lists: the validation copy's
    ``holdout`` names its validation objects, and the training copy has them erased from
    its labels, so no validation object is ever trained on.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise TrainingDataError(
            f"the validation fraction must lie between 0 and 1; got {validation_fraction}."
        )
    rng = np.random.default_rng(seed)
    usable = [plane for plane in planes if plane.object_ids()]
    if len(usable) >= MIN_PLANES_FOR_PLANE_SPLIT:
        order = rng.permutation(len(usable))
        n_val = max(1, round(validation_fraction * len(usable)))
        val = [usable[i] for i in sorted(order[:n_val])]
        train = [usable[i] for i in sorted(order[n_val:])]
        return train, val
    train, val = [], []
    for plane in usable:
        ids = plane.object_ids()
        n_val = max(1, round(validation_fraction * len(ids))) if len(ids) > 1 else 0
        held = frozenset(int(i) for i in rng.choice(ids, size=n_val, replace=False))
        if held:
            val.append(TrainingPlane(plane.rgb, plane.labels, plane.source, holdout=held))
        kept = (
            np.where(np.isin(plane.labels, list(held)), 0, plane.labels) if held else plane.labels
        )
        train.append(TrainingPlane(plane.rgb, kept, plane.source))
    return train, val


def validation_labels(plane: TrainingPlane) -> np.ndarray:
    """The labels to validate on: the held-out objects, or every object large enough."""
    ids = plane.holdout or plane.object_ids()
    return np.where(np.isin(plane.labels, list(ids)), plane.labels, 0)


def _shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(int(n)) for n in shape)
