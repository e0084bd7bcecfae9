"""What an evaluation reads from napari layers, taken once on the main thread.

The image layer's planes are converted as the session converts the plane in view (the
layer's contrast limits and RGB flag, see :func:`.slices.slice_rgb`), so embeddings the
session already computed are found in the cache; for a layer at napari's default contrast
that is also what ``promptseg evaluate`` computes from the file. The ground truth is the
labels layer's data (level 0 if multiscale); classes come from its features table (an
``id`` column, or napari's ``index``, and a ``class`` column), as the CLI reads them from
``LABELS_objects.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.workflows.evaluation import check_ground_truth, classes_from_rows
from ..core.workflows.evaluation.run import planes_shape
from ..core.workflows.stack import StackPlanes, planes_of
from .slices import LayerSnapshot


@dataclass(frozen=True)
class EvaluationInput:
    """The image's planes (converted lazily), the checked ground truth, its classes."""

    planes: StackPlanes
    labels: np.ndarray
    classes: dict[int, str] | None
    image_name: str
    labels_name: str


def evaluation_input(image_layer: Any, labels_layer: Any) -> EvaluationInput:
    """Read ``image_layer`` and ``labels_layer`` for an evaluation; refuse bad ground truth.

    Raises
    ------
    EvaluationError, ImageError
        The ground truth does not fit the image's planes, is empty, not integer, or one
        object covers a whole plane; the image cannot be converted.
    """
    snapshot = LayerSnapshot.of(image_layer)
    data = snapshot.data[0] if snapshot.multiscale else snapshot.data
    planes = planes_of(data, contrast_limits=snapshot.contrast_limits, rgb=snapshot.rgb)
    truth = (
        labels_layer.data[0] if getattr(labels_layer, "multiscale", False) else labels_layer.data
    )
    # a copy: the layer may be painted while the evaluation runs
    labels = check_ground_truth(np.array(truth), planes_shape(planes), planes.plane_shape)
    return EvaluationInput(
        planes=planes,
        labels=labels,
        classes=layer_classes(labels_layer),
        image_name=str(image_layer.name),
        labels_name=str(labels_layer.name),
    )


def layer_classes(labels_layer: Any) -> dict[int, str] | None:
    """``id → class`` from a labels layer's features (None when it has no classes)."""
    features = getattr(labels_layer, "features", None)
    if features is None or "class" not in features:
        return None
    records = features.to_dict(orient="records")
    rows = [row if "id" in row else {**row, "id": row.get("index")} for row in records]
    return classes_from_rows(rows) or None
