"""Training data from the session: the image layer's planes and the objects committed on them.

Planes are converted as the session converts the plane in view (the layer's contrast limits
and RGB flag, :class:`.slices.LayerSnapshot`), so the embeddings the session computed while
annotating are found in its cache and not computed again. Only planes holding objects are
taken; the labels are copied (the user may go on annotating while the model trains).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.workflows.evaluation.run import planes_shape
from ..core.workflows.finetune import TrainingDataError, TrainingPlane
from ..core.workflows.stack import planes_of
from .slices import LayerSnapshot


def training_planes(image_layer: Any, labels_layer: Any) -> list[TrainingPlane]:
    """The annotated planes of ``image_layer`` with their labels from ``labels_layer``.

    Raises
    ------
    TrainingDataError
        A layer is missing, or the labels do not have the image's planes' shape.
    """
    if image_layer is None or labels_layer is None:
        raise TrainingDataError(
            "finetuning needs an image layer and a labels layer with committed objects."
        )
    snapshot = LayerSnapshot.of(image_layer)
    data = snapshot.data[0] if snapshot.multiscale else snapshot.data
    planes = planes_of(data, contrast_limits=snapshot.contrast_limits, rgb=snapshot.rgb)
    labels = (
        labels_layer.data[0] if getattr(labels_layer, "multiscale", False) else labels_layer.data
    )
    labels = np.asarray(labels)
    expected = (*planes_shape(planes), *planes.plane_shape)
    if labels.shape != expected:
        raise TrainingDataError(
            f"the labels layer {labels_layer.name!r} is {_text(labels.shape)}, the image "
            f"{image_layer.name!r} {_text(expected)}; they must have the same planes."
        )
    found = []
    for index, label in enumerate(planes.labels):
        plane_labels = labels[label] if label else labels
        if not plane_labels.any():
            continue
        _, rgb = planes[index]
        where = f" plane {label}" if label else ""
        found.append(
            TrainingPlane(
                rgb=rgb, labels=np.array(plane_labels), source=f"{image_layer.name}{where}"
            )
        )
    return found


def _text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(int(n)) for n in shape)
