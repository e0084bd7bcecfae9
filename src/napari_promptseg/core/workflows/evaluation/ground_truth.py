"""Ground-truth label images for evaluation: checked once, then read object by object.

A ground truth is an integer label image the shape of the image's planes: (H, W) for a 2D
image (gray or RGB), (Z, H, W) for a z-stack, (T, Z, H, W) for a time series of stacks; 0 is
background, every other id one object. Objects are evaluated plane by plane: an id present
on three planes of a stack is three evaluated objects (one per plane), because SAM segments
2D planes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ...errors import PromptSegError
from ...storage.classes import row_class

PlaneLabel = tuple[int, ...]  # indices along the leading (non-spatial) axes; () for 2D


class EvaluationError(PromptSegError, ValueError):
    """The ground truth (or the evaluation's settings) cannot be used: says which and why."""


@dataclass(frozen=True)
class GroundTruthObject:
    """One object of one plane: its id and the rows/columns it spans.

    Attributes
    ----------
    label_id
        The id in the label image.
    window
        (rows, cols) slices of its bounding box in the plane.
    area
        Its number of pixels.
    """

    label_id: int
    window: tuple[slice, slice]
    area: int

    def mask(self, plane: np.ndarray) -> np.ndarray:
        """Its (H, W) bool mask in ``plane`` (the plane's label image)."""
        mask = np.zeros(plane.shape, dtype=bool)
        mask[self.window] = plane[self.window] == self.label_id
        return mask


def check_ground_truth(
    labels: np.ndarray, planes_shape: tuple[int, ...], plane_shape: tuple[int, int]
) -> np.ndarray:
    """Refuse a ground truth that cannot be evaluated; return it as an integer array.

    Parameters
    ----------
    labels
        The label image, ``(*planes_shape, H, W)``. Bool is taken as one object (id 1).
    planes_shape
        Sizes of the image's leading axes: () for a 2D image, (Z,) for a stack...
    plane_shape
        (H, W) of the image's planes.

    Raises
    ------
    EvaluationError
        Another shape than the image's planes, a non-integer dtype, negative ids, no object
        at all, or one object covering a whole plane (nothing to tell it from).
    """
    labels = np.asarray(labels)
    expected = (*planes_shape, *plane_shape)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise EvaluationError(
            f"the ground truth must be a label image of integer ids; got dtype {labels.dtype}."
        )
    if labels.shape != expected:
        raise EvaluationError(
            f"the ground truth has shape {labels.shape} but the image's planes need {expected} "
            "(leading axes, then rows and columns)."
        )
    if labels.size and labels.min() < 0:
        raise EvaluationError(
            "the ground truth holds negative ids; ids are 0 (background) or more."
        )
    if not labels.any():
        raise EvaluationError("the ground truth is empty: it holds no object (every pixel is 0).")
    for index in np.ndindex(*planes_shape):
        plane = labels[index]
        first = plane.flat[0]
        if first != 0 and (plane == first).all():
            where = f" of plane {index}" if index else ""
            raise EvaluationError(
                f"object {int(first)} covers the whole image{where}: there is no background to "
                "evaluate it against."
            )
    return labels


def plane_objects(plane: np.ndarray) -> list[GroundTruthObject]:
    """The objects of an (H, W) label plane, by increasing id."""
    plane = np.asarray(plane)
    top = int(plane.max()) if plane.size else 0
    if top <= 0:
        return []
    ids = np.unique(plane)
    ids = ids[ids > 0]
    areas = ndimage.sum_labels(np.ones(plane.shape, dtype=np.int64), plane, ids)
    if top <= 4 * len(ids) + 1024:  # dense ids: one pass gives every bounding box
        windows = ndimage.find_objects(plane, max_label=top)
        found = [windows[int(i) - 1] for i in ids]
    else:  # sparse large ids: relabel first so find_objects stays small
        dense = np.searchsorted(ids, plane) + 1
        dense[plane == 0] = 0
        found = ndimage.find_objects(dense, max_label=len(ids))
    return [
        GroundTruthObject(int(i), (w[0], w[1]), int(a))
        for i, w, a in zip(ids, found, areas, strict=True)
        if w is not None
    ]


def object_planes(labels: np.ndarray, planes_shape: tuple[int, ...]) -> Iterator[PlaneLabel]:
    """The planes of ``labels`` that hold at least one object, in row-major order."""
    for index in np.ndindex(*planes_shape):
        if labels[index].any():
            yield tuple(int(i) for i in index)


def classes_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """``id → class name`` from objects-table rows (the ``class`` column, see ``row_class``).

    Empty names (no class given) are left out. Ids that are not whole numbers are skipped:
    such a row describes no object of a label image.
    """
    classes: dict[int, str] = {}
    for row in rows:
        name = row_class(row)
        try:
            label_id = float(row["id"])
        except (KeyError, TypeError, ValueError):
            continue
        if name and math.isfinite(label_id) and label_id == int(label_id):
            classes.setdefault(int(label_id), name)
    return classes
