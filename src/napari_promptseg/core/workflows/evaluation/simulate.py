"""Simulated interactive segmentation of one object, and of every object of one plane.

For each ground-truth object the first prompt (a point at its most interior pixel, or its
box) is decoded, then up to ``clicks - 1`` correcting clicks are added one at a time (see
:mod:`.clicks`), each decode getting all prompts so far and, unless ``mask_input`` is off,
the previous decode's low-resolution logits as SAM's mask input. The IoU with the object is
recorded after every interaction. The box of a box start counts as the first interaction.

Masks come from :meth:`PromptSegmenter.predict` with its default output: three candidates
for a lone point (the one with the highest predicted IoU is kept), one mask otherwise, which
is how SAM's authors run interactive segmentation. Once a mask equals the object there is
nothing left to click; its IoU (1.0) stands for the remaining clicks.

:func:`evaluate_plane` is a plain function of (model, image plane, ground-truth plane): a
distributed runner can map it over planes on workers that hold a model each.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ...sam.embedding import ImageEmbedding
from ...sam.engine import PromptSegmenter
from .clicks import STARTS, Click, first_prompt, mask_iou, next_click
from .ground_truth import EvaluationError, PlaneLabel, plane_objects

DEFAULT_CLICKS = 20
MAX_CLICKS = 100  # SAM was trained with a few clicks; more only adds time
THRESHOLDS = (0.85, 0.90)  # NoC@85, NoC@90


@dataclass(frozen=True)
class EvaluationSettings:
    """How objects are prompted.

    Attributes
    ----------
    clicks
        Interactions per object (the first prompt included), 1 to :data:`MAX_CLICKS`; also
        the cap of NoC (an object not reaching a threshold counts this many and fails).
    start
        ``"point"`` or ``"box"``: the first prompt.
    mask_input
        Give SAM the previous low-resolution logits with each correcting click.
    thresholds
        IoU thresholds for NoC and the failure rate.
    """

    clicks: int = DEFAULT_CLICKS
    start: str = "point"
    mask_input: bool = True
    thresholds: tuple[float, ...] = THRESHOLDS

    def __post_init__(self) -> None:
        if isinstance(self.clicks, bool) or not isinstance(self.clicks, int | np.integer):
            raise EvaluationError(f"clicks must be a whole number; got {self.clicks!r}.")
        if not 1 <= int(self.clicks) <= MAX_CLICKS:
            raise EvaluationError(f"clicks must be 1 to {MAX_CLICKS}; got {self.clicks}.")
        if self.start not in STARTS:
            raise EvaluationError(f"start must be one of {', '.join(STARTS)}; got {self.start!r}.")
        thresholds = tuple(float(t) for t in self.thresholds)
        if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
            raise EvaluationError(f"IoU thresholds must lie in (0, 1]; got {self.thresholds!r}.")
        object.__setattr__(self, "clicks", int(self.clicks))
        object.__setattr__(self, "thresholds", thresholds)


@dataclass(frozen=True)
class ObjectResult:
    """What one model did on one object.

    Attributes
    ----------
    model
        The model's name.
    plane
        The plane's indices along the image's leading axes; () for a 2D image.
    label_id
        The object's id in the ground truth.
    class_name
        Its class from the ground truth's class table; "" if none.
    area
        Its pixels in this plane.
    ious
        IoU with the object after interaction 1, 2, ... ``clicks``.
    clicks
        The simulated clicks, in order (a box start is not a click).
    seconds
        Time spent on the object (decodes and click simulation; not the embedding).
    """

    model: str
    plane: PlaneLabel
    label_id: int
    class_name: str
    area: int
    ious: tuple[float, ...]
    clicks: tuple[Click, ...]
    seconds: float

    def clicks_to_reach(self, threshold: float) -> int | None:
        """The first interaction (1-based) whose IoU is at least ``threshold``; None if none."""
        for k, iou in enumerate(self.ious, start=1):
            if iou >= threshold:
                return k
        return None

    def noc(self, threshold: float) -> int:
        """Number of clicks to reach ``threshold``, the cap (all clicks) when never reached."""
        reached = self.clicks_to_reach(threshold)
        return len(self.ious) if reached is None else reached


class PlaneStep(NamedTuple):
    """Progress of :func:`iter_evaluate_plane`: objects ``done`` of ``total``; ``stage`` is
    ``"embedding"`` (yielded per encoder block) or ``"objects"`` (yielded per object)."""

    done: int
    total: int
    stage: str


def evaluate_object(
    segmenter: PromptSegmenter,
    embedding: ImageEmbedding,
    object_mask: np.ndarray,
    settings: EvaluationSettings,
) -> tuple[tuple[float, ...], tuple[Click, ...], float]:
    """Prompt one object as a user would; (IoU after each interaction, clicks, seconds).

    ``object_mask`` is the (H, W) bool ground truth of the object on the embedded plane.
    """
    started = time.perf_counter()
    prompts, click = first_prompt(object_mask, settings.start)
    clicks: list[Click] = [] if click is None else [click]
    ious: list[float] = []
    while True:
        result = segmenter.predict(embedding, prompts)
        predicted = result.mask
        ious.append(mask_iou(object_mask, predicted))
        if len(ious) == settings.clicks:
            break
        click = next_click(object_mask, predicted)
        if click is None:  # the mask is the object: nothing left to correct
            ious.extend([ious[-1]] * (settings.clicks - len(ious)))
            break
        clicks.append(click)
        prompts = prompts.with_point((click.row, click.col), click.label)
        if settings.mask_input:
            prompts = dataclasses.replace(
                prompts, mask_input=result.low_res_logits[result.best][None]
            )
    return tuple(ious), tuple(clicks), time.perf_counter() - started


def iter_evaluate_plane(
    segmenter: PromptSegmenter,
    rgb: np.ndarray,
    labels: np.ndarray,
    settings: EvaluationSettings,
    *,
    plane: PlaneLabel = (),
    classes: Mapping[int, str] | None = None,
    model: str | None = None,
) -> Generator[PlaneStep, None, list[ObjectResult]]:
    """Evaluate every object of one plane, yielding :class:`PlaneStep` progress.

    Parameters
    ----------
    segmenter
        The model; the plane's embedding comes from its cache or store when there.
    rgb
        (H, W, 3) uint8: the plane as SAM sees it.
    labels
        (H, W) integer ground truth of the plane (checked by ``check_ground_truth``).
    plane, classes, model
        Recorded in the results: the plane's index, ``id → class name``, the model's name
        (default ``segmenter.name``).

    Returns
    -------
    list of ObjectResult
        One per object, by increasing id. Closing the generator stops after the current
        encoder block or object.
    """
    labels = np.asarray(labels)
    if labels.shape != rgb.shape[:2]:
        raise EvaluationError(
            f"the ground-truth plane has shape {labels.shape}, the image plane {rgb.shape[:2]}."
        )
    objects = plane_objects(labels)
    total = len(objects)
    steps = segmenter.iter_embed(rgb)  # from memory or the store without a step, if there
    try:
        while True:
            next(steps)
            yield PlaneStep(0, total, "embedding")
    except StopIteration as finished:
        embedding = finished.value
    finally:
        steps.close()  # closed early (cancel): abandon the encoder run
    name = model or segmenter.name
    results = []
    for done, obj in enumerate(objects, start=1):
        mask = obj.mask(labels)
        ious, clicks, seconds = evaluate_object(segmenter, embedding, mask, settings)
        results.append(
            ObjectResult(
                model=name,
                plane=tuple(int(i) for i in plane),
                label_id=obj.label_id,
                class_name=(classes or {}).get(obj.label_id, ""),
                area=obj.area,
                ious=ious,
                clicks=clicks,
                seconds=seconds,
            )
        )
        yield PlaneStep(done, total, "objects")
    return results


def evaluate_plane(
    segmenter: PromptSegmenter,
    rgb: np.ndarray,
    labels: np.ndarray,
    settings: EvaluationSettings | None = None,
    *,
    plane: PlaneLabel = (),
    classes: Mapping[int, str] | None = None,
    model: str | None = None,
) -> list[ObjectResult]:
    """:func:`iter_evaluate_plane` in one call (no progress): the unit of distributed work."""
    steps = iter_evaluate_plane(
        segmenter,
        rgb,
        labels,
        settings or EvaluationSettings(),
        plane=plane,
        classes=classes,
        model=model,
    )
    try:
        while True:
            next(steps)
    except StopIteration as finished:
        return list(finished.value)
