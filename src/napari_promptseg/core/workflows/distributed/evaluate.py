"""``promptseg evaluate`` split per plane and model, run here or on Dask.

Each task evaluates every ground-truth object of one plane with one model (the same
:func:`~napari_promptseg.core.workflows.evaluation.simulate.iter_evaluate_plane` the
single-process run uses); the report is assembled in model, then plane order, so its
figures equal the single-process report's (timings aside).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...sam.engine import PromptSegmenter
from ..evaluation.ground_truth import PlaneLabel, check_ground_truth, object_planes
from ..evaluation.run import planes_shape
from ..evaluation.simulate import EvaluationSettings, ObjectResult, iter_evaluate_plane
from ..evaluation.summary import EvaluationReport
from .recipe import ModelRecipe
from .runner import Progress, run_items
from .sources import ImageSource


@dataclass(frozen=True, eq=False)
class EvaluateTask:
    """Evaluate the objects of ``truth`` ((H, W) ids of one plane) with one model."""

    source: ImageSource
    plane: PlaneLabel
    truth: np.ndarray
    settings: EvaluationSettings
    classes: tuple[tuple[int, str], ...] | None
    model: str


def evaluate_task(
    segmenter: PromptSegmenter, task: EvaluateTask
) -> tuple[list[ObjectResult], float]:
    """The plane's object results, and the seconds spent outside them (embedding)."""
    started = time.perf_counter()
    steps = iter_evaluate_plane(
        segmenter,
        task.source.planes().rgb(task.plane),
        task.truth,
        task.settings,
        plane=task.plane,
        classes=dict(task.classes) if task.classes else None,
        model=task.model,
    )
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            results: list[ObjectResult] = finished.value
            break
    spent = time.perf_counter() - started - sum(r.seconds for r in results)
    return results, max(spent, 0.0)


def evaluate_models(
    models: Sequence[tuple[str, ModelRecipe]],
    source: ImageSource,
    ground_truth: np.ndarray,
    settings: EvaluationSettings,
    *,
    classes: Mapping[int, str] | None = None,
    client: Any | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Every model on every plane holding objects; ``models`` are (name, recipe) pairs."""
    planes = source.planes()
    shape = planes_shape(planes)
    labels = check_ground_truth(ground_truth, shape, planes.plane_shape)
    work = list(object_planes(labels, shape))
    pairs = tuple(sorted(classes.items())) if classes else None
    report = EvaluationReport(settings=settings)
    for name, recipe in models:
        label = _unique(name, report.models)
        tasks = [
            EvaluateTask(source, plane, np.asarray(labels[plane]), settings, pairs, label)
            for plane in work
        ]
        outcomes = run_items(evaluate_task, tasks, recipe=recipe, client=client, progress=progress)
        report.models.append(label)
        report.embedding_seconds[label] = sum(seconds for _, seconds in outcomes)
        for results, _seconds in outcomes:
            report.results.extend(results)
    return report


def _unique(name: str, taken: Sequence[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"
