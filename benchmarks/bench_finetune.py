"""Finetuning speed on this machine, and what training from scratch reaches.

All in one run, random weights (the compute equals the trained models'):

1. **Decoder-only training steps per second, vit_b-sized decoder** (SAM's prompt encoder +
   mask decoder, 256 wide: the same for vit_b, vit_l and vit_h). One plane's embedding
   (1, 256, 64, 64) from a 512 x 512 image (the whole 256 x 256 mask grid in use),
   ``--objects`` prompt sets per step (default 16), a first prompt then ``--corrections``
   correcting clicks (default 2): 3 decodes per object and step, backward, AdamW. Baseline
   in the same run: decoding the same prompt sets for inference (no gradient), one decode
   per round, with upstream's ``MaskDecoder``: ratio = training step / inference.
2. **A 100-object session to a stable validation loss**: synthetic 384 x 384 images of
   nuclei and cells holding about 100 objects, embedded with vit_b (timed: the cost the session already paid while
   annotating), then :func:`finetune` with the defaults of the dock section (decoder mode,
   validation every 25 steps, early stopping after 4 validations without a 1 % gain).
   Reports the seconds until the best validation loss and until training stopped, against
   the embedding time.
3. **Training from scratch** (the honest test's setting, longer): the tiny SAM, every
   weight trainable from random initialisation, on synthetic images made here; held-out
   mIoU@1 before and after.

    python benchmarks/bench_finetune.py                  # everything (~20-30 min on 2 cores)
    python benchmarks/bench_finetune.py --quick          # the tiny model, a few steps (~1 min)
    python benchmarks/bench_finetune.py --only steps     # part 1 only (steps, session, scratch)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.workflows.finetune import FinetuneSettings, finetune, make_plane
from napari_promptseg.core.workflows.finetune.forward import (
    decode_batch,
    interactive_loss,
    object_batch,
)
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells
from napari_promptseg.core.workflows.finetune.targets import plane_targets, sample_points


def build(tiny: bool):
    torch.manual_seed(0)
    if tiny:
        from napari_promptseg.testing import build_tiny_sam

        return build_tiny_sam(), "tiny-random"
    from segment_anything import sam_model_registry

    return sam_model_registry["vit_b"]().eval(), "vit_b-random"


def nuclei_planes(count: int, seed: int, shape=(512, 512)):
    return [
        make_plane(s.image, s.labels, f"synthetic {seed + i}")
        for i, s in enumerate(synthetic_cells(seed + i, shape, kind="nuclei") for i in range(count))
    ]


def bench_steps(args) -> None:
    sam, name = build(args.quick)
    sam.train()
    for parameter in sam.image_encoder.parameters():
        parameter.requires_grad_(False)
    channels = sam.prompt_encoder.embed_dim
    features = torch.randn(1, channels, 64, 64)
    plane = nuclei_planes(1, 11)[0]
    targets = plane_targets(plane.labels, plane.object_ids())
    chosen = torch.arange(args.objects) % len(targets)  # objects repeat if the plane has few
    batch = object_batch([targets], [chosen], 256)
    trainable = [p for p in sam.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    generator = torch.Generator().manual_seed(0)

    def train_step() -> None:
        loss, _ = interactive_loss(
            sam, features, batch, corrections=args.corrections, box_probability=0.5,
            generator=generator,
        )  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    points, _ = sample_points(batch.truth, 4.0, generator)
    coords, labels = points[:, None, :], torch.ones((len(points), 1), dtype=torch.int)

    def inference() -> None:
        with torch.no_grad():
            sparse, dense = sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            for _ in range(args.corrections + 1):
                decode_batch(
                    sam, features, torch.zeros(len(points), dtype=torch.long), sparse, dense
                )

    train_step(), inference()  # warm-up
    train_times, infer_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        train_step()
        train_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        inference()
        infer_times.append(time.perf_counter() - start)
    step, infer = float(np.median(train_times)), float(np.median(infer_times))
    print(
        f"[steps] {name} decoder, 512x512 image (256x256 mask grid), {args.objects} objects x "
        f"{args.corrections + 1} decodes per step, {torch.get_num_threads()} threads"
    )
    print(
        f"  training step {step:.3f} s = {1 / step:.2f} steps/s ({args.objects / step:.1f} objects/s)"
    )
    print(f"  baseline: inference of the same decodes {infer:.3f} s; ratio {step / infer:.2f}x")


def session_planes(target: int, seed: int):
    """Synthetic 384 x 384 planes (nuclei and cells) with ``target`` objects annotated in all:
    the last plane keeps only the objects still needed (a user annotates some, not all)."""
    planes, objects, index = [], 0, 0
    while objects < target:
        sample = synthetic_cells(seed + index, (384, 384))
        index += 1
        ids = [int(i) for i in np.unique(sample.labels) if i][: target - objects]
        labels = np.where(np.isin(sample.labels, ids), sample.labels, 0)
        plane = make_plane(sample.image, labels, f"synthetic {seed + index - 1}")
        if plane.object_ids():
            planes.append(plane)
            objects += len(plane.object_ids())
    return planes, objects


def bench_session(args) -> None:
    sam, name = build(args.quick)
    planes, objects = session_planes(args.session_objects, 21)
    segmenter = PromptSegmenter(sam, name)
    start = time.perf_counter()
    for plane in planes:
        segmenter.embed(plane.rgb, prepare=False)
    embedding = time.perf_counter() - start
    settings = FinetuneSettings(max_steps=args.max_steps, seed=0)
    start = time.perf_counter()

    def show(progress) -> None:  # each validation as it happens: a long run shows its curve
        if progress.stage == "validated" and progress.validation is not None:
            v = progress.validation
            print(
                f"  step {progress.done:4d} at {time.perf_counter() - start:7.1f} s: "
                f"validation loss {v.loss:.4f}, mIoU@1 {v.miou_at_1:.3f}",
                flush=True,
            )

    result = finetune(segmenter, planes, settings, progress=show)
    total = time.perf_counter() - start
    meta = result.metadata
    print(f"[session] {name}, {objects} objects on {len(planes)} planes of 384x384, decoder mode")
    print(f"  embedding the planes (already paid while annotating): {embedding:.1f} s")
    print(
        f"  finetune: best validation loss at step {meta['best_step']} after "
        f"{meta['seconds_to_best']:.1f} s; stopped ({meta['stop_reason']}) at step "
        f"{meta['steps']} after {total:.1f} s"
    )
    print(
        f"  ratio to the embedding: {meta['seconds_to_best'] / embedding:.2f}x to the best, "
        f"{total / embedding:.2f}x in all"
    )
    before, after = result.before, result.after
    print(
        f"  validation loss {before['loss']:.4f} -> {after['loss']:.4f}, mIoU@1 "
        f"{before['miou_at_1']:.3f} -> {after['miou_at_1']:.3f} (random weights: the figure "
        "that matters here is the time)"
    )


def bench_scratch(args) -> None:
    from napari_promptseg.testing import build_tiny_sam

    planes = [
        make_plane(s.image, s.labels, f"synthetic {i}")
        for i, s in enumerate(synthetic_cells(i, (128, 128), kind="nuclei") for i in range(32))
    ]
    segmenter = PromptSegmenter(build_tiny_sam(seed=0), "tiny-random")
    settings = FinetuneSettings(
        mode="full", max_steps=args.scratch_steps, eval_every=max(args.scratch_steps // 4, 1),
        patience=100, objects_per_step=6, corrections=0, focal_weight=0.0, learning_rate=3e-3,
        validation_fraction=0.25, seed=0,
    )  # fmt: skip
    start = time.perf_counter()
    result = finetune(segmenter, planes, settings)
    seconds = time.perf_counter() - start
    before, after = result.before, result.after
    print(
        f"[scratch] tiny SAM from random weights, {args.scratch_steps} steps on 24 synthetic "
        f"images, 8 held out ({after['objects']} objects), {seconds:.0f} s"
    )
    print(f"  held-out mIoU@1 {before['miou_at_1']:.3f} -> {after['miou_at_1']:.3f}")
    for entry in result.history:
        print(f"    step {entry['step']:4d}  val mIoU@1 {entry['val_miou_at_1']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps")
    parser.add_argument("--only", choices=("steps", "session", "scratch"))
    parser.add_argument("--objects", type=int, default=16)
    parser.add_argument("--corrections", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--session-objects", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--scratch-steps", type=int, default=300)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.session_objects, args.max_steps, args.scratch_steps = 2, 20, 4, 4
    parts = {"steps": bench_steps, "session": bench_session, "scratch": bench_scratch}
    for key, run in parts.items():
        if args.only in (None, key):
            run(args)


if __name__ == "__main__":
    main()
