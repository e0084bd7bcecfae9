"""The object classifier on a labels layer: its examples, its input, its predictions.

The labels layer's features table carries the classes (no Qt here):

* ``class``: the object's class, given by the user or predicted;
* ``class_source``: ``"user"`` (a class the user gave: an example for training) or
  ``"predicted"`` (written by the classifier); rows from before this column, or from a
  table loaded with the labels, count as the user's when they have a class;
* ``class_probability``: the classifier's probability of the predicted class (empty for
  the user's classes).

A prediction never changes a user's class: giving a predicted object a class (the Classes
section, keys 1–9) makes it an example, and the next training learns from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.editing import object_boxes
from ..core.workflows.classify.classifier import Prediction
from ..core.workflows.stack import StackPlanes, planes_of
from . import objects
from .slices import LayerSnapshot

SOURCE = "class_source"
PROBABILITY = "class_probability"
USER, PREDICTED = "user", "predicted"


@dataclass(frozen=True)
class ClassifierInput:
    """The image's planes (converted lazily, as the session converts them) and a copy of
    the labels, read on the main thread."""

    planes: StackPlanes
    labels: np.ndarray
    labels_name: str


def classifier_input(image_layer: Any, labels_layer: Any) -> ClassifierInput:
    snapshot = LayerSnapshot.of(image_layer)
    data = snapshot.data[0] if snapshot.multiscale else snapshot.data
    planes = planes_of(data, contrast_limits=snapshot.contrast_limits, rgb=snapshot.rgb)
    labels = (
        labels_layer.data[0] if getattr(labels_layer, "multiscale", False) else labels_layer.data
    )
    # a copy: the layer may be painted while the features are computed
    return ClassifierInput(planes, np.array(labels), str(labels_layer.name))


def is_example(row: dict) -> bool:
    return bool(_text(row.get("class"))) and _text(row.get(SOURCE)) != PREDICTED


def examples_of(labels_layer: Any) -> dict[int, str]:
    """id → class of the objects the user gave a class (the training examples)."""
    return {
        int(r["id"]): _text(r["class"]) for r in objects.object_rows(labels_layer) if is_example(r)
    }


def mark_user_class(row: dict) -> dict:
    """``row`` with its class the user's (no probability), or no class at all."""
    given = bool(_text(row.get("class")))
    return {**row, SOURCE: USER if given else "", PROBABILITY: None}


def write_predictions(labels_layer: Any, predictions: list[Prediction]) -> int:
    """Write each prediction into its object's row, leaving the user's classes as they are.

    Objects without a row (labels painted or loaded without a table) get one. Returns how
    many objects got a predicted class.
    """
    objects.adopt_features(labels_layer)
    rows = {int(r["id"]): r for r in objects.object_rows(labels_layer)}
    missing = [p.object_id for p in predictions if p.object_id not in rows]
    if missing:
        boxes = object_boxes(np.asarray(labels_layer.data))
        for object_id in missing:
            box = boxes.get(object_id, (0, 0, 0, 0))
            rows[object_id] = {"id": object_id, **dict(zip(objects.BOX_COLUMNS, box, strict=True))}
    written = 0
    for prediction in predictions:
        row = rows[prediction.object_id]
        if is_example(row):
            rows[prediction.object_id] = {**row, SOURCE: USER, PROBABILITY: None}
            continue
        rows[prediction.object_id] = {
            **row,
            "class": prediction.class_name,
            SOURCE: PREDICTED,
            PROBABILITY: round(prediction.probability, 4),
        }
        written += 1
    objects.set_rows(labels_layer, [rows[i] for i in sorted(rows)])
    return written


def review_order(labels_layer: Any) -> list[tuple[int, str, float]]:
    """(id, class, probability) of the predicted objects, least certain first."""
    predicted = [
        (int(r["id"]), _text(r["class"]), float(r[PROBABILITY]))
        for r in objects.object_rows(labels_layer)
        if _text(r.get(SOURCE)) == PREDICTED and _number(r.get(PROBABILITY)) is not None
    ]
    return sorted(predicted, key=lambda item: (item[2], item[0]))


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number
