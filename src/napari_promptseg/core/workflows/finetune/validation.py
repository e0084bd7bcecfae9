"""Validation during a finetune: the loss on held-out objects and their mIoU after one click.

* **Loss**: :func:`.forward.interactive_loss` on every held-out object, with prompts drawn
  from a fixed seed, so two validations differ only by the weights.
* **mIoU@1**: the evaluator of ``promptseg evaluate`` (:mod:`..evaluation.simulate`) with
  one click: a positive point at each object's most interior pixel, the candidate with the
  highest predicted IoU, compared at full resolution. The figure a user gets from
  ``promptseg evaluate --clicks 1`` on the same planes.

The evaluator decodes through a fresh :class:`PromptSegmenter` on the weights being trained
(its decoder caches per-image work that depends on the weights). In "decoder" mode that
segmenter shares the base model's embeddings: the encoder is frozen, so they are exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...sam.embedding import EmbeddingCache, ImageEmbedding, iter_encode
from ...sam.engine import PromptSegmenter
from ..evaluation.simulate import EvaluationSettings, evaluate_plane
from .data import TrainingPlane, validation_labels
from .forward import interactive_loss, object_batch
from .targets import PlaneTargets

_counter = itertools.count()


@dataclass(frozen=True)
class ValidationFigures:
    """Figures on the held-out objects.

    Attributes
    ----------
    loss
        Mean training loss on them (fixed prompts).
    miou_at_1
        Mean IoU after one click at the most interior pixel.
    objects
        How many objects the mIoU is over.
    """

    loss: float
    miou_at_1: float
    objects: int

    def as_dict(self) -> dict[str, float | int]:
        return {"loss": self.loss, "miou_at_1": self.miou_at_1, "objects": self.objects}


@dataclass(eq=False)
class ValidationPlane:
    """A held-out plane, its objects on the mask grid, and (decoder mode) its embedding."""

    plane: TrainingPlane
    targets: PlaneTargets
    embedding: ImageEmbedding | None = None


def validate(
    sam: Any,
    planes: Sequence[ValidationPlane],
    *,
    model_id: str | None,
    objects_per_batch: int,
    grid: int,
    corrections: int,
    box_probability: float,
    seed: int,
    focal_weight: float,
) -> ValidationFigures:
    """Validate ``sam`` (in place; put back into train mode by the caller).

    Parameters
    ----------
    model_id
        The base model's id when the encoder is frozen (the planes carry its embeddings);
        None when the encoder trains: the planes are embedded again with it.
    """
    sam.eval()
    cache = EmbeddingCache(max_bytes=1 << 40)  # the validation planes only, for this call
    if model_id is None:
        model_id = f"finetune-validation-{next(_counter)}"
        for item in planes:
            steps = iter_encode(sam, item.plane.rgb, model_id)
            cache.put(_run(steps))
    else:
        for item in planes:
            if item.embedding is None:
                raise ValueError("decoder-mode validation planes need their embedding")
            cache.put(item.embedding)
    segmenter = PromptSegmenter(sam, model_id, cache=cache, name="finetune")
    generator = torch.Generator().manual_seed(seed)
    losses: list[tuple[float, int]] = []
    ious: list[float] = []
    with torch.no_grad():
        for item in planes:
            embedding = segmenter.cached(item.plane.rgb)
            assert embedding is not None  # put into the cache above
            for start in range(0, len(item.targets), objects_per_batch):
                chosen = torch.arange(start, min(start + objects_per_batch, len(item.targets)))
                loss, _ = interactive_loss(
                    sam,
                    embedding.features,
                    object_batch([item.targets], [chosen], grid),
                    corrections=corrections,
                    box_probability=box_probability,
                    generator=generator,
                    focal_weight=focal_weight,
                )
                losses.append((float(loss), len(chosen)))
            results = evaluate_plane(
                segmenter,
                item.plane.rgb,
                validation_labels(item.plane),
                EvaluationSettings(clicks=1),
            )
            ious += [result.ious[0] for result in results]
    total = sum(n for _, n in losses)
    return ValidationFigures(
        loss=sum(value * n for value, n in losses) / max(total, 1),
        miou_at_1=float(np.mean(ious)) if ious else float("nan"),
        objects=len(ious),
    )


def _run(steps: Any) -> ImageEmbedding:
    try:
        while True:
            next(steps)
    except StopIteration as finished:
        return finished.value
