"""Evaluate one or more models on an image and its ground truth, plane by plane.

    >>> report = evaluate([PromptSegmenter.load("vit_b"), PromptSegmenter.load("vit_b_lm")],
    ...                   image, ground_truth, EvaluationSettings(clicks=20))
    >>> report.miou("vit_b", 5), [row.as_dict() for row in report.summary()]

Models run one after the other over every plane that holds objects (planes without any are
neither embedded nor counted). A model can be given as a zero-argument callable that loads
it: it is then loaded when its turn comes and dropped after, so two large models never sit
in memory together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ...errors import Cancelled
from ...sam.engine import PromptSegmenter
from ..stack import StackPlanes, planes_of
from .ground_truth import (
    EvaluationError,
    PlaneLabel,
    check_ground_truth,
    object_planes,
    plane_objects,
)
from .simulate import EvaluationSettings, iter_evaluate_plane
from .summary import EvaluationReport

ModelSource = PromptSegmenter | Callable[[], PromptSegmenter]


class EvaluationProgress(NamedTuple):
    """Where an evaluation is: ``done`` of ``total`` objects (over all models).

    ``stage`` is ``"loading"`` (a model), ``"embedding"`` (yielded per encoder block, the
    points where closing the generator cancels) or ``"objects"`` (once per object).
    """

    done: int
    total: int
    model: str
    stage: str
    plane: PlaneLabel


def planes_shape(planes: StackPlanes) -> tuple[int, ...]:
    """Sizes of the leading axes of ``planes``: () for a 2D image, (Z,) for a stack..."""
    if not planes.labels or not planes.labels[-1]:
        return ()
    return tuple(i + 1 for i in planes.labels[-1])


def iter_evaluate(
    models: Sequence[ModelSource],
    image: np.ndarray | StackPlanes,
    ground_truth: np.ndarray,
    settings: EvaluationSettings | None = None,
    *,
    classes: Mapping[int, str] | None = None,
) -> Generator[EvaluationProgress, None, EvaluationReport]:
    """Evaluate every model on every object, yielding progress; returns the report.

    Parameters
    ----------
    models
        :class:`PromptSegmenter` objects, or callables returning one (loaded in turn).
    image
        The image as :func:`~napari_promptseg.core.workflows.stack.planes_of` takes it
        ((H, W), (H, W, 3), (Z, H, W)...), or its planes already converted.
    ground_truth
        Integer labels shaped like the image's planes: (H, W), (Z, H, W)... (see
        :func:`.ground_truth.check_ground_truth`, which refuses bad input first).
    settings
        Clicks, first prompt, mask input, thresholds (defaults: 20, point, on, 0.85/0.90).
    classes
        Ground-truth id → class name, for per-class figures.
    """
    settings = settings or EvaluationSettings()
    planes = image if isinstance(image, StackPlanes) else planes_of(image)
    shape = planes_shape(planes)
    labels = check_ground_truth(ground_truth, shape, planes.plane_shape)
    if not models:
        raise EvaluationError("no model to evaluate.")
    work = [(plane, len(plane_objects(labels[plane]))) for plane in object_planes(labels, shape)]
    per_model = sum(count for _, count in work)
    total = per_model * len(models)
    report = EvaluationReport(settings=settings)
    done = 0
    for source in models:
        if not isinstance(source, PromptSegmenter):
            yield EvaluationProgress(done, total, "", "loading", ())
        segmenter = source if isinstance(source, PromptSegmenter) else source()
        name = _unique(segmenter.name, report.models)
        report.models.append(name)
        report.embedding_seconds[name] = 0.0
        for plane, _count in work:
            inside = 0.0  # time spent in the plane's generator, not in our caller
            steps = iter_evaluate_plane(
                segmenter,
                planes.rgb(plane),
                labels[plane],
                settings,
                plane=plane,
                classes=classes,
                model=name,
            )
            try:
                while True:
                    started = time.perf_counter()
                    try:
                        step = next(steps)
                    finally:
                        inside += time.perf_counter() - started
                    yield EvaluationProgress(done + step.done, total, name, step.stage, plane)
            except StopIteration as finished:
                results = finished.value
            finally:
                steps.close()
            done += len(results)
            report.results.extend(results)
            spent = inside - sum(r.seconds for r in results)  # embedding, masks of objects
            report.embedding_seconds[name] += max(spent, 0.0)
        del segmenter  # a model loaded here is freed before the next one loads
    return report


def evaluate(
    models: Sequence[ModelSource],
    image: np.ndarray | StackPlanes,
    ground_truth: np.ndarray,
    settings: EvaluationSettings | None = None,
    *,
    classes: Mapping[int, str] | None = None,
    progress: Callable[[EvaluationProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> EvaluationReport:
    """:func:`iter_evaluate` in one call; ``progress`` gets every step.

    Raises
    ------
    Cancelled
        When ``should_cancel()`` returned True between two steps.
    """
    steps = iter_evaluate(models, image, ground_truth, settings, classes=classes)
    try:
        while True:
            step = next(steps)
            if progress is not None:
                progress(step)
            if should_cancel is not None and should_cancel():
                steps.close()
                raise Cancelled("evaluation cancelled")
    except StopIteration as finished:
        return finished.value


def _unique(name: str, taken: Sequence[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... when a model of that name already ran."""
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"
