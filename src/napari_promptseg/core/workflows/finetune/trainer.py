"""The training loop: a copy of the model learns from annotated planes, with validation.

    >>> steps = iter_finetune(segmenter, planes, FinetuneSettings(seed=1))
    >>> for progress in steps: ...            # FinetuneProgress after every step
    >>> result = ...                          # the generator's return value: FinetuneResult

The model being trained is a deep copy: the segmenter the user works with is never changed,
so cancelling (closing the generator, or ``should_cancel`` in :func:`finetune`) leaves
nothing behind, in memory or on disk. Writing the result is a separate step
(:func:`.output.save_finetuned`).

Embeddings ("decoder" mode) come from the segmenter itself (``iter_embed``: its cache, its
store, or its encoder), so they are always the base model's own: an embedding another model
left in a shared cache has another key and is not used.
"""

from __future__ import annotations

import copy
import datetime
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import Cancelled
from ...models.architectures import infer_model_type
from ...sam.engine import PromptSegmenter
from ...sam.families import FINETUNE
from .data import (
    TrainingDataError,
    TrainingPlane,
    check_enough,
    split_planes,
    validation_labels,
)
from .embeddings import embed_all, trainable_input
from .forward import augmented_batch, interactive_loss, object_batch
from .progress import FinetuneProgress
from .settings import MAX_CPU_ENCODER_PARAMETERS, FinetuneError, FinetuneSettings
from .targets import Geometry
from .validation import ValidationFigures, ValidationPlane, validate

IMPROVEMENT = 0.01  # a validation loss 1 % below the best so far resets the patience


@dataclass(eq=False)
class FinetuneResult:
    """A finished finetune.

    Attributes
    ----------
    sam
        The trained model (the best validation weights), in eval mode, on the base
        model's device.
    metadata
        JSON-ready description: base model, family, model type, mode, data summary,
        steps, validation figures before and after, settings, timings.
    history
        One entry per validation: step, seconds, training loss, validation loss, mIoU@1.
    """

    sam: Any
    metadata: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def before(self) -> dict[str, Any]:
        return dict(self.metadata["validation"]["before"])

    @property
    def after(self) -> dict[str, Any]:
        return dict(self.metadata["validation"]["after"])


def finetune(
    segmenter: PromptSegmenter,
    planes: Sequence[TrainingPlane],
    settings: FinetuneSettings | None = None,
    *,
    progress: Callable[[FinetuneProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    model_type: str | None = None,
) -> FinetuneResult:
    """:func:`iter_finetune` in one call.

    Raises
    ------
    Cancelled
        ``should_cancel()`` returned True (polled after every step); nothing was changed.
    """
    steps = iter_finetune(segmenter, planes, settings, model_type=model_type)
    return run_training(steps, progress, should_cancel, "finetuning")


def run_training(
    steps: Generator[Any, None, Any],
    progress: Callable[[Any], None] | None,
    should_cancel: Callable[[], bool] | None,
    what: str,
) -> Any:
    """Drive a training generator to its end, reporting each step; ``Cancelled`` (the
    generator closed, nothing written) when ``should_cancel()`` answers True."""
    try:
        while True:
            report = next(steps)
            if progress is not None:
                progress(report)
            if should_cancel is not None and should_cancel():
                steps.close()
                raise Cancelled(f"{what} cancelled; nothing was written.")
    except StopIteration as finished:
        return finished.value


def iter_finetune(
    segmenter: PromptSegmenter,
    planes: Sequence[TrainingPlane],
    settings: FinetuneSettings | None = None,
    *,
    model_type: str | None = None,
) -> Generator[FinetuneProgress, None, FinetuneResult]:
    """Finetune a copy of ``segmenter``'s model on ``planes``; see the module notes.

    Parameters
    ----------
    segmenter
        The base model (its weights, cache and store). It is not modified.
    planes
        Annotated planes (see :mod:`.data`); split into training and validation here.
    model_type
        The base model's architecture, recorded in the metadata (guessed from the weights
        when omitted).

    Raises
    ------
    TrainingDataError
        Too few objects (the message gives the minimum), objects too small to train on.
    FinetuneError
        "full" mode for a large encoder on a CPU; embeddings that do not fit the model.
    FamilyError
        The model's family cannot be finetuned (SAM 2.1).
    """
    settings = settings or FinetuneSettings()
    segmenter.require(FINETUNE)  # SAM 2.1: one clear message, before any work
    started = time.perf_counter()
    n_objects = check_enough(planes, settings.min_objects)
    train_planes, val_planes = split_planes(planes, settings.validation_fraction, settings.seed)
    sam = _trainable_copy(segmenter.sam, settings.mode)
    frozen = settings.mode == "decoder"

    geometry = Geometry.of(sam)
    # decoder mode reuses each plane's targets; full mode turns planes, so makes them per step
    # (and a thousand planes' targets would not fit in memory)
    train_targets = [
        geometry.targets(p.labels, p.object_ids()) if frozen else None for p in train_planes
    ]
    val_items = [
        ValidationPlane(p, geometry.targets(validation_labels(p), p.object_ids()))
        for p in val_planes
    ]
    if frozen:
        trainable_planes = [i for i, t in enumerate(train_targets) if t is not None and len(t)]
    else:
        trainable_planes = [i for i, p in enumerate(train_planes) if p.object_ids()]
    if not trainable_planes or not any(len(v.targets) for v in val_items):
        raise TrainingDataError(
            "the objects are too small to train on at SAM's mask resolution (each needs a few "
            "pixels of the 256 x 256 mask grid); annotate larger objects or zoom the images."
        )
    train_features: list[torch.Tensor | None] = [None] * len(train_planes)
    if frozen:
        embeddings = yield from embed_all(segmenter, [*train_planes, *val_planes])
        train_features = [trainable_input(embeddings[id(p)]) for p in train_planes]
        for item in val_items:
            item.embedding = embeddings[id(item.plane)]

    def run_validation() -> ValidationFigures:
        figures = validate(
            sam,
            val_items,
            model_id=segmenter.model_id if frozen else None,
            objects_per_batch=settings.objects_per_step,
            grid=geometry.grid,
            corrections=settings.corrections,
            box_probability=settings.box_probability,
            seed=settings.seed + 1,
            focal_weight=settings.focal_weight,
        )
        sam.train()
        return figures

    yield FinetuneProgress("validation", 0, settings.max_steps)
    before = best = run_validation()
    best_state = _state_copy(sam, frozen)
    best_step, best_seconds, waited = 0, 0.0, 0
    history = [_history_entry(0, time.perf_counter() - started, math.nan, before)]
    yield FinetuneProgress("validated", 0, settings.max_steps, validation=before, best=best)

    trainable = [p for p in sam.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(settings.max_steps))
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    usable = trainable_planes
    running: list[float] = []
    step = 0
    stop_reason = "max_steps"
    latest = before
    for step in range(1, settings.max_steps + 1):
        picks = rng.choice(
            usable, size=settings.planes_per_step, replace=len(usable) < settings.planes_per_step
        )
        if frozen:
            features = torch.cat([train_features[i] for i in picks])
            targets = [train_targets[i] for i in picks]
        else:
            features, targets = augmented_batch(
                sam, [train_planes[i] for i in picks], rng, settings.augment, geometry
            )
        chosen = [
            torch.randperm(len(t), generator=generator)[: settings.objects_per_step]
            for t in targets
        ]
        if not sum(len(c) for c in chosen):
            continue  # every object vanished from the grid after a turn: nothing to learn
        loss, _ = interactive_loss(
            sam,
            features,
            object_batch(targets, chosen, geometry.grid),
            corrections=settings.corrections,
            box_probability=settings.box_probability,
            generator=generator,
            focal_weight=settings.focal_weight,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        running.append(float(loss.detach()))

        out_of_time = (
            settings.max_seconds is not None
            and time.perf_counter() - started > settings.max_seconds
        )
        yield FinetuneProgress(
            "training", step, settings.max_steps, float(np.mean(running)), latest, best
        )
        if step % settings.eval_every and step != settings.max_steps and not out_of_time:
            continue
        yield FinetuneProgress(
            "validation", step, settings.max_steps, float(np.mean(running)), latest, best
        )
        latest = run_validation()
        seconds = time.perf_counter() - started
        history.append(_history_entry(step, seconds, float(np.mean(running)), latest))
        running = []
        if latest.loss < best.loss * (1 - IMPROVEMENT):
            waited = 0
        else:
            waited += 1
        if latest.loss < best.loss:
            best, best_state, best_step, best_seconds = (
                latest,
                _state_copy(sam, frozen),
                step,
                seconds,
            )
        yield FinetuneProgress("validated", step, settings.max_steps, None, latest, best)
        if waited > settings.patience:
            stop_reason = "early stopping"
            break
        if out_of_time:
            stop_reason = "time limit"
            break

    sam.load_state_dict(best_state, strict=False)
    sam.eval()
    for parameter in sam.parameters():
        parameter.requires_grad_(False)
    metadata = {
        "base_model": segmenter.name,
        "base_model_id": segmenter.model_id,
        "family": segmenter.family,
        "model_type": model_type or infer_model_type(sam.state_dict()) or "custom",
        "mode": settings.mode,
        "trained": "prompt encoder + mask decoder" if frozen else "all parameters",
        "data": _data_summary(planes, train_planes, val_planes, n_objects),
        "steps": step,
        "best_step": best_step,
        "stop_reason": stop_reason,
        "validation": {"before": before.as_dict(), "after": best.as_dict()},
        "settings": settings.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_to_best": round(best_seconds, 2),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": str(next(sam.parameters()).device),
    }
    return FinetuneResult(sam=sam, metadata=metadata, history=history)


# -- pieces -------------------------------------------------------------------------------


def _trainable_copy(sam: Any, mode: str) -> Any:
    """A deep copy of ``sam`` with the parameters of ``mode`` trainable."""
    encoder_size = sum(p.numel() for p in sam.image_encoder.parameters())
    device = next(sam.parameters()).device
    if mode == "full" and device.type == "cpu" and encoder_size > MAX_CPU_ENCODER_PARAMETERS:
        raise FinetuneError(
            f"training the image encoder ({encoder_size / 1e6:.0f} M parameters) needs a GPU; "
            "on a CPU finetune the prompt encoder and mask decoder (mode 'decoder')."
        )
    copied = copy.deepcopy(sam)
    copied.train()
    for name, parameter in copied.named_parameters():
        parameter.requires_grad_(mode == "full" or not name.startswith("image_encoder."))
    if mode == "decoder":
        copied.image_encoder.eval()
    return copied


def _state_copy(sam: Any, frozen: bool) -> dict[str, torch.Tensor]:
    """The weights that train (all of them unless the encoder is frozen), copied."""
    return {
        name: value.detach().clone()
        for name, value in sam.state_dict().items()
        if not (frozen and name.startswith("image_encoder."))
    }


def _lr_factor(max_steps: int) -> Callable[[int], float]:
    warmup = max(1, min(50, max_steps // 10))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, max_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _history_entry(
    step: int, seconds: float, train_loss: float, figures: ValidationFigures
) -> dict[str, float]:
    return {
        "step": step,
        "seconds": round(seconds, 3),
        "train_loss": train_loss,
        "val_loss": figures.loss,
        "val_miou_at_1": figures.miou_at_1,
    }


def _data_summary(
    planes: Sequence[TrainingPlane],
    train: Sequence[TrainingPlane],
    val: Sequence[TrainingPlane],
    n_objects: int,
) -> dict[str, Any]:
    by_object = any(p.holdout for p in val)
    val_objects = sum(len(p.holdout) if p.holdout else len(p.object_ids()) for p in val)
    sources = sorted({p.source for p in planes})
    return {
        "planes": len(planes),
        "objects": n_objects,
        "split": "objects" if by_object else "planes",
        "train_planes": len(train),
        "val_planes": len(val),
        "train_objects": n_objects - val_objects,
        "val_objects": val_objects,
        "sources": sources[:20] + ([f"... {len(sources) - 20} more"] if len(sources) > 20 else []),
    }
