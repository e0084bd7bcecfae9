"""Training an instance decoder (micro-sam's UNETR head, AIS) on cached embeddings.

    >>> steps = iter_train_instance_decoder(segmenter, planes, InstanceTrainingSettings())
    >>> for progress in steps: ...           # InstanceProgress after every step
    >>> result = ...                         # the generator's return value
    >>> save_instance_decoder(result, "my_nuclei")   # micro-sam format, in "my models"

The encoder is frozen by default: each plane is embedded once by the base model (its cache
and store, as :mod:`.embeddings`), and only the decoder trains, on per-object distance
targets with micro-sam's loss (:mod:`.instance_targets`). ``train_encoder=True`` trains the
image encoder with it, end to end (each step encodes its plane): for small encoders trained
from scratch, as the demo model's (``scripts/train_demo.py``), whose random features alone
are too poor; refused on a CPU for encoders over
:data:`.settings.MAX_CPU_ENCODER_PARAMETERS` weights. Each plane goes through the decoder on its
own (batch of one), exactly the forward of inference: the decoder's BatchNorm normalises
with the statistics of the embedding at hand (see :mod:`..instances.decoder`), so a batch
of several planes would train a different function than the one AIS runs.

Validation runs AIS (:func:`..instances.ais.segment_maps`, micro-sam's defaults) on the
held-out planes (or held-out objects, whose pixels the training loss then ignores) and
matches its instances to the annotations: mean matched IoU (each annotated object's best
IoU, 0 when missed) and F1 at IoU 0.5. The result is written as micro-sam writes a
trained model (``model_state`` = the base SAM's weights, ``decoder_state`` = the decoder),
so it loads in micro-sam and here (``InstanceSegmenter.load(checkpoint=...)``).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import math
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ...errors import ModelError
from ...models.architectures import infer_model_type
from ...models.my_models import entry_path, my_models_dir
from ...sam.embedding import ImageEmbedding, resize_for_sam
from ...sam.engine import PromptSegmenter
from ...sam.families import FINETUNE
from ..instances.ais import predict_maps, segment_maps
from ..instances.clicks import INSTANCE_PROMPTS, PROMPTS_KEY, InstanceClickDecoder
from ..instances.decoder import InstanceDecoder
from .data import TrainingDataError, TrainingPlane, check_enough, split_planes, validation_labels
from .embeddings import embed_all, trainable_input
from .instance_targets import distance_loss, distance_targets
from .instance_validation import InstanceFigures, inside_zone, match_instances
from .output import SavedModel, _previous_file, check_model_name, save_finetuned
from .settings import FinetuneError
from .trainer import FinetuneResult, _data_summary, _lr_factor, run_training

#: What ``promptseg finetune --target`` trains: SAM's mask decoder (prompted segmentation)
#: or micro-sam's instance decoder (AIS / APG).
TARGETS = ("mask-decoder", "instance-decoder")
INSTANCE_TARGET = "instance-decoder"
MICRO_SAM_FEATURES = 64  # micro-sam's get_unetr builds decoders of this width only
HOLDOUT_MARGIN = 3  # px around held-out objects the training loss ignores


@dataclass(frozen=True)
class InstanceTrainingSettings:
    """Settings of an instance-decoder training.

    Attributes
    ----------
    max_steps
        Optimiser steps (one plane each) at most.
    learning_rate
        AdamW learning rate after a short warm-up, decaying to a tenth by a cosine.
    weight_decay
        AdamW weight decay.
    initial_features
        Width of a new decoder's finest level: micro-sam loads only 64 (the default);
        smaller is faster (tests). Ignored when training on from the base's decoder.
    from_base
        Start from the base model's own decoder when it has one (a micro-sam checkpoint);
        otherwise, or when False, from a new randomly initialised decoder.
    train_encoder
        Train the image encoder too (module notes); the base model is not changed.
    validation_fraction, eval_every, patience, min_objects, seed, max_seconds
        As in :class:`.settings.FinetuneSettings`; the best validation loss is kept.
    """

    max_steps: int = 300
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    initial_features: int = MICRO_SAM_FEATURES
    from_base: bool = True
    train_encoder: bool = False
    validation_fraction: float = 0.2
    eval_every: int = 25
    patience: int = 4
    min_objects: int = 10
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name, minimum in (
            ("max_steps", 1),
            ("eval_every", 1),
            ("initial_features", 1),
            ("patience", 0),
            ("min_objects", 0),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise FinetuneError(f"{name} must be a whole number >= {minimum}; got {value!r}.")
        if not self.learning_rate > 0:
            raise FinetuneError(f"learning_rate must be positive; got {self.learning_rate}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise FinetuneError(
                f"validation_fraction must lie between 0 and 1; got {self.validation_fraction}."
            )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise FinetuneError(f"max_seconds must be positive; got {self.max_seconds}.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InstanceProgress:
    """As :class:`.progress.FinetuneProgress`, with :class:`InstanceFigures`."""

    stage: str
    done: int
    total: int
    loss: float | None = None
    validation: InstanceFigures | None = None
    best: InstanceFigures | None = None


@dataclass(eq=False)
class InstanceTrainingResult(FinetuneResult):
    """A trained decoder; ``sam`` is the base model (unchanged, saved as ``model_state``)."""

    decoder: InstanceDecoder | None = None
    base_checkpoint: Path | None = None


@dataclass(eq=False)
class _Item:
    features: torch.Tensor
    embedding: ImageEmbedding
    rgb: np.ndarray  # the plane, encoded at each step when the encoder trains
    target: torch.Tensor
    weight: torch.Tensor | None
    truth: np.ndarray  # validation: the annotated objects judged
    zone: np.ndarray | None  # validation: where predictions count (None: everywhere)


def train_instance_decoder(
    segmenter: PromptSegmenter,
    planes: Sequence[TrainingPlane],
    settings: InstanceTrainingSettings | None = None,
    *,
    progress: Callable[[InstanceProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    base_checkpoint: str | os.PathLike | None = None,
) -> InstanceTrainingResult:
    """:func:`iter_train_instance_decoder` in one call (``Cancelled`` when asked to stop)."""
    steps = iter_train_instance_decoder(
        segmenter, planes, settings, base_checkpoint=base_checkpoint
    )
    result: InstanceTrainingResult = run_training(steps, progress, should_cancel, "training")
    return result


def iter_train_instance_decoder(
    segmenter: PromptSegmenter,
    planes: Sequence[TrainingPlane],
    settings: InstanceTrainingSettings | None = None,
    *,
    base_checkpoint: str | os.PathLike | None = None,
) -> Generator[InstanceProgress, None, InstanceTrainingResult]:
    """Train an instance decoder for ``segmenter``'s model on ``planes`` (module notes).

    Parameters
    ----------
    base_checkpoint
        The base model's checkpoint file: its ``decoder_state`` (if any) is the starting
        point (``settings.from_base``), and it is recorded so saving never replaces it.

    Raises
    ------
    TrainingDataError
        Too few objects, or none on the planes after the split.
    FamilyError
        SAM 2.1 (micro-sam's decoders read SAM / MobileSAM embeddings).
    """
    settings = settings or InstanceTrainingSettings()
    segmenter.require(FINETUNE)
    if segmenter.family == "sam2.1":
        raise FinetuneError("instance decoders run on SAM / MobileSAM models, not SAM 2.1.")
    started = time.perf_counter()
    n_objects = check_enough(planes, settings.min_objects)
    train_planes, val_planes = split_planes(planes, settings.validation_fraction, settings.seed)
    if not train_planes or not val_planes:
        raise TrainingDataError("too few annotated objects to hold some out for validation.")
    torch.manual_seed(settings.seed)
    decoder, start = _initial_decoder(segmenter, base_checkpoint, settings)
    encoder = _trainable_encoder(segmenter) if settings.train_encoder else None
    embeddings: dict[int, ImageEmbedding] = {}
    steps = embed_all(segmenter, [*train_planes, *val_planes])
    try:
        while True:
            report = next(steps)
            yield InstanceProgress(report.stage, report.done, report.total)
    except StopIteration as finished:
        embeddings = finished.value
    held = {id(p.rgb): p.holdout for p in val_planes if p.holdout}
    train = [_training_item(p, embeddings[id(p)], held.get(id(p.rgb))) for p in train_planes]
    val = [_validation_item(p, embeddings[id(p)]) for p in val_planes]
    trained = (decoder,) if encoder is None else (decoder, encoder.image_encoder)

    yield InstanceProgress("validation", 0, settings.max_steps)
    before = best = _validate(decoder, val, encoder)
    best_state = [copy.deepcopy(m.state_dict()) for m in trained]
    best_step, waited, step = 0, 0, 0
    history = [_entry(0, time.perf_counter() - started, math.nan, before)]
    yield InstanceProgress("validated", 0, settings.max_steps, validation=before, best=best)

    for module in trained:
        module.train()
    # not channels_last: faster on a CPU, but torch 2.14's CPU backward then gives wrong
    # gradients for this decoder (the same maps, gradients off by ~100 %: nothing learns)
    params = [p for m in trained for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(settings.max_steps))
    rng = np.random.default_rng(settings.seed)
    running: list[float] = []
    latest = before
    stop_reason = "max_steps"
    for step in range(1, settings.max_steps + 1):
        item = train[int(rng.integers(len(train)))]
        loss = _loss(decoder, item, encoder)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        running.append(float(loss.detach()))
        out_of_time = (
            settings.max_seconds is not None
            and time.perf_counter() - started > settings.max_seconds
        )
        mean_loss = float(np.mean(running))
        yield InstanceProgress("training", step, settings.max_steps, mean_loss, latest, best)
        if step % settings.eval_every and step != settings.max_steps and not out_of_time:
            continue
        yield InstanceProgress("validation", step, settings.max_steps, mean_loss, latest, best)
        latest = _validate(decoder, val, encoder)
        for module in trained:
            module.train()
        history.append(_entry(step, time.perf_counter() - started, mean_loss, latest))
        running = []
        waited = 0 if latest.loss < best.loss * 0.99 else waited + 1
        if latest.loss < best.loss:
            best, best_step = latest, step
            best_state = [copy.deepcopy(m.state_dict()) for m in trained]
        yield InstanceProgress("validated", step, settings.max_steps, None, latest, best)
        if waited > settings.patience:
            stop_reason = "early stopping"
            break
        if out_of_time:
            stop_reason = "time limit"
            break

    for module, state in zip(trained, best_state, strict=True):
        module.load_state_dict(state)
        module.eval()
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    metadata = {
        "base_model": segmenter.name,
        "base_model_id": segmenter.model_id,
        "family": segmenter.family,
        "model_type": infer_model_type(segmenter.sam.state_dict()) or "custom",
        "mode": "decoder" if encoder is None else "full",
        "target": INSTANCE_TARGET,
        "trained": f"instance decoder (UNETR, {start})",
        "initial_features": int(decoder.out_conv.weight.shape[1]),
        "data": _data_summary(planes, train_planes, val_planes, n_objects),
        "steps": step,
        "best_step": best_step,
        "stop_reason": stop_reason,
        "validation": {"before": before.as_dict(), "after": best.as_dict()},
        "settings": settings.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": str(next(decoder.parameters()).device),
    }
    if isinstance(segmenter.decoder, InstanceClickDecoder):  # a demo's clicks stay AIS picks
        metadata[PROMPTS_KEY] = INSTANCE_PROMPTS
    return InstanceTrainingResult(
        sam=segmenter.sam if encoder is None else encoder,
        metadata=metadata,
        history=history,
        decoder=decoder,
        base_checkpoint=Path(base_checkpoint) if base_checkpoint is not None else None,
    )


def save_instance_decoder(
    result: InstanceTrainingResult, name: str, folder: str | os.PathLike | None = None
) -> SavedModel:
    """Write ``result`` as model ``name`` of "my models", in micro-sam's format
    (``model_state`` + ``decoder_state``), through :func:`.output.save_finetuned`.

    Raises
    ------
    FinetuneError
        A bad name, or one whose current file is the base checkpoint (saving would delete
        it: the base checkpoint is never replaced).
    """
    check_model_name(name)
    target = Path(folder).expanduser() if folder is not None else my_models_dir()
    previous = _previous_file(entry_path(target, name))
    base = result.base_checkpoint
    if base is not None and previous is not None and _same_file(previous, base):
        raise FinetuneError(
            f"model {name!r} is the base model being trained on; choose another name "
            "(a finetune never replaces its base checkpoint)."
        )
    return save_finetuned(result, name, folder)


# -- pieces -------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _initial_decoder(
    segmenter: PromptSegmenter,
    base_checkpoint: str | os.PathLike | None,
    settings: InstanceTrainingSettings,
) -> tuple[InstanceDecoder, str]:
    device = segmenter.device
    if settings.from_base and base_checkpoint is not None:
        from ..instances.checkpoint import load_instance_decoder

        model = _ModelView(segmenter, Path(base_checkpoint))
        try:
            found = load_instance_decoder(model, device=device, progress=False, offline=True)
        except ModelError:
            pass
        else:
            return copy.deepcopy(found).float(), "from the base model's decoder"
    channels = int(segmenter.sam.prompt_encoder.embed_dim)
    decoder = InstanceDecoder(embed_dim=channels, initial_features=settings.initial_features)
    return decoder.float().to(device), "from scratch"


@dataclass
class _ModelView:
    """What :func:`..instances.checkpoint.load_instance_decoder` reads of a loaded model."""

    segmenter: PromptSegmenter
    checkpoint: Path

    def __getattr__(self, name: str) -> Any:
        if name in ("name", "family", "sam", "device"):
            return getattr(self.segmenter, name)
        if name == "model_type":
            return None
        raise AttributeError(name)


def _trainable_encoder(segmenter: PromptSegmenter) -> Any:
    """A copy of the engine's SAM whose image encoder trains (the engine's model, and the
    embeddings it cached, stay as they are)."""
    from .settings import MAX_CPU_ENCODER_PARAMETERS

    size = sum(p.numel() for p in segmenter.sam.image_encoder.parameters())
    if segmenter.device.type == "cpu" and size > MAX_CPU_ENCODER_PARAMETERS:
        raise FinetuneError(
            f"training the image encoder of {segmenter.name} ({size / 1e6:.0f} M weights) "
            "needs a GPU; on a CPU train the instance decoder alone (the default)."
        )
    sam = copy.deepcopy(segmenter.sam)
    for parameter in sam.image_encoder.parameters():
        parameter.requires_grad_(True)
    return sam


def _training_item(
    plane: TrainingPlane, embedding: ImageEmbedding, holdout: frozenset[int] | None
) -> _Item:
    target = torch.from_numpy(distance_targets(plane.labels))[None]
    weight = None
    if holdout:  # the validation objects of this plane: neither object nor background
        zone = _zone(plane.labels, holdout)
        weight = torch.from_numpy((~zone).astype(np.float32))[None, None]
    features = trainable_input(embedding)
    return _Item(features, embedding, plane.rgb, target, weight, plane.labels, None)


def _validation_item(plane: TrainingPlane, embedding: ImageEmbedding) -> _Item:
    target = torch.from_numpy(distance_targets(plane.labels))[None]
    truth = validation_labels(plane)
    zone = _zone(plane.labels, plane.holdout) if plane.holdout else None
    weight = None if zone is None else torch.from_numpy(zone.astype(np.float32))[None, None]
    return _Item(trainable_input(embedding), embedding, plane.rgb, target, weight, truth, zone)


def _zone(labels: np.ndarray, ids: frozenset[int]) -> np.ndarray:
    mask = np.isin(labels, list(ids))
    return np.asarray(ndimage.binary_dilation(mask, iterations=HOLDOUT_MARGIN))


def _features(item: _Item, encoder: Any) -> torch.Tensor:
    if encoder is None:
        return item.features
    pixels, _ = resize_for_sam(encoder, item.rgb)
    return encoder.image_encoder(pixels)


def _loss(decoder: InstanceDecoder, item: _Item, encoder: Any = None) -> torch.Tensor:
    embedding = item.embedding
    features = _features(item, encoder)
    out = decoder(features, tuple(embedding.input_size), tuple(embedding.original_size))
    return distance_loss(out, item.target, item.weight)


def _validate(
    decoder: InstanceDecoder, items: Sequence[_Item], encoder: Any = None
) -> InstanceFigures:
    decoder.eval()
    if encoder is not None:
        encoder.image_encoder.eval()
    losses, ious = [], []
    tp = n_true = n_pred = 0
    with torch.no_grad():
        for item in items:
            losses.append(float(_loss(decoder, item, encoder)))
            embedding = item.embedding
            if encoder is not None:  # the embedding of the encoder as it is now
                embedding = dataclasses.replace(embedding, features=_features(item, encoder))
            predicted = segment_maps(predict_maps(decoder, embedding))
            if item.zone is not None:
                predicted = inside_zone(predicted, item.zone)
            best, matched, count = match_instances(item.truth, predicted)
            ious += best
            tp, n_true, n_pred = tp + matched, n_true + len(best), n_pred + count
    f1 = 2 * tp / (n_true + n_pred) if n_true + n_pred else 0.0
    return InstanceFigures(
        loss=float(np.mean(losses)) if losses else math.nan,
        mean_iou=float(np.mean(ious)) if ious else math.nan,
        f1=float(f1),
        objects=n_true,
        predicted=n_pred,
    )


def _entry(step: int, seconds: float, train_loss: float, f: InstanceFigures) -> dict[str, float]:
    return {
        "step": step,
        "seconds": round(seconds, 3),
        "train_loss": train_loss,
        "val_loss": f.loss,
        "val_mean_iou": f.mean_iou,
        "val_f1": f.f1,
    }
