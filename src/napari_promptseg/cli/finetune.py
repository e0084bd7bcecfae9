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
    group.add_argument("--mode", choices=("decoder", "full"), default="decoder")
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
