"""Extend an object from one plane of a stack to its neighbours (z slices or time points).

Method
------
The object's mask on plane ``i`` becomes the prompts for plane ``i ± 1``:

* a **box**: the mask's bounding box, widened by ``box_margin`` of its size on every side
  (at least 2 pixels) so an object that grows a little from plane to plane is not clipped;
* one **positive point** at the mask's most interior pixel (the maximum of its Euclidean
  distance transform). Unlike the centroid it always lies on the object, also for rings,
  crescents and other concave shapes, and it is the pixel least likely to fall off the
  object on the next plane when the object moves or shrinks;
* optionally (``use_mask_input=True``) the previous plane's low-resolution logits as SAM's
  mask input. Off by default: SAM was trained to use it for refining a mask *of the same
  image*, and from a neighbouring plane it pulls the result towards the old shape, which
  hides exactly what the stopping rule looks for (the object ending or changing). It also
  makes every decode take the slower unprepared decoder path (see ``core.decode``).

Box plus point is an unambiguous prompt, so one mask is decoded per plane (SAM's
single-mask output, as its authors advise for such prompts).

Stopping
--------
Each direction walks plane by plane away from the start and stops *before* keeping a plane
whose mask fails any of these:

* SAM's predicted IoU is under ``min_iou`` (the model is unsure of the mask);
* the mask is empty (the object has ended);
* the area changes by more than a factor ``max_area_change`` (default 2: from 100 to under
  50 or over 200 pixels) from the previous plane: a leak into the background or a jump to
  a neighbouring object, rarely a real change between adjacent planes;
* it overlaps the previous plane's mask by less than ``min_overlap`` of the smaller mask's
  area (default 0.2): the prompts found a different object;

or when the stack ends or ``max_steps`` planes were kept in that direction.

Embeddings come through the segmenter (``iter_embed``), so every plane is encoded once and
cached like any other slice; the start plane needs none (its mask is given).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from ...errors import Cancelled, ImageError, PromptError
from ...sam.embedding import ImageEmbedding
from ...sam.engine import PromptSegmenter
from ...sam.prompts import Prompts

Direction = Literal["both", "forward", "backward"]
DIRECTIONS: tuple[str, ...] = ("both", "forward", "backward")

# Progress units per plane: encoder steps are scaled into the first 90, the decode is the rest.
PLANE_UNITS = 100
_ENCODE_UNITS = 90


@dataclass(frozen=True)
class PlaneResult:
    """The object's mask on one plane.

    Attributes
    ----------
    index
        Position of the plane along the propagation axis.
    mask
        (H, W) bool, rows and columns as the start mask.
    predicted_iou
        SAM's predicted IoU of ``mask``.
    stability
        Stability score of ``mask`` (IoU of the mask thresholded at logits +1 and -1).
    """

    index: int
    mask: np.ndarray
    predicted_iou: float
    stability: float

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass(frozen=True)
class PropagationStep:
    """Progress of a propagation, yielded by :func:`iter_propagate`.

    ``done`` of ``total`` units (:data:`PLANE_UNITS` per plane that may be visited; when a
    direction stops early its unvisited planes count as done). ``index`` is the plane being
    worked on; ``message`` says what happens, e.g. why a direction stopped.
    """

    done: int
    total: int
    index: int
    direction: str
    message: str


@dataclass
class Propagation:
    """What :func:`iter_propagate` returns.

    Attributes
    ----------
    start_index
        The plane the object came from (not among ``planes``).
    planes
        One :class:`PlaneResult` per plane kept, sorted by index.
    stops
        Why each direction walked stopped, e.g. ``{"forward": "predicted IoU 0.62 < 0.70 at
        plane 8"}``.
    """

    start_index: int
    planes: list[PlaneResult] = field(default_factory=list)
    stops: dict[str, str] = field(default_factory=dict)

    @property
    def indices(self) -> list[int]:
        return [p.index for p in self.planes]

    def summary(self) -> str:
        """One line for the user: which planes were added and why each direction stopped."""
        if self.planes:
            head = f"{len(self.planes)} plane(s) added ({format_ranges(self.indices)})"
        else:
            head = "no plane added"
        why = "; ".join(f"{d}: {reason}" for d, reason in self.stops.items())
        return f"{head}; {why}" if why else head


def prompts_from_mask(
    mask: np.ndarray, *, box_margin: float = 0.1, mask_input: np.ndarray | None = None
) -> Prompts:
    """Prompts that ask SAM for ``mask``'s object on another plane.

    Parameters
    ----------
    mask
        (H, W) bool, not empty.
    box_margin
        Widen the bounding box by this fraction of its height/width on each side (at least
        2 pixels), clipped to the image.
    mask_input
        (1, 256, 256) low-res logits to pass as SAM's mask input, or None.

    Returns
    -------
    Prompts
        A box (row0, col0, row1, col1) in pixel-centre coordinates and one positive point
        (row, col) at the mask's most interior pixel.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise PromptError("propagation needs a non-empty 2D mask to build prompts from.")
    height, width = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    row0, row1, col0, col1 = rows[0], rows[-1], cols[0], cols[-1]
    pad_r = max(2.0, box_margin * (row1 - row0 + 1))
    pad_c = max(2.0, box_margin * (col1 - col0 + 1))
    box = (
        max(row0 - pad_r, 0.0),
        max(col0 - pad_c, 0.0),
        min(row1 + pad_r, height - 1.0),
        min(col1 + pad_c, width - 1.0),
    )
    # Only the bounding box matters (cheaper on large images); the one-pixel pad makes the
    # image border count as background, so the point keeps away from it too.
    crop = mask[row0 : row1 + 1, col0 : col1 + 1]
    distance = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(distance)), crop.shape)
    point = (row0 + r, col0 + c)
    return Prompts.from_points([point], box=np.asarray(box, dtype=float), mask_input=mask_input)


def iter_propagate(
    segmenter: PromptSegmenter,
    plane_rgb: Callable[[int], np.ndarray],
    start_index: int,
    start_mask: np.ndarray,
    *,
    n_planes: int,
    direction: Direction = "both",
    min_iou: float = 0.7,
    max_steps: int | None = None,
    max_area_change: float = 2.0,
    min_overlap: float = 0.2,
    box_margin: float = 0.1,
    use_mask_input: bool = False,
) -> Generator[PropagationStep, None, Propagation]:
    """Propagate ``start_mask`` from plane ``start_index`` to its neighbours.

    Parameters
    ----------
    segmenter
        A :class:`~napari_promptseg.core.sam.engine.PromptSegmenter` (anything with its
        ``iter_embed`` and ``predict``).
    plane_rgb
        ``plane_rgb(i)`` gives plane ``i`` as SAM input, (H, W, 3) uint8 (see
        ``core.image.to_rgb_uint8``), with the same (H, W) as ``start_mask``.
    start_index
        The plane ``start_mask`` belongs to, 0 <= start_index < n_planes.
    start_mask
        (H, W) bool: the object on the start plane.
    n_planes
        Number of planes along the propagation axis.
    direction
        "forward" (increasing index), "backward" or "both" (forward first).
    min_iou
        Stop a direction at the first mask whose predicted IoU is under this.
    max_steps
        At most this many planes per direction; None for no limit.
    max_area_change
        Stop when the area grows or shrinks by more than this factor between planes (>= 1).
    min_overlap
        Stop when less than this fraction of the smaller of two consecutive masks overlaps
        the other (0 disables the check).
    box_margin
        See :func:`prompts_from_mask`.
    use_mask_input
        Also give SAM the previous plane's low-res logits (not for the first step: the
        start mask comes without logits).

    Yields
    ------
    PropagationStep
        Progress; closing the generator cancels (the plane being embedded is abandoned).

    Returns
    -------
    Propagation
        The planes kept (start plane excluded) and why each direction stopped.

    Raises
    ------
    PromptError
        Empty or non-2D start mask, start index outside the stack, bad direction or limits.
    ImageError
        A plane whose shape differs from the start mask's.
    """
    start_mask = _check_args(
        start_mask,
        start_index,
        n_planes,
        direction,
        min_iou,
        max_steps,
        max_area_change,
        min_overlap,
    )
    walks = [d for d in ("forward", "backward") if direction in (d, "both")]
    budget = {d: _planes_in(d, start_index, n_planes, max_steps) for d in walks}
    total = PLANE_UNITS * sum(len(v) for v in budget.values())
    result = Propagation(start_index)
    done = 0
    for walk in walks:
        indices = budget[walk]
        previous, logits = start_mask, None
        for index in indices:
            at = f"plane {index}"
            yield PropagationStep(done, total, index, walk, f"{walk}: embedding {at}")
            rgb = plane_rgb(index)
            _check_plane(rgb, start_mask.shape, index)
            embedding = yield from _embed(segmenter, rgb, done, total, index, walk)
            prompts = prompts_from_mask(
                previous, box_margin=box_margin, mask_input=logits if use_mask_input else None
            )
            decoded = segmenter.predict(embedding, prompts, multimask=False)
            mask = np.asarray(decoded.masks[0], dtype=bool)
            plane = PlaneResult(index, mask, float(decoded.iou[0]), float(decoded.stability[0]))
            done += PLANE_UNITS
            reason = _reject(plane, previous, min_iou, max_area_change, min_overlap)
            if reason is not None:
                result.stops[walk] = f"{reason} at {at}"
                break
            result.planes.append(plane)
            previous, logits = mask, decoded.low_res_logits[:1]
            yield PropagationStep(
                done, total, index, walk, f"{walk}: {at} kept (IoU {plane.predicted_iou:.2f})"
            )
        else:
            beyond = indices[-1] + (1 if walk == "forward" else -1) if indices else -1
            if 0 <= beyond < n_planes:
                result.stops[walk] = f"max steps ({max_steps}) reached"
            else:
                result.stops[walk] = "end of the stack"
        done = PLANE_UNITS * sum(len(budget[d]) for d in walks[: walks.index(walk) + 1])
        yield PropagationStep(done, total, start_index, walk, f"{walk}: {result.stops[walk]}")
    result.planes.sort(key=lambda p: p.index)
    return result


def propagate(
    segmenter: PromptSegmenter,
    plane_rgb: Callable[[int], np.ndarray],
    start_index: int,
    start_mask: np.ndarray,
    *,
    progress: Callable[[PropagationStep], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> Propagation:
    """:func:`iter_propagate` in one call; ``should_cancel()`` is polled at every step.

    Raises
    ------
    Cancelled
        When ``should_cancel()`` returned True (nothing is returned).
    """
    steps = iter_propagate(segmenter, plane_rgb, start_index, start_mask, **kwargs)
    try:
        while True:
            step = next(steps)
            if progress is not None:
                progress(step)
            if should_cancel is not None and should_cancel():
                steps.close()
                raise Cancelled("propagation cancelled")
    except StopIteration as finished:
        return finished.value


def format_ranges(indices: Iterable[int]) -> str:
    """Sorted integers as compact ranges: [0, 1, 2, 5, 7, 8] → ``"0-2,5,7-8"``."""
    values = sorted({int(i) for i in indices})
    parts: list[str] = []
    for run in _runs(values):
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def _runs(values: list[int]) -> Iterator[list[int]]:
    run: list[int] = []
    for value in values:
        if run and value != run[-1] + 1:
            yield run
            run = []
        run.append(value)
    if run:
        yield run


def _embed(
    segmenter: PromptSegmenter, rgb: np.ndarray, done: int, total: int, index: int, walk: str
) -> Generator[PropagationStep, None, ImageEmbedding]:
    """``segmenter.iter_embed`` with its (done, total) mapped into the overall progress."""
    steps = segmenter.iter_embed(rgb)
    try:
        while True:
            inner_done, inner_total = next(steps)
            share = _ENCODE_UNITS * inner_done // max(inner_total, 1)
            yield PropagationStep(
                done + share, total, index, walk, f"{walk}: embedding plane {index}"
            )
    except StopIteration as finished:
        return finished.value
    finally:
        steps.close()  # cancelled while encoding: stop the encoder too


def _reject(
    plane: PlaneResult,
    previous: np.ndarray,
    min_iou: float,
    max_area_change: float,
    min_overlap: float,
) -> str | None:
    """Why ``plane`` must not be kept after ``previous``, or None."""
    area = plane.area
    if area == 0:
        return "empty mask"
    if plane.predicted_iou < min_iou:
        return f"predicted IoU {plane.predicted_iou:.2f} < {min_iou:.2f}"
    before = int(np.count_nonzero(previous))
    ratio = area / before
    if ratio > max_area_change or ratio < 1.0 / max_area_change:
        return f"area changed ×{ratio:.2f} ({before} → {area} px, limit ×{max_area_change:g})"
    if min_overlap > 0:
        shared = int(np.count_nonzero(plane.mask & previous))
        fraction = shared / min(area, before)
        if fraction < min_overlap:
            return f"overlap with the previous plane {fraction:.2f} < {min_overlap:.2f}"
    return None


def _planes_in(walk: str, start: int, n_planes: int, max_steps: int | None) -> list[int]:
    if walk == "forward":
        indices = list(range(start + 1, n_planes))
    else:
        indices = list(range(start - 1, -1, -1))
    return indices if max_steps is None else indices[:max_steps]


def _check_args(
    start_mask: np.ndarray,
    start_index: int,
    n_planes: int,
    direction: str,
    min_iou: float,
    max_steps: int | None,
    area_change: float,
    min_overlap: float,
) -> np.ndarray:
    mask = np.asarray(start_mask)
    if mask.ndim != 2:
        raise PromptError(f"the start mask must be 2D (H, W); got shape {mask.shape}.")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise PromptError("the start mask is empty: there is no object on the start plane.")
    if not 0 <= int(start_index) < int(n_planes):
        raise PromptError(f"start plane {start_index} is outside the stack of {n_planes} planes.")
    if direction not in DIRECTIONS:
        raise PromptError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}.")
    if not 0.0 <= float(min_iou) <= 1.0:
        raise PromptError(f"min_iou must be between 0 and 1; got {min_iou}.")
    if max_steps is not None and int(max_steps) < 1:
        raise PromptError(f"max_steps must be at least 1 (or None for no limit); got {max_steps}.")
    if not float(area_change) >= 1.0:
        raise PromptError(f"max_area_change must be at least 1; got {area_change}.")
    if not 0.0 <= float(min_overlap) <= 1.0:
        raise PromptError(f"min_overlap must be between 0 and 1; got {min_overlap}.")
    return mask


def _check_plane(rgb: np.ndarray, shape: tuple[int, ...], index: int) -> None:
    got = getattr(rgb, "shape", None)
    if got is None or tuple(got[:2]) != tuple(shape):
        raise ImageError(
            f"plane {index} has shape {got}, the start mask {tuple(shape)}: all planes of a "
            "stack must have the same height and width."
        )
