"""The click simulator: where a user would click next to correct a mask.

Rules (the interactive-segmentation protocol of RITM, SAM and micro-sam, made exact):

* **First prompt**: a positive point at the object's *most interior pixel* — the maximum of
  the Euclidean distance transform of its mask — or the object's bounding box.
* **Each next click**: the errors of the current mask split into connected regions (4-connected)
  of *missed* pixels (object, not in the mask) and *spilled* pixels (mask, not object). The
  click goes to the most interior pixel of the largest region: positive if it was missed,
  negative if the mask spilled there.
* **Ties** are broken deterministically: the larger region wins; between regions of equal area
  a missed one before a spilled one, then the one whose first pixel comes first in row-major
  order; within a region, the first pixel (row-major) with the largest distance.
* **Distances** treat the image border as outside, so a click never sits on the border when a
  pixel further in exists.

All arrays are (H, W) in napari's (row, col) frame. The work is confined to the bounding box
of the pixels involved (plus a one-pixel margin), which gives exactly the full-image result:
any pixel outside that box is at least as far as the margin, which is background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from ...errors import PromptError
from ...labels import bounding_box
from ...sam.prompts import NEGATIVE, POSITIVE, Prompts

Start = Literal["point", "box"]
STARTS: tuple[str, ...] = ("point", "box")


@dataclass(frozen=True)
class Click:
    """One simulated click at pixel (``row``, ``col``); ``positive`` adds, negative removes."""

    row: int
    col: int
    positive: bool

    @property
    def label(self) -> int:
        """SAM's point label: 1 positive, 0 negative."""
        return POSITIVE if self.positive else NEGATIVE

    def text(self) -> str:
        """``"+12,40"`` or ``"-3,5"`` (sign, row, col), as the report writes clicks."""
        return f"{'+' if self.positive else '-'}{self.row},{self.col}"


def most_interior_pixel(mask: np.ndarray) -> tuple[int, int]:
    """(row, col) of the pixel of ``mask`` farthest from its outside (image border included).

    Parameters
    ----------
    mask
        (H, W) bool, not empty.

    Raises
    ------
    PromptError
        An empty mask (there is no pixel to click).
    """
    mask = np.asarray(mask, dtype=bool)
    window = _window(mask)
    if window is None:
        raise PromptError("an empty mask has no interior pixel.")
    crop = mask[window]
    distance = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), crop.shape)  # first maximum
    return int(row) + window[0].start, int(col) + window[1].start


def first_prompt(object_mask: np.ndarray, start: str = "point") -> tuple[Prompts, Click | None]:
    """The first prompt for an object: a positive click at its most interior pixel, or its box.

    The box is the tight box around the object's pixels: from the outer edge of its first
    row/column to the outer edge of its last, in napari's frame where pixel centres are
    integers (so a one-pixel object gives a 1 x 1 box).

    Returns
    -------
    (prompts, click)
        ``click`` is None for a box start.
    """
    if start not in STARTS:
        raise PromptError(f"the first prompt is one of {', '.join(STARTS)}; got {start!r}.")
    if start == "box":
        row0, col0, row1, col1 = bounding_box(np.asarray(object_mask, dtype=bool))
        if row1 == row0:
            raise PromptError("an empty mask has no bounding box.")
        box = np.array([row0 - 0.5, col0 - 0.5, row1 - 0.5, col1 - 0.5])
        return Prompts(box=box), None
    row, col = most_interior_pixel(object_mask)
    click = Click(row, col, positive=True)
    return Prompts.from_points([[row, col]]), click


def next_click(object_mask: np.ndarray, predicted: np.ndarray) -> Click | None:
    """The correcting click for ``predicted`` against ``object_mask``; None if they agree.

    Parameters
    ----------
    object_mask
        (H, W) bool: the ground-truth object.
    predicted
        (H, W) bool: the current mask.
    """
    object_mask = np.asarray(object_mask, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    if object_mask.shape != predicted.shape:
        raise PromptError(
            f"mask shape {predicted.shape} does not match the object's {object_mask.shape}."
        )
    window = _window(object_mask | predicted)
    if window is None:
        return None
    truth, guess = object_mask[window], predicted[window]
    best: tuple[int, int, int] | None = None  # (-area, missed 0 / spilled 1, region number)
    regions = []
    for kind, errors in enumerate((truth & ~guess, guess & ~truth)):
        numbered, count = ndimage.label(errors)  # 4-connected, numbered in row-major order
        regions.append(numbered)
        if count == 0:
            continue
        areas = np.bincount(numbered.ravel(), minlength=count + 1)[1:]
        number = int(np.argmax(areas))  # the first of the largest
        candidate = (-int(areas[number]), kind, number + 1)
        if best is None or candidate < best:
            best = candidate
    if best is None:
        return None
    _, kind, number = best
    row, col = most_interior_pixel(regions[kind] == number)
    return Click(row + window[0].start, col + window[1].start, positive=kind == 0)


def mask_iou(object_mask: np.ndarray, predicted: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks (1.0 when both are empty)."""
    object_mask = np.asarray(object_mask, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    intersection = np.count_nonzero(object_mask & predicted)
    union = np.count_nonzero(object_mask) + np.count_nonzero(predicted) - intersection
    return 1.0 if union == 0 else float(intersection) / float(union)


def _window(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of ``mask`` widened by one pixel (within the image); None if empty."""
    row0, col0, row1, col1 = bounding_box(mask)
    if row1 == row0:
        return None
    height, width = mask.shape
    return (
        slice(max(row0 - 1, 0), min(row1 + 1, height)),
        slice(max(col0 - 1, 0), min(col1 + 1, width)),
    )
