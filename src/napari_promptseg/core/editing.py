"""Editing objects that already exist in a label image: pure functions, no napari.

An object picked for editing becomes SAM's starting point: its mask as the decoder's
low-resolution mask input (:func:`mask_input_from_mask`) and its bounding box
(:func:`mask_box`). What the user then commits is described as pixel writes on one plane
(:class:`PlaneEdit`): replace an object in place under its own id, delete it, merge another
object into it, split a part off it under a new id. Each function checks its input and raises
:class:`EditError` with a message naming the problem; none of them changes its input. The
napari side applies a :class:`PlaneEdit` as one undo step; the rows below follow it.

All planes are (H, W) integer label images in napari's (row, col) frame; 0 is background.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .errors import PromptError
from .labels import OBJECT_COLUMNS, LabelsError, bounding_box, object_row

ENCODER_SIZE = 1024  # SAM's (and SAM 2.1's) square encoder input
LOW_RES = 256  # the decoder's mask input: ENCODER_SIZE / 4
# A clear inside/outside: probabilities clipped to [eps, 1 - eps] give logits of ±6.9, the
# values micro-sam uses when it prompts with a mask; cells wholly in the padding stay 0.
MASK_EPS = 1e-3


class EditError(LabelsError):
    """An edit cannot be made as asked (background picked, object missing, nothing left)."""


@dataclass(frozen=True)
class PlaneEdit:
    """Pixel writes on one (H, W) plane of labels.

    Attributes
    ----------
    rows, cols
        (N,) pixel coordinates on the plane.
    values
        (N,) the labels written there.
    before
        (N,) the labels there before (to check or undo the edit).
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    before: np.ndarray

    @classmethod
    def of(cls, plane: np.ndarray, where: np.ndarray, values: np.ndarray | int) -> PlaneEdit:
        """Writes of ``values`` at the True pixels of the (H, W) bool ``where``."""
        rows, cols = np.nonzero(where)
        new = np.broadcast_to(np.asarray(values, dtype=np.int64), where.shape)[rows, cols]
        changed = plane[rows, cols].astype(np.int64) != new
        rows, cols, new = rows[changed], cols[changed], new[changed]
        return cls(rows, cols, new.copy(), plane[rows, cols].astype(np.int64))

    @property
    def size(self) -> int:
        return len(self.rows)

    def apply(self, plane: np.ndarray) -> np.ndarray:
        """A copy of ``plane`` with the writes made (same dtype)."""
        out = np.array(plane, copy=True)
        out[self.rows, self.cols] = self.values.astype(out.dtype)
        return out

    def probes(self, count: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Up to ``count`` of the writes, spread evenly: (rows, cols, values, before).

        Enough to tell later whether the edit is in the labels (it was undone or not).
        """
        pick = np.unique(np.linspace(0, self.size - 1, min(count, self.size)).astype(np.intp))
        return self.rows[pick], self.cols[pick], self.values[pick], self.before[pick]


# -- picking ------------------------------------------------------------------------------


def object_at(plane: np.ndarray, row: float, col: float, *, layer_name: str = "labels") -> int:
    """The object id at (``row``, ``col``) (rounded to the pixel) of an (H, W) label plane.

    Raises
    ------
    EditError
        Outside the plane, or background (0) there.
    """
    plane = np.asarray(plane)
    if not np.issubdtype(plane.dtype, np.integer):
        raise EditError(f"{layer_name!r} is not a label image: dtype {plane.dtype}.")
    r, c = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))
    height, width = plane.shape
    if not (0 <= r < height and 0 <= c < width):
        raise EditError(
            f"({row:.0f}, {col:.0f}) is outside {layer_name!r} ({height}x{width}): "
            "click on an object to edit it."
        )
    object_id = int(plane[r, c])
    if object_id == 0:
        raise EditError(
            f"no object at ({r}, {c}) in {layer_name!r}: that pixel is background; "
            "click inside an object to edit it."
        )
    return object_id


def object_mask(plane: np.ndarray, object_id: int) -> np.ndarray:
    """(H, W) bool: the pixels of ``object_id``."""
    return np.asarray(plane) == object_id


# -- SAM's starting point -----------------------------------------------------------------


def mask_box(mask: np.ndarray) -> np.ndarray:
    """The box prompt around a mask: (row0, col0, row1, col1) from the outer edge of its
    first row/column to the outer edge of its last (pixel centres are integers), so a
    one-pixel object gives a 1 x 1 box."""
    row0, col0, row1, col1 = bounding_box(np.asarray(mask, dtype=bool))
    if row1 == row0:
        raise PromptError("an empty mask has no bounding box.")
    return np.array([row0 - 0.5, col0 - 0.5, row1 - 0.5, col1 - 0.5])


def box_covering(box: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``box`` (row0, col0, row1, col1) grown to cover (N, 2) (row, col) ``points``."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(points) == 0:
        return np.asarray(box, dtype=float)
    low = np.minimum(box[:2], points.min(axis=0) - 0.5)
    high = np.maximum(box[2:], points.max(axis=0) + 0.5)
    return np.concatenate([low, high])


def mask_input_from_mask(
    mask: np.ndarray, input_size: tuple[int, int], *, encoder_size: int = ENCODER_SIZE
) -> np.ndarray:
    """SAM's low-resolution mask input for an (H, W) bool mask: (1, 256, 256) float32 logits.

    The mask goes through the image's own geometry: resized to ``input_size`` (h, w) — the
    image after its longest side was scaled to the encoder size, or the whole square for
    SAM 2.1 — then placed top-left in the encoder's square and averaged down by 4, the inverse
    of how the decoder's low-res logits are upscaled to the image. Covered fractions become
    logits of ±6.9; cells wholly in the padding are 0, as micro-sam pads them.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.size == 0:
        raise PromptError(f"a mask input comes from one (H, W) mask; got shape {mask.shape}.")
    height, width = (int(s) for s in input_size)
    if not (0 < height <= encoder_size and 0 < width <= encoder_size):
        raise PromptError(f"input size {input_size} does not fit the encoder's {encoder_size}.")
    factor = encoder_size // LOW_RES
    source = torch.from_numpy(mask.astype(np.float32))[None, None]
    resized = F.interpolate(
        source, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    inside = torch.ones_like(resized)
    pad = (0, encoder_size - width, 0, encoder_size - height)
    covered = F.avg_pool2d(F.pad(resized, pad), factor)[0, 0].numpy()
    coverage = F.avg_pool2d(F.pad(inside, pad), factor)[0, 0].numpy()
    logits = np.zeros((LOW_RES, LOW_RES), dtype=np.float32)
    cells = coverage > 0
    probability = np.clip(covered[cells] / coverage[cells], MASK_EPS, 1 - MASK_EPS)
    logits[cells] = np.log(probability / (1 - probability))
    return logits[None]


# -- pixel edits ---------------------------------------------------------------------------


def replace_object(
    plane: np.ndarray, object_id: int, mask: np.ndarray, *, overwrite: bool = False
) -> PlaneEdit:
    """Object ``object_id`` becomes ``mask``, under its own id.

    Its pixels outside ``mask`` become background; ``mask`` takes background and the
    object's own pixels, and other objects' pixels only with ``overwrite``.
    """
    plane, mask = _checked(plane, mask)
    own = plane == object_id
    if not own.any():
        raise EditError(f"object {object_id} is not on this plane (any more): pick it again.")
    takes = mask & (own | (plane == 0) | overwrite)
    if not takes.any():
        raise EditError(
            f"the new mask of object {object_id} lies entirely on other objects: tick "
            "'overwrite existing objects', or use Delete to remove the object."
        )
    values = np.where(takes, object_id, 0)
    return PlaneEdit.of(plane, takes | own, values)


def delete_object(plane: np.ndarray, object_id: int) -> PlaneEdit:
    """Object ``object_id``'s pixels on this plane become background."""
    plane = np.asarray(plane)
    own = plane == object_id
    if not own.any():
        raise EditError(f"object {object_id} is not on this plane: nothing to delete.")
    return PlaneEdit.of(plane, own, 0)


def merge_objects(plane: np.ndarray, keep_id: int, other_id: int) -> PlaneEdit:
    """Object ``other_id``'s pixels join object ``keep_id`` (which keeps its id)."""
    plane = np.asarray(plane)
    if keep_id == other_id:
        raise EditError(f"object {keep_id} cannot be merged with itself: pick another object.")
    for object_id in (keep_id, other_id):
        if not (plane == object_id).any():
            raise EditError(f"object {object_id} is not on this plane: nothing to merge.")
    return PlaneEdit.of(plane, plane == other_id, keep_id)


def split_object(plane: np.ndarray, object_id: int, part: np.ndarray, new_id: int) -> PlaneEdit:
    """The pixels of object ``object_id`` inside ``part`` become object ``new_id``; the rest
    keeps ``object_id``. A split never takes pixels from the background or other objects."""
    plane, part = _checked(plane, part)
    own = plane == object_id
    taken = own & part
    if not taken.any():
        raise EditError(
            f"the mask shown covers none of object {object_id}: prompt the part to split off "
            "inside the object."
        )
    if (taken == own).all():
        raise EditError(
            f"the mask shown covers all of object {object_id}: nothing would keep its id; "
            "prompt only the part to split off."
        )
    limit = np.iinfo(plane.dtype).max
    if new_id > limit:
        raise EditError(
            f"no free id for the part: the labels' dtype {plane.dtype} ends at {limit}."
        )
    return PlaneEdit.of(plane, taken, new_id)


def _checked(plane: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    plane, mask = np.asarray(plane), np.asarray(mask, dtype=bool)
    if plane.shape != mask.shape:
        raise EditError(f"mask shape {mask.shape} does not match the labels' plane {plane.shape}.")
    return plane, mask


# -- objects-table rows -------------------------------------------------------------------


def edited_row(
    previous: Mapping[str, Any] | None,
    label_id: int,
    painted: np.ndarray,
    *,
    slice_index: tuple[int, ...] | None,
    **decoded: Any,
) -> dict[str, Any]:
    """The row of an object after an edit: ``edited`` set, area and box of ``painted`` (the
    (H, W) pixels it has now), the other columns of ``previous`` kept (a foreign table's own
    columns, its class) unless ``decoded`` gives them anew.

    ``decoded`` takes :func:`~napari_promptseg.core.labels.object_row`'s keywords
    (``predicted_iou``, ``stability``, ``prompts``, ``candidate``, ``model``, ``class_name``)
    for a mask SAM just decoded; without them the object keeps its scores.
    """
    previous = dict(previous or {})
    from_sam = "predicted_iou" in decoded
    fresh = object_row(
        label_id,
        painted,
        predicted_iou=decoded.pop("predicted_iou", _number(previous.get("predicted_iou"))),
        stability=decoded.pop("stability", _number(previous.get("stability"))),
        slice_index=slice_index,
        **{"class_name": _text(previous.get("class")), **decoded},
    )
    if not from_sam:  # only the pixels changed: what SAM said of the object still stands
        for column in ("prompts", "model", "candidate"):
            if column in previous:
                fresh[column] = previous[column]
    extras = {k: v for k, v in previous.items() if k not in OBJECT_COLUMNS and k != "index"}
    return {**fresh, **extras, "edited": True}


def object_boxes(labels: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """Box of every object over the last two axes (row0, col0, row1, col1; end exclusive).

    For a stack, an object's box covers its pixels on every plane. Dense ids take one pass of
    ``scipy.ndimage.find_objects``; sparse or 64-bit ids one sort of the labelled pixels.
    """
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise EditError(f"labels need at least 2 dimensions; got shape {labels.shape}.")
    if labels.size == 0:
        return {}
    low, high = int(labels.min()), int(labels.max())
    if low >= 0 and high <= max(labels.size, 1 << 16) and labels.dtype.itemsize <= 4:
        # dense ids (a segmenter's 1..N): one pass in C, ~20x faster than the sort below
        found = ndimage.find_objects(labels.astype(np.int32, copy=False))
        return {
            i + 1: (box[-2].start, box[-1].start, box[-2].stop, box[-1].stop)
            for i, box in enumerate(found)
            if box is not None
        }
    flat = labels.reshape(-1, labels.shape[-2], labels.shape[-1])
    _, rows, cols = np.nonzero(flat)
    ids = flat[flat != 0].astype(np.int64)
    if len(ids) == 0:
        return {}
    order = np.argsort(ids, kind="stable")
    ids, rows, cols = ids[order], rows[order], cols[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    boxes = zip(
        ids[starts],
        np.minimum.reduceat(rows, starts),
        np.minimum.reduceat(cols, starts),
        np.maximum.reduceat(rows, starts) + 1,
        np.maximum.reduceat(cols, starts) + 1,
        strict=True,
    )
    return {int(i): (int(r0), int(c0), int(r1), int(c1)) for i, r0, c0, r1, c1 in boxes}


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


__all__ = [
    "EditError",
    "PlaneEdit",
    "box_covering",
    "delete_object",
    "edited_row",
    "mask_box",
    "mask_input_from_mask",
    "merge_objects",
    "object_at",
    "object_boxes",
    "object_mask",
    "replace_object",
    "split_object",
]
