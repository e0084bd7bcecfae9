"""``promptseg finetune``: teach a model your data from folders of image/label pairs.

    promptseg finetune images/ --labels masks/ --model vit_b --name my_nuclei
    promptseg finetune annotated/ --model demo --name demo_mine --steps 200 --seed 1

Labels are found as ``<stem>_labels.tif`` (what the Image folder workflow and ``promptseg
segment`` write), else a file of the same name in ``--labels``. The prompt encoder and mask
decoder train on the base model's embeddings (computed once, kept in the embedding store);
``--mode full`` trains every weight (refused on a CPU for SAM-sized encoders). The result is
a model of "my models": ``promptseg models`` lists it, ``--model NAME`` loads it. Nothing is
written before training ends; see docs/finetune.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .common import add_model_arguments, load_segmenter


def register(commands: Any) -> None:
    finetune = commands.add_parser(
        "finetune",
        help="finetune a model on folders of image/label pairs; it joins 'my models'",
        description=__doc__.split("\n\n")[2].replace("\n", " ") if __doc__ else None,
    )
    finetune.add_argument("images", type=Path, help="folder of images (tif, png, jpg, bmp)")
    finetune.add_argument(
        "--labels", type=Path, help="folder of their label images (default: the image folder)"
    )
    finetune.add_argument(
        "--name", required=True, help="name of the new model (letters, digits, '.', '_', '-')"
    )
    add_model_arguments(finetune)
    group = finetune.add_argument_group("training (defaults suit a session of ~100 objects)")
    group.add_argument(
        "--mode",
        choices=("decoder", "full"),
        default="decoder",
        help="decoder: the encoder frozen (its embeddings cached); full: the image encoder "
        "trains too (small models on a CPU, e.g. demo; SAM-sized ones need a GPU)",
    )
    group.add_argument(
        "--target",
        choices=("mask-decoder", "instance-decoder"),
        default="mask-decoder",
        help="what trains: SAM's mask decoder, or micro-sam's instance decoder (AIS)",
    )
    group.add_argument(
        "--initial-features", type=int, default=64, help="new instance decoder's width"
    )
    group.add_argument("--steps", type=int, default=400, help="at most this many steps")
    group.add_argument("--objects-per-step", type=int, default=16)
    group.add_argument("--corrections", type=int, default=2, help="correcting clicks per object")
    group.add_argument("--lr", type=float, default=None, help="learning rate (default by mode)")
    group.add_argument("--validation", type=float, default=0.2, help="share held out")
    group.add_argument("--eval-every", type=int, default=25, help="steps between validations")
    group.add_argument("--patience", type=int, default=4, help="validations without progress")
    group.add_argument("--max-minutes", type=float, default=None, help="stop training after")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--output-dir", type=Path, help="where to write (default: my models)")
    finetune.set_defaults(run=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    from ..core.workflows.finetune import (
        FinetuneSettings,
        check_model_name,
        iter_finetune,
        planes_from_folder,
        save_finetuned,
    )
    from ..core.workflows.finetune.data import check_enough

    # everything that can be refused is refused before the model loads
    check_model_name(args.name)
    if args.target == "instance-decoder":
        return _run_instance_decoder(args)
    settings = FinetuneSettings(
        mode=args.mode,
        max_steps=args.steps,
        objects_per_step=args.objects_per_step,
        corrections=args.corrections,
        learning_rate=args.lr,
        validation_fraction=args.validation,
        eval_every=args.eval_every,
        patience=args.patience,
        seed=args.seed,
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
    )
    planes, skipped = planes_from_folder(args.images, args.labels)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    count = check_enough(planes, settings.min_objects)
    print(f"{count} objects on {len(planes)} planes", file=sys.stderr)

    from ..core.storage.store import EmbeddingStore

    segmenter = load_segmenter(args, store=EmbeddingStore())
    started = time.perf_counter()
    steps = iter_finetune(segmenter, planes, settings)
    try:
        while True:
            _report(next(steps), started)
    except StopIteration as finished:
        result = finished.value
    saved = save_finetuned(result, args.name, args.output_dir)
    before, after = result.before, result.after
    print(
        f"validation mIoU@1 {before['miou_at_1']:.3f} -> {after['miou_at_1']:.3f}, loss "
        f"{before['loss']:.4f} -> {after['loss']:.4f} ({result.metadata['steps']} steps, "
        f"best at {result.metadata['best_step']}, {result.metadata['stop_reason']})"
    )
    print(f"saved model {saved.name!r}: {saved.path} (sha256 {saved.sha256[:16]}...)")
    print(f"use it with: promptseg segment IMAGE --model {saved.name} ...")
    return 0


def _report(progress: Any, started: float) -> None:
    elapsed = time.perf_counter() - started
    if progress.stage == "embedding" and progress.done == progress.total:
        print(f"[{elapsed:6.0f} s] embedded {progress.total} planes", file=sys.stderr)
    elif progress.stage == "validated" and progress.validation is not None:
        v, best = progress.validation, progress.best
        print(
            f"[{elapsed:6.0f} s] step {progress.done:4d}/{progress.total}  val loss "
            f"{v.loss:.4f}  val mIoU@1 {v.miou_at_1:.3f}  (best {best.loss:.4f})",
            file=sys.stderr,
        )


def _run_instance_decoder(args: argparse.Namespace) -> int:
    from ..core.storage.store import EmbeddingStore
    from ..core.workflows.finetune import planes_from_folder
    from ..core.workflows.finetune.data import check_enough
    from ..core.workflows.finetune.instance_training import (
        InstanceTrainingSettings,
        iter_train_instance_decoder,
        save_instance_decoder,
    )

    settings = InstanceTrainingSettings(
        max_steps=args.steps,
        learning_rate=args.lr or 1e-3,
        initial_features=args.initial_features,
        train_encoder=args.mode == "full",  # small encoders on a CPU, any on a GPU
        validation_fraction=args.validation,
        eval_every=args.eval_every,
        patience=args.patience,
        seed=args.seed,
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
    )
    planes, skipped = planes_from_folder(args.images, args.labels)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    count = check_enough(planes, settings.min_objects)
    print(f"{count} objects on {len(planes)} planes", file=sys.stderr)
    segmenter = load_segmenter(args, store=EmbeddingStore())
    # the base's own decoder is the starting point: a --checkpoint file, or the registry
    # model's file (the demo's, a micro-sam model's)
    base = getattr(args, "checkpoint", None) or segmenter.checkpoint
    steps = iter_train_instance_decoder(segmenter, planes, settings, base_checkpoint=base)
    started = time.perf_counter()
    try:
        while True:
            progress = next(steps)
            if progress.stage == "validated" and progress.validation is not None:
                v = progress.validation
                print(
                    f"[{time.perf_counter() - started:6.0f} s] step {progress.done:4d}/"
                    f"{progress.total}  val loss {v.loss:.4f}  AIS IoU {v.mean_iou:.3f}  "
                    f"F1@0.5 {v.f1:.3f}",
                    file=sys.stderr,
                )
    except StopIteration as finished:
        result = finished.value
    saved = save_instance_decoder(result, args.name, args.output_dir)
    before, after = result.before, result.after
    print(
        f"validation AIS mean IoU {before['mean_iou']:.3f} -> {after['mean_iou']:.3f}, "
        f"F1@0.5 {before['f1']:.3f} -> {after['f1']:.3f} ({result.metadata['steps']} steps)"
    )
    print(f"saved model {saved.name!r}: {saved.path} (sha256 {saved.sha256[:16]}...)")
    print(f"use it with: promptseg everything IMAGE --model {saved.name} --mode ais ...")
    return 0
