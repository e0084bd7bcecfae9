"""The figures of an evaluation: mIoU after k clicks, NoC, failure rate, per model and class.

* **mIoU@k**: the mean over objects of the IoU after interaction k.
* **NoC@t** (number of clicks): the mean over objects of the first interaction whose IoU
  reaches t; an object that never reaches it within the run's clicks counts the cap (all
  clicks) and is a **failure**.
* **failed@t**: the fraction of objects that are failures at t.
* **seconds per object**: decodes and click simulation, not the embedding (reported apart,
  since cached embeddings cost nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .simulate import EvaluationSettings, ObjectResult

ALL_OBJECTS = "(all)"  # the class column of the rows over every object
UNCLASSIFIED = "(unclassified)"  # objects without a class when others have one
SUMMARY_CLICKS = (1, 3, 5)  # mIoU@1, @3, @5


def percent(threshold: float) -> str:
    """0.85 → "85", 0.875 → "87.5": thresholds as they appear in column names."""
    return f"{round(threshold * 100, 4):g}"


@dataclass(frozen=True)
class SummaryRow:
    """The figures of one model over a group of objects (all of them, or one class)."""

    model: str
    class_name: str
    objects: int
    miou: dict[int, float]  # k → mIoU@k
    noc: dict[float, float]  # threshold → mean NoC
    failed: dict[float, float]  # threshold → fraction of objects never reaching it
    seconds_per_object: float

    def as_dict(self) -> dict[str, Any]:
        """The row as the summary CSV writes it (``miou_1``, ``noc_85``, ``failed_85``, ...)."""
        row: dict[str, Any] = {"model": self.model, "class": self.class_name}
        row["objects"] = self.objects
        row.update({f"miou_{k}": round(v, 6) for k, v in self.miou.items()})
        row.update({f"noc_{percent(t)}": round(v, 4) for t, v in self.noc.items()})
        row.update({f"failed_{percent(t)}": round(v, 6) for t, v in self.failed.items()})
        row["seconds_per_object"] = round(self.seconds_per_object, 6)
        return row


def summarize_group(
    model: str, class_name: str, results: Sequence[ObjectResult], settings: EvaluationSettings
) -> SummaryRow:
    """Figures over ``results`` (one model's objects, non-empty)."""
    ious = np.array([r.ious for r in results], dtype=float)  # (objects, clicks)
    return SummaryRow(
        model=model,
        class_name=class_name,
        objects=len(results),
        miou={k: float(ious[:, k - 1].mean()) for k in SUMMARY_CLICKS if k <= settings.clicks},
        noc={t: float(np.mean([r.noc(t) for r in results])) for t in settings.thresholds},
        failed={
            t: float(np.mean([r.clicks_to_reach(t) is None for r in results]))
            for t in settings.thresholds
        },
        seconds_per_object=float(np.mean([r.seconds for r in results])),
    )


@dataclass
class EvaluationReport:
    """Everything an evaluation measured.

    Attributes
    ----------
    settings
        How objects were prompted.
    results
        One :class:`ObjectResult` per model and object (and plane), in evaluation order.
    models
        Model names in the order they ran.
    embedding_seconds
        Model name → seconds spent computing embeddings (0 where all came from a cache).
    """

    settings: EvaluationSettings
    results: list[ObjectResult] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    embedding_seconds: dict[str, float] = field(default_factory=dict)

    def of_model(self, model: str) -> list[ObjectResult]:
        return [r for r in self.results if r.model == model]

    @property
    def has_classes(self) -> bool:
        return any(r.class_name for r in self.results)

    def miou_curve(self, model: str) -> np.ndarray:
        """(clicks,) mIoU after interaction 1 .. clicks of ``model`` (NaN without objects)."""
        ious = np.array([r.ious for r in self.of_model(model)], dtype=float)
        if ious.size == 0:
            return np.full(self.settings.clicks, np.nan)
        return ious.mean(axis=0)

    def miou(self, model: str, clicks: int = 1) -> float:
        """mIoU of ``model`` after ``clicks`` interactions."""
        return float(self.miou_curve(model)[clicks - 1])

    def summary(self) -> list[SummaryRow]:
        """Per model: a row over all objects, then (with classes) one row per class."""
        rows = []
        for model in self.models:
            results = self.of_model(model)
            if not results:
                continue
            rows.append(summarize_group(model, ALL_OBJECTS, results, self.settings))
            if self.has_classes:
                for name, group in _by_class(results):
                    rows.append(summarize_group(model, name, group, self.settings))
        return rows


def _by_class(results: Iterable[ObjectResult]) -> list[tuple[str, list[ObjectResult]]]:
    groups: dict[str, list[ObjectResult]] = {}
    for result in results:
        groups.setdefault(result.class_name or UNCLASSIFIED, []).append(result)
    return sorted(groups.items(), key=lambda item: (item[0] == UNCLASSIFIED, item[0]))
