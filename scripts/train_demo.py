"""Train the demo model on synthetic fluorescence images, and evaluate it.

The shipped ``demo`` model (``--arch demo``, the default): the demo architecture
(:mod:`core.models.demo`, model type ``vit_demo``) keeps its image encoder at its seeded
random initialisation and trains only the prompt encoder and mask decoder ("decoder" mode of
:func:`core.workflows.finetune.iter_finetune`), from embeddings computed once per image:
thousands of steps on a CPU. ``--arch tiny --mode full`` is the earlier attempt (every
weight of the tiny test model trained end to end), kept for comparison.

Every random choice comes from ``--seed``: the images, the split, the prompts, the initial
weights (the frozen encoder's included); the command is recorded in the checkpoint's
metadata. The shipped weights were made with the command in docs/finetune.md.

    python scripts/train_demo.py --out demo.pt                 # train, then evaluate
    python scripts/train_demo.py --evaluate demo.pt            # evaluate a checkpoint only
    python scripts/train_demo.py --out d.pt --quick            # a minute: does it run?

Evaluation: held-out synthetic images (seeds never used for training), the evaluator of
``promptseg evaluate`` (a click at the most interior pixel, then clicks in the largest error
region, 20 at most): mIoU@1, @3, @5, NoC@85, NoC@90, against the same architecture with its
random initial weights.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.models.demo import DEMO_MODEL_TYPE, DEMO_PE_SCALE, build_demo_sam
from napari_promptseg.core.models.device import select_device
from napari_promptseg.core.models.my_models import METADATA_KEY
from napari_promptseg.core.models.tiny import TINY_MODEL_TYPE, build_tiny_sam
from napari_promptseg.core.storage.files import atomic_write
from napari_promptseg.core.workflows.evaluation.simulate import EvaluationSettings, evaluate_plane
from napari_promptseg.core.workflows.evaluation.summary import summarize_group
from napari_promptseg.core.workflows.finetune import FinetuneSettings, finetune, make_plane
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells

ARCHITECTURES = {
    "tiny": (TINY_MODEL_TYPE, build_tiny_sam),
    "demo": (DEMO_MODEL_TYPE, build_demo_sam),
}
EVAL_SEED_OFFSET = 1_000_003  # evaluation images come from a seed stream training never uses


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = select_device(args.device)
    model_type, builder = ARCHITECTURES[args.arch]

    def build(seed: int):
        return (
            builder(seed=seed, pe_scale=args.pe_scale)
            if args.arch == "demo"
            else builder(seed=seed)
        )

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.evaluate:
        sam = build(seed=args.seed)
        from napari_promptseg.core.models.checkpoint import load_state_dict

        sam.load_state_dict(load_state_dict(args.evaluate))
        report = evaluate_models({"trained": sam.to(device).eval()}, args)
        print(json.dumps(report, indent=2))
        return 0

    started = time.perf_counter()
    planes = make_planes(args.seed, args.images, args.workers, args.size)
    print(
        f"{len(planes)} training images generated in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    base = build(seed=args.seed).to(device)
    segmenter = PromptSegmenter(
        base, f"{args.arch}-random-seed{args.seed}", name=f"{args.arch} (random)"
    )
    settings = FinetuneSettings(
        mode=args.mode,
        max_steps=args.steps,
        objects_per_step=args.objects,
        planes_per_step=args.planes_per_step,
        corrections=args.corrections,
        learning_rate=args.lr,
        focal_weight=args.focal_weight,
        validation_fraction=args.val_images / len(planes),
        eval_every=args.eval_every,
        patience=args.patience,
        seed=args.seed,
        max_seconds=args.max_seconds,
    )
    last = time.perf_counter()

    def show(progress) -> None:
        nonlocal last
        if progress.stage == "validated" and progress.validation is not None:
            v = progress.validation
            print(
                f"step {progress.done:5d}  {time.perf_counter() - started:6.0f} s  "
                f"val loss {v.loss:.4f}  val mIoU@1 {v.miou_at_1:.3f}",
                flush=True,
            )
        elif progress.stage == "training" and time.perf_counter() - last > 30:
            last = time.perf_counter()
            print(f"step {progress.done:5d}  train loss {progress.loss:.4f}", flush=True)

    result = finetune(segmenter, planes, settings, progress=show, model_type=model_type)
    metadata = dict(result.metadata)
    metadata["base_model"] = "none (trained from random initial weights)"
    metadata["data"]["generator"] = "napari_promptseg.core.workflows.finetune.synthetic"
    metadata["command"] = "python scripts/train_demo.py " + " ".join(argv or sys.argv[1:])
    metadata["history"] = result.history
    save(result.sam, metadata, args.out, half=args.half)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)
    if args.no_eval:
        return 0
    report = evaluate_models(
        {"random init": build(seed=args.seed).to(device).eval(), "trained": result.sam}, args
    )
    report["training"] = {k: metadata[k] for k in ("steps", "best_step", "seconds", "validation")}
    text = json.dumps(report, indent=2)
    print(text)
    args.out.with_suffix(".report.json").write_text(text + "\n", encoding="utf-8")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="checkpoint to write")
    parser.add_argument("--evaluate", type=Path, help="only evaluate this checkpoint")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="demo")
    parser.add_argument(
        "--mode",
        choices=("decoder", "full"),
        default=None,
        help="decoder: frozen random encoder, cached embeddings (default for demo); "
        "full: every weight (default for tiny)",
    )
    parser.add_argument(
        "--pe-scale",
        type=float,
        default=DEMO_PE_SCALE,
        help="demo: scale of the positional encoding's random frequencies",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: best available)")
    parser.add_argument("--images", type=int, default=1200, help="training images")
    parser.add_argument(
        "--val-images", type=int, default=12, help="validation images (of --images)"
    )
    parser.add_argument(
        "--size", type=int, nargs=2, default=None, help="fixed image size (rows cols)"
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--planes-per-step", type=int, default=8)
    parser.add_argument("--objects", type=int, default=16, help="objects per plane and step")
    parser.add_argument("--corrections", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--focal-weight", type=float, default=0.0, help="0: dice alone (learns from scratch)"
    )
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=None, help="stop training after")
    parser.add_argument("--eval-images", type=int, default=16, help="held-out evaluation images")
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    parser.add_argument("--half", action="store_true", help="store the weights as float16")
    parser.add_argument("--quick", action="store_true", help="a tiny run to check the script")
    args = parser.parse_args(argv)
    if args.mode is None:
        args.mode = "decoder" if args.arch == "demo" else "full"
    if args.quick:
        args.images, args.val_images, args.steps, args.eval_every = 8, 2, 4, 2
        args.planes_per_step, args.eval_images, args.clicks, args.size = 2, 2, 3, (160, 200)
    if not args.evaluate and args.out is None:
        parser.error("give --out (train) or --evaluate CHECKPOINT")
    return args


def _plane(job: tuple[int, tuple[int, int] | None]):
    seed, size = job
    image = synthetic_cells(seed, size)
    return make_plane(image.image, image.labels, f"synthetic seed {seed}")


def make_planes(seed: int, count: int, workers: int, size=None, offset: int = 0) -> list:
    seeds = np.random.SeedSequence(seed + offset).generate_state(count)
    jobs = [(int(s), tuple(size) if size else None) for s in seeds]
    if workers <= 1:
        return [_plane(job) for job in jobs]
    # spawn: no fork of a process that may hold a CUDA context
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_plane, jobs, chunksize=8))


def save(sam, metadata: dict, path: Path, *, half: bool) -> None:
    from napari_promptseg.core.workflows.finetune.output import _json_safe

    state = {
        k: (v.half() if half and v.is_floating_point() else v).cpu()
        for k, v in sam.state_dict().items()
    }
    payload = {"model_state": state, METADATA_KEY: _json_safe(metadata)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(payload, file))


def evaluate_models(models: dict, args: argparse.Namespace) -> dict:
    """mIoU@k and NoC of each model on held-out images; ``"random init"`` gets one click.

    Also the "all foreground" baseline: each object's IoU with the union of every object
    of its image (what a model that finds bright things but ignores the click reaches).
    """
    planes = make_planes(args.seed, args.eval_images, args.workers, args.size, EVAL_SEED_OFFSET)
    report = {
        "evaluation_images": len(planes),
        "clicks": args.clicks,
        "all_foreground_miou": all_foreground_miou(planes),
        "models": {},
    }
    print(f"all-foreground baseline mIoU: {report['all_foreground_miou']:.3f}", flush=True)
    for name, sam in models.items():
        settings = EvaluationSettings(clicks=1 if name == "random init" else args.clicks)
        segmenter = PromptSegmenter(sam, f"eval-{name}", name=name)
        results = []
        for plane in planes:
            results += evaluate_plane(segmenter, plane.rgb, plane.labels, settings)
        row = summarize_group(name, "(all)", results, settings).as_dict()
        report["models"][name] = row
        print(f"{name}: {row}", flush=True)
    return report


def all_foreground_miou(planes: list) -> float:
    ious = []
    for plane in planes:
        foreground = plane.labels > 0
        for label in plane.object_ids():
            ious.append((plane.labels == label).sum() / foreground.sum())
    return float(np.mean(ious))


if __name__ == "__main__":
    raise SystemExit(main())
