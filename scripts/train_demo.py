"""Train the shipped ``demo`` model on synthetic fluorescence images, and evaluate it.

The demo model is the demo architecture (:mod:`napari_promptseg.core.models.demo`, model type
``vit_demo``: SAM's classes, a 64-wide two-block image encoder) plus a small micro-sam
instance decoder (UNETR head, 8 features at its finest level), both trained from random
weights, end to end, on foreground / centre / boundary distance targets with micro-sam's loss
(``core.workflows.finetune.instance_training`` with ``train_encoder=True``). What a CPU can
learn in minutes: automatic instance segmentation (AIS). Its SAM mask decoder stays at its
random initialisation (which object a lone click means needs far more compute), so the
checkpoint asks for clicks to select the AIS object under them
(``core.workflows.instances.clicks``: ``"prompts": "instances"`` in its metadata).

Every random choice comes from ``--seed`` (images, split, initial weights); the command and
the training history are recorded in the checkpoint. The shipped file was made with

    python scripts/train_demo.py --out src/napari_promptseg/core/models/weights/demo.pt \
        --steps 900 --max-seconds 2100

(about 35 minutes on 2 CPU cores; 900 steps, stopped by --max-seconds 2100), then its sha256 and size pinned in ``core.models.registry``.

    python scripts/train_demo.py --evaluate PATH.pt     # the held-out figures of a checkpoint
    python scripts/train_demo.py --out d.pt --quick     # a minute: does it run?

Evaluation: held-out synthetic images (a seed stream training never uses) through the real
loader and engine: AIS's mean matched IoU (each true object's best IoU with a found one, 0
when missed) and F1 at IoU 0.5; and one click per object (at its most interior pixel)
through the click path: mean IoU of the mask it gives. The same for the random initial
weights, as the baseline.
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
from napari_promptseg.core.models.demo import build_demo_sam
from napari_promptseg.core.models.my_models import METADATA_KEY
from napari_promptseg.core.sam.prompts import Prompts
from napari_promptseg.core.storage.files import atomic_write
from napari_promptseg.core.workflows.evaluation.clicks import mask_iou, most_interior_pixel
from napari_promptseg.core.workflows.finetune import make_plane
from napari_promptseg.core.workflows.finetune.instance_training import (
    InstanceTrainingSettings,
    train_instance_decoder,
)
from napari_promptseg.core.workflows.finetune.instance_validation import match_instances
from napari_promptseg.core.workflows.finetune.output import _json_safe
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells
from napari_promptseg.core.workflows.instances.clicks import (
    INSTANCE_PROMPTS,
    PROMPTS_KEY,
    use_instance_clicks,
)
from napari_promptseg.core.workflows.instances.segmenter import InstanceSegmenter

EVAL_SEED_OFFSET = 1_000_003  # evaluation images come from a seed stream training never uses
DEMO_DECODER_FEATURES = 8  # the UNETR's finest width: 0.5 s per 512² image on 2 CPU cores


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.evaluate:
        print(json.dumps(evaluate(args.evaluate, args), indent=2))
        return 0

    started = time.perf_counter()
    planes = make_planes(args.seed, args.images, args.workers, args.size)
    print(f"{len(planes)} training images in {time.perf_counter() - started:.0f} s", flush=True)
    segmenter = PromptSegmenter(
        build_demo_sam(seed=args.seed).to(args.device),
        f"demo-random-seed{args.seed}",
        name="demo (random)",
    )
    settings = InstanceTrainingSettings(
        max_steps=args.steps,
        learning_rate=args.lr,
        initial_features=DEMO_DECODER_FEATURES,
        from_base=False,
        train_encoder=True,
        validation_fraction=args.val_images / len(planes),
        eval_every=args.eval_every,
        patience=args.patience,
        min_objects=0,
        seed=args.seed,
        max_seconds=args.max_seconds,
    )

    def show(progress) -> None:
        if progress.stage == "validated" and progress.validation is not None:
            v = progress.validation
            print(
                f"step {progress.done:5d}  {time.perf_counter() - started:6.0f} s  "
                f"val loss {v.loss:.4f}  mean matched IoU {v.mean_iou:.3f}  F1@0.5 {v.f1:.3f}",
                flush=True,
            )

    result = train_instance_decoder(segmenter, planes, settings, progress=show)
    metadata = dict(result.metadata)
    metadata.update(
        {
            PROMPTS_KEY: INSTANCE_PROMPTS,
            "base_model": "none (trained from random initial weights)",
            "command": "python scripts/train_demo.py " + " ".join(argv or sys.argv[1:]),
            "history": result.history,
        }
    )
    metadata["data"]["generator"] = "napari_promptseg.core.workflows.finetune.synthetic"
    assert result.decoder is not None
    save(result.sam, result.decoder, metadata, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)", flush=True)
    if args.no_eval:
        return 0
    report = evaluate(args.out, args)
    report["training"] = {k: metadata[k] for k in ("steps", "best_step", "seconds", "validation")}
    text = json.dumps(report, indent=2)
    print(text)
    args.out.with_suffix(".report.json").write_text(text + "\n", encoding="utf-8")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="checkpoint to write")
    parser.add_argument("--evaluate", type=Path, help="only evaluate this checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--images", type=int, default=400, help="training images")
    parser.add_argument("--val-images", type=int, default=8, help="validation images (of --images)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=None, help="fixed image size (rows cols)"
    )
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=None, help="stop training after")
    parser.add_argument("--eval-images", type=int, default=24, help="held-out evaluation images")
    parser.add_argument("--workers", type=int, default=1, help="processes drawing the images")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    parser.add_argument("--quick", action="store_true", help="a tiny run to check the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.val_images, args.steps, args.eval_every = 6, 2, 3, 3
        args.eval_images, args.size = 2, (160, 200)
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


def save(sam, decoder, metadata: dict, path: Path) -> None:
    """micro-sam's format (``model_state`` + ``decoder_state``) plus our metadata."""
    payload = {
        "model_state": {k: v.cpu() for k, v in sam.state_dict().items()},
        "decoder_state": {k: v.cpu() for k, v in decoder.state_dict().items()},
        METADATA_KEY: _json_safe(metadata),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(payload, file))


def evaluate(checkpoint: Path, args: argparse.Namespace) -> dict:
    """AIS and one-click figures of ``checkpoint`` and of the random initial weights."""
    planes = make_planes(args.seed, args.eval_images, args.workers, args.size, EVAL_SEED_OFFSET)
    trained = InstanceSegmenter.load(checkpoint=str(checkpoint), device=args.device)
    random_init = _random_init(trained, args.seed)
    report: dict = {"evaluation_images": len(planes), "models": {}}
    for name, model in (("random init", random_init), ("trained", trained)):
        use_instance_clicks(model.segmenter, model)
        row = figures(model, planes)
        report["models"][name] = row
        print(f"{name}: {row}", flush=True)
    return report


def _random_init(trained: InstanceSegmenter, seed: int) -> InstanceSegmenter:
    """The same architecture with the seeded random weights it was trained from."""
    from napari_promptseg.core.workflows.instances.decoder import InstanceDecoder

    torch.manual_seed(seed)
    decoder = InstanceDecoder(trained.decoder.embed_dim, DEMO_DECODER_FEATURES).eval()
    segmenter = PromptSegmenter(build_demo_sam(seed=seed), f"demo-random-seed{seed}")
    segmenter.checkpoint = None
    return InstanceSegmenter(segmenter, decoder)


def figures(model: InstanceSegmenter, planes: list) -> dict:
    ious, click_ious, seconds = [], [], []
    tp = n_true = n_pred = 0
    for plane in planes:
        start = time.perf_counter()
        labels = model.ais(plane.rgb)
        seconds.append(time.perf_counter() - start)
        best, matched, count = match_instances(plane.labels, labels)
        ious += best
        tp, n_true, n_pred = tp + matched, n_true + len(best), n_pred + count
        embedding = model.segmenter.embed(plane.rgb)
        for label in plane.object_ids():
            truth = plane.labels == label
            row, col = most_interior_pixel(truth)
            result = model.segmenter.predict(embedding, Prompts.from_points([[row, col]]))
            click_ious.append(mask_iou(truth, result.mask))
    return {
        "objects": n_true,
        "found": n_pred,
        "mean_matched_iou": round(float(np.mean(ious)), 4),
        "f1_at_0.5": round(2 * tp / (n_true + n_pred), 4) if n_true + n_pred else 0.0,
        "one_click_mean_iou": round(float(np.mean(click_ious)), 4),
        "ais_seconds_per_image": round(float(np.median(seconds)), 3),
    }


if __name__ == "__main__":
    os.environ.setdefault("NAPARI_PROMPTSEG_OFFLINE", "1")
    raise SystemExit(main())
