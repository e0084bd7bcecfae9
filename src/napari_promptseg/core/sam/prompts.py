"""Prompts as napari gives them, validated and converted to SAM's inputs.

Coordinates
-----------
napari works in (row, col) with pixel centres on integers; SAM takes (x, y) = (col, row)
in the same pixel frame (its prompt encoder adds 0.5 to reach pixel centres). So a point
``(row, col)`` becomes ``(x, y) = (col, row)`` with no offset, and a box
``(row0, col0, row1, col1)`` becomes ``(x0, y0, x1, y1) = (col0, row0, col1, row1)``.
The image covers rows -0.5 .. H-0.5 and columns -0.5 .. W-0.5.

Scribbles
---------
A scribble is a polyline in (row, col), positive or negative. It becomes point prompts
sampled evenly by arc length along the stroke: both ends plus interior points every
``spacing`` pixels, at most ``max_points`` per stroke (SAM was trained with few clicks, and
many points on one stroke add little). A one-pixel scribble is one point. The previous
decode's low-resolution logits can be passed as ``mask_input`` to refine a mask, as SAM's
interactive loop does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import PromptError

POSITIVE = 1
NEGATIVE = 0
MAX_POINTS = 256  # per object, scribble points included


@dataclass(frozen=True)
class Scribble:
    """A freehand stroke: ``path`` is (M, 2) (row, col); ``positive`` marks foreground."""

    path: np.ndarray
    positive: bool = True

    def __post_init__(self) -> None:
        path = np.asarray(self.path, dtype=float)
        if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
            raise PromptError(
                f"a scribble needs an (M, 2) array of (row, col); got shape {path.shape}."
            )
        object.__setattr__(self, "path", path)


@dataclass(frozen=True)
class Prompts:
    """Everything the user gave for one object, in napari's (row, col) frame.

    Attributes
    ----------
    points
        (N, 2) float (row, col).
    labels
        (N,) int, 1 = positive (object), 0 = negative (background).
    box
        (row0, col0, row1, col1) or None; corners in any order.
    scribbles
        Freehand strokes, turned into points (see module docstring).
    mask_input
        (1, 256, 256) low-resolution logits of an earlier decode, to refine it; or None.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=int))
    box: np.ndarray | None = None
    scribbles: tuple[Scribble, ...] = ()
    mask_input: np.ndarray | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=float).reshape(-1, 2)
        labels = np.asarray(self.labels, dtype=int).reshape(-1)
        if len(points) != len(labels):
            raise PromptError(f"{len(points)} points but {len(labels)} labels.")
        if not np.isin(labels, (NEGATIVE, POSITIVE)).all():
            raise PromptError(
                f"point labels must be 1 (positive) or 0 (negative); got {sorted(set(labels))}."
            )
        if not np.isfinite(points).all():
            raise PromptError("point coordinates must be finite numbers.")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels)
        if self.box is not None:
            box = np.asarray(self.box, dtype=float).reshape(-1)
            if box.shape != (4,) or not np.isfinite(box).all():
                raise PromptError(f"a box is (row0, col0, row1, col1); got {self.box!r}.")
            object.__setattr__(self, "box", box)
        object.__setattr__(self, "scribbles", tuple(self.scribbles))

    @classmethod
    def from_points(
        cls, points: ArrayLike, labels: ArrayLike | None = None, **kwargs: Any
    ) -> Prompts:
        """Points in (row, col); labels default to all positive."""
        rows_cols = np.asarray(points, dtype=float).reshape(-1, 2)
        if labels is None:
            labels = np.ones(len(rows_cols), dtype=int)
        return cls(points=rows_cols, labels=np.asarray(labels), **kwargs)

    def same_as(self, other: Prompts | None) -> bool:
        """Whether ``other`` holds exactly the same prompts (so decodes to the same masks)."""
        if other is None:
            return False
        if not (
            np.array_equal(self.points, other.points) and np.array_equal(self.labels, other.labels)
        ):
            return False
        if self.box is None or other.box is None:
            if (self.box is None) != (other.box is None):
                return False
        elif not np.array_equal(self.box, other.box):
            return False
        if len(self.scribbles) != len(other.scribbles) or any(
            a.positive != b.positive or not np.array_equal(a.path, b.path)
            for a, b in zip(self.scribbles, other.scribbles, strict=True)
        ):
            return False
        if self.mask_input is None or other.mask_input is None:
            return self.mask_input is None and other.mask_input is None
        return np.array_equal(self.mask_input, other.mask_input)

    def with_point(self, row_col: ArrayLike, label: int) -> Prompts:
        """These prompts plus one point (row, col) with ``label``."""
        return Prompts(
            points=np.vstack([self.points, np.asarray(row_col, dtype=float).reshape(1, 2)]),
            labels=np.append(self.labels, int(label)),
            box=self.box,
            scribbles=self.scribbles,
            mask_input=self.mask_input,
        )

    @property
    def is_empty(self) -> bool:
        return len(self.points) == 0 and self.box is None and not self.scribbles

    def summary(self) -> str:
        """A short human-readable description for the objects table, e.g. ``"2+ 1- box"``."""
        parts = []
        positives = int((self.labels == POSITIVE).sum())
        negatives = int((self.labels == NEGATIVE).sum())
        if positives:
            parts.append(f"{positives}+")
        if negatives:
            parts.append(f"{negatives}-")
        if self.box is not None:
            parts.append("box")
        scribbles_pos = sum(s.positive for s in self.scribbles)
        scribbles_neg = len(self.scribbles) - scribbles_pos
        if scribbles_pos:
            parts.append(f"{scribbles_pos} scribble+")
        if scribbles_neg:
            parts.append(f"{scribbles_neg} scribble-")
        if self.mask_input is not None:
            parts.append("refined")
        return " ".join(parts) or "none"


@dataclass(frozen=True)
class SamPrompts:
    """Prompts in SAM's frame, ready for the model (see ``SamPredictor.predict``).

    Attributes
    ----------
    point_coords
        (N, 2) float (x, y) or None.
    point_labels
        (N,) int or None.
    box
        (4,) float (x0, y0, x1, y1) or None.
    mask_input
        (1, 256, 256) float32 or None.
    """

    point_coords: np.ndarray | None
    point_labels: np.ndarray | None
    box: np.ndarray | None
    mask_input: np.ndarray | None


def scribble_points(scribble: Scribble, spacing: float = 16.0, max_points: int = 8) -> np.ndarray:
    """Points sampled evenly by arc length along a stroke, (K, 2) in (row, col)."""
    path = scribble.path
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    length = float(steps.sum())
    if len(path) == 1 or length == 0:
        return path[:1].copy()
    count = int(np.clip(round(length / spacing) + 1, 2, max_points))
    targets = np.linspace(0.0, length, count)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    rows = np.interp(targets, along, path[:, 0])
    cols = np.interp(targets, along, path[:, 1])
    return np.stack([rows, cols], axis=1)


def is_ambiguous(prompts: SamPrompts) -> bool:
    """A lone point and no box: three candidate masks are asked for (as SAM's authors advise)."""
    n_points = 0 if prompts.point_coords is None else len(prompts.point_coords)
    return prompts.box is None and n_points <= 1


def to_sam_prompts(prompts: Prompts, image_shape: tuple[int, int]) -> SamPrompts:
    """Validate ``prompts`` against an image of ``image_shape`` (H, W) and convert to SAM's frame.

    Raises
    ------
    PromptError
        No prompt, only negative prompts, a point outside the image, a box of zero area
        (after clipping to the image) or entirely outside it, or a mask input of the wrong shape.
    """
    height, width = image_shape
    points, labels = [prompts.points], [prompts.labels]
    for scribble in prompts.scribbles:
        sampled = scribble_points(scribble)
        points.append(sampled)
        labels.append(np.full(len(sampled), POSITIVE if scribble.positive else NEGATIVE))
    all_points = np.concatenate(points).reshape(-1, 2)
    all_labels = np.concatenate(labels).astype(int)

    if prompts.is_empty:
        raise PromptError("no prompt given: add a positive point, a box or a scribble.")
    if len(all_points) > MAX_POINTS:
        # each point attends to all 4096 image tokens: thousands take seconds and GiBs
        raise PromptError(
            f"too many prompt points ({len(all_points)}); SAM works best with a few clicks: "
            f"at most {MAX_POINTS} (a scribble counts up to 8)."
        )
    if prompts.box is None and not (all_labels == POSITIVE).any():
        raise PromptError(
            "only negative prompts: SAM needs at least one positive point, a box or a positive scribble."
        )
    outside = ~(
        (all_points[:, 0] >= -0.5)
        & (all_points[:, 0] <= height - 0.5)
        & (all_points[:, 1] >= -0.5)
        & (all_points[:, 1] <= width - 0.5)
    )
    if outside.any():
        row, col = all_points[np.argmax(outside)]
        raise PromptError(
            f"{int(outside.sum())} prompt point(s) lie outside the {height}x{width} image, "
            f"e.g. (row {row:.1f}, col {col:.1f})."
        )

    box_xyxy = None
    if prompts.box is not None:
        box_xyxy = _box_to_xyxy(prompts.box, height, width)

    mask_input = None
    if prompts.mask_input is not None:
        mask_input = np.asarray(prompts.mask_input, dtype=np.float32)
        if mask_input.shape == (256, 256):
            mask_input = mask_input[None]
        if mask_input.shape != (1, 256, 256):
            raise PromptError(
                f"mask_input must be (1, 256, 256) low-res logits; got {mask_input.shape}."
            )

    has_points = len(all_points) > 0
    return SamPrompts(
        point_coords=all_points[:, ::-1].copy() if has_points else None,  # (row, col) → (x, y)
        point_labels=all_labels if has_points else None,
        box=box_xyxy,
        mask_input=mask_input,
    )


def _box_to_xyxy(box: np.ndarray, height: int, width: int) -> np.ndarray:
    row0, row1 = sorted((box[0], box[2]))
    col0, col1 = sorted((box[1], box[3]))
    if row1 < -0.5 or col1 < -0.5 or row0 > height - 0.5 or col0 > width - 0.5:
        raise PromptError(
            f"the box {tuple(np.round(box, 1))} lies outside the {height}x{width} image."
        )
    # a rectangle drawn past the border is clipped to the image, not refused
    row0, row1 = np.clip((row0, row1), -0.5, height - 0.5)
    col0, col1 = np.clip((col0, col1), -0.5, width - 0.5)
    if row1 - row0 < 1 or col1 - col0 < 1:
        raise PromptError(
            f"the box {tuple(np.round(box, 1))} has (almost) zero area inside the image; "
            "draw it at least one pixel wide and high."
        )
    return np.array([col0, row0, col1, row1], dtype=float)
