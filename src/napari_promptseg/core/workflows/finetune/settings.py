"""What a finetune does: which weights train, for how long, on which prompts.

Two modes:

* ``"decoder"`` (the default, and the only one that makes sense on a CPU for a real SAM):
  the image encoder is frozen and the prompt encoder and mask decoder (about 4 M parameters
  for every SAM size) train on image embeddings computed once, by the model itself, and
  kept in its cache;
* ``"full"``: every parameter trains, the encoder included, from the images (augmented with
  flips and quarter turns). Refused on a CPU for encoders above
  :data:`MAX_CPU_ENCODER_PARAMETERS` (vit_b's 86 M would take days); fine for the tiny and
  demo models, and on a GPU for any model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...errors import PromptSegError
from .data import MIN_OBJECTS

MODES = ("decoder", "full")
#: Largest image encoder trained on a CPU in "full" mode (the demo model's is ~0.3 M).
MAX_CPU_ENCODER_PARAMETERS = 5_000_000
DEFAULT_LEARNING_RATE = {"decoder": 1e-4, "full": 1e-3}


class FinetuneError(PromptSegError, ValueError):
    """A finetune cannot run with these settings or this model: says which and why."""


@dataclass(frozen=True)
class FinetuneSettings:
    """Settings of one finetune (all have defaults that suit a session of 100 objects).

    Attributes
    ----------
    mode
        ``"decoder"`` or ``"full"`` (see the module notes).
    max_steps
        Optimiser steps at most; early stopping usually ends sooner.
    objects_per_step
        Objects prompted per plane and step (a batch of prompt sets on one embedding).
    planes_per_step
        Planes per step ("full" mode encodes them as one batch; "decoder" mode sums their
        losses).
    corrections
        Correcting clicks after the first prompt, each a round of the loss.
    box_probability
        Chance that an object's first prompt is a box rather than a point.
    focal_weight
        Weight of the focal loss beside the dice loss (weight 1): 20 as in the SAM paper;
        0 for dice alone, which trains small objects from random weights far faster.
    learning_rate
        AdamW learning rate after a short warm-up, decaying to a tenth by a cosine;
        ``None``: 1e-4 for "decoder", 1e-3 for "full".
    weight_decay
        AdamW weight decay.
    validation_fraction
        Share of the planes (or, with few planes, of each plane's objects) held out.
    eval_every
        Steps between validations.
    patience
        Validations without a 1 % improvement of the validation loss before stopping.
    min_objects
        Fewest objects accepted.
    augment
        Random flips and quarter turns of the planes ("full" mode only: embeddings of
        turned planes would need the encoder).
    seed
        The same seed, data and settings give the same run (on the same device and torch).
    max_seconds
        Stop after this much time (checked at validations; the best weights are kept);
        None: no limit. A run cut by time is not repeated exactly by its seed.
    """

    mode: str = "decoder"
    max_steps: int = 400
    objects_per_step: int = 16
    planes_per_step: int = 1
    corrections: int = 2
    box_probability: float = 0.5
    focal_weight: float = 20.0
    learning_rate: float | None = None
    weight_decay: float = 0.01
    validation_fraction: float = 0.2
    eval_every: int = 25
    patience: int = 4
    min_objects: int = MIN_OBJECTS
    augment: bool = True
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FinetuneError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}.")
        for name in ("max_steps", "objects_per_step", "planes_per_step", "eval_every"):
            _require(self, name, 1)
        for name in ("corrections", "patience", "min_objects", "seed"):
            _require(self, name, 0)
        if not 0.0 <= self.box_probability <= 1.0:
            raise FinetuneError(f"box_probability must lie in [0, 1]; got {self.box_probability}.")
        if not self.focal_weight >= 0:
            raise FinetuneError(f"focal_weight must be 0 or more; got {self.focal_weight}.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise FinetuneError(f"learning_rate must be positive; got {self.learning_rate}.")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise FinetuneError(f"max_seconds must be positive; got {self.max_seconds}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise FinetuneError(
                f"validation_fraction must lie between 0 and 1; got {self.validation_fraction}."
            )

    @property
    def lr(self) -> float:
        """The learning rate to use."""
        return self.learning_rate or DEFAULT_LEARNING_RATE[self.mode]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the checkpoint's metadata."""
        values = dataclasses.asdict(self)
        values["learning_rate"] = self.lr
        return values


def _require(settings: FinetuneSettings, name: str, minimum: int) -> None:
    value = getattr(settings, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FinetuneError(f"{name} must be a whole number >= {minimum}; got {value!r}.")
