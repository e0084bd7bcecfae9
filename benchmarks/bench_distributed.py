"""Batch embedding on Dask against the single-process loop: planes per minute, overhead per plane.

Same machine, same run, vit_b with random weights (the encoder's compute equals the trained
model's), every plane a distinct 512² image written to one tif stack, every embedding
written to a zarr store:

* baseline — the single-process loop ``promptseg embed`` ran before ``--scheduler`` existed:
  ``PromptSegmenter.embed`` plane after plane (torch on all cores);
* in-process runner — the same through :func:`run_items` without a scheduler (what
  ``promptseg embed`` does now without ``--scheduler``);
* local:1 and local:2 — a LocalCluster of 1 and 2 worker processes (torch threads = cores /
  workers), timed once the workers have loaded the model (steady state); the start-up
  (cluster + model load per worker) is printed apart.

Overhead per plane = (seconds per plane on local:1 − baseline) / baseline; the goal is ≤ 5 %.
The last lines give the paper estimate for a 10 000-image screen from these figures (see
docs/scale.md).

    python benchmarks/bench_distributed.py [--planes 6] [--size 512]
    python benchmarks/bench_distributed.py --model vit_t --planes 12       # MobileSAM
    python benchmarks/bench_distributed.py --model tiny --planes 8   # plumbing check, seconds
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_promptseg.core.storage.zarr_store import ZarrEmbeddingStore
from napari_promptseg.core.workflows.distributed.recipe import ModelRecipe
from napari_promptseg.core.workflows.distributed.runner import run_items
from napari_promptseg.core.workflows.distributed.scheduler import (
    open_client,
    parse_scheduler,
    torch_threads_for,
)
from napari_promptseg.core.workflows.distributed.sources import ImageSource
from napari_promptseg.core.workflows.distributed.tasks import EmbedTask, embed_task
from napari_promptseg.core.workflows.stack import planes_of

SCREEN = 10_000  # images in the paper estimate


def save_checkpoint(model: str, folder: Path) -> tuple[Path, str]:
    """A checkpoint file workers can load: random vit_b or MobileSAM vit_t, or the tiny model."""
    torch.manual_seed(0)
    if model == "tiny":
        from napari_promptseg.testing import save_tiny_checkpoint

        return save_tiny_checkpoint(folder / "tiny.pth"), "vit_tiny"
    from napari_promptseg.core.models.architectures import BUILDERS

    path = folder / f"{model}_random.pth"
    torch.save(BUILDERS[model]().state_dict(), path)  # the reference package's own builder
    return path, model


def write_stack(path: Path, planes: int, size: int, seed: int) -> ImageSource:
    """``planes`` distinct uint8 planes (so no plane is ever a cache hit of another)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (planes, size, size), dtype=np.uint8)
    tifffile.imwrite(path, data, photometric="minisblack")
    return ImageSource.create(path).resolved()


def tasks_of(source: ImageSource) -> list[EmbedTask]:
    return [EmbedTask(source, (label,)) for label in source.planes().labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", choices=("vit_b", "vit_t", "tiny"), default="vit_b", help="vit_t: MobileSAM"
    )
    parser.add_argument("--planes", type=int, default=6, help="planes per timed run")
    parser.add_argument("--size", type=int, default=512, help="plane side in pixels")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        folder = Path(tmp)
        checkpoint, model_type = save_checkpoint(args.model, folder)
        store = ZarrEmbeddingStore(folder / "store.zarr")
        seed = iter(range(100))

        def recipe(threads: int | None) -> ModelRecipe:
            return ModelRecipe.create(
                checkpoint=checkpoint,
                model_type=model_type,
                store=store,
                cache_bytes=0,
                torch_threads=threads,
            )

        # baseline: the plain loop, one process, torch on every core
        here = recipe(None)
        segmenter = here.build()
        source = write_stack(folder / "base.tif", args.planes, args.size, next(seed))
        planes = planes_of(tifffile.imread(source.path))
        segmenter.embed(planes.rgb(planes.labels[0]), prepare=False)  # warm-up: first call
        source = write_stack(folder / "base2.tif", args.planes, args.size, next(seed))
        planes = planes_of(tifffile.imread(source.path))
        started = time.perf_counter()
        for label in planes.labels:
            segmenter.embed(planes.rgb(label), prepare=False)
        baseline = (time.perf_counter() - started) / args.planes

        source = write_stack(folder / "runner.tif", args.planes, args.size, next(seed))
        started = time.perf_counter()
        run_items(embed_task, tasks_of(source), recipe=here, segmenter=segmenter)
        runner = (time.perf_counter() - started) / args.planes

        rows = [("baseline: one process, plain loop", baseline, None), ("in-process runner", runner, None)]  # fmt: skip
        for count in args.workers:
            spec = parse_scheduler(f"local:{count}")
            on = recipe(torch_threads_for(spec))
            started = time.perf_counter()
            with open_client(spec) as client:
                warm = write_stack(folder / f"warm{count}.tif", count, args.size, next(seed))
                run_items(embed_task, tasks_of(warm), recipe=on, client=client)
                startup = time.perf_counter() - started
                source = write_stack(folder / f"w{count}.tif", args.planes, args.size, next(seed))
                started = time.perf_counter()
                outcomes = run_items(embed_task, tasks_of(source), recipe=on, client=client)
                per_plane = (time.perf_counter() - started) / args.planes
            assert sum(o.computed for o in outcomes) == args.planes
            rows.append((f"local:{count}", per_plane, startup))

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"model {args.model} (random weights), {args.planes} planes of {args.size}², "
          f"{cores} cores, zarr store")  # fmt: skip
    print(f"{'run':36s} {'s/plane':>8s} {'planes/min':>10s} {'vs baseline':>12s}  start-up")
    for name, seconds, startup in rows:
        extra = f"  {startup:.1f} s (cluster + model per worker)" if startup is not None else ""
        print(f"{name:36s} {seconds:8.2f} {60 / seconds:10.1f} {seconds / baseline:11.3f}×{extra}")
    one = dict((n, s) for n, s, _ in rows).get("local:1")
    if one is not None:
        print(f"overhead per plane on local:1: {100 * (one - baseline) / baseline:+.1f} % "
              "(goal ≤ 5 %)")  # fmt: skip
    best = min(s for n, s, _ in rows if n.startswith("local:"))
    print(f"paper: {SCREEN} images on this machine's best = {SCREEN * best / 3600:.1f} h; on N "
          f"such nodes ≈ {SCREEN * best / 3600:.1f} h / N (see docs/scale.md)")  # fmt: skip


if __name__ == "__main__":
    main()
