"""What a finetune reports while it runs (one :class:`FinetuneProgress` per event)."""

from __future__ import annotations

from dataclasses import dataclass

from .validation import ValidationFigures


@dataclass(frozen=True)
class FinetuneProgress:
    """Where a finetune stands; yielded after every embedding and every step.

    Attributes
    ----------
    stage
        ``"embedding"`` (``done``/``total`` planes); ``"training"`` after a step;
        ``"validation"`` when a validation starts, ``"validated"`` when its figures are
        in ``validation`` (``done``/``total`` steps).
    loss
        Training loss, averaged since the previous validation.
    validation
        The latest validation figures (None before the first).
    best
        The best validation figures so far (the weights that will be kept).
    """

    stage: str
    done: int
    total: int
    loss: float | None = None
    validation: ValidationFigures | None = None
    best: ValidationFigures | None = None
