"""Evaluation speed against the same clicks through upstream SamPredictor, in the same run.

vit_b with random weights (the compute equals the trained model's) on the synthetic cells
sample (384 x 512, its ~20 cells as ground truth). Both sides get the image embedded first
(``PromptSegmenter.embed`` / ``SamPredictor.set_image``, timed and reported apart) and then
evaluate every object with the same click simulator (``core.workflows.evaluation.clicks``):

  * ours: ``evaluate_plane`` (PromptSegmenter.predict on the cached embedding);
  * upstream: a loop over ``SamPredictor.predict`` with the same prompts, the same
    candidate choice (highest predicted IoU of 3 for a lone point, else 1 mask) and the
    previous low-res logits as mask input — what one writes with segment-anything alone.

The two are alternated ``--repeats`` times; the script checks that both give the same IoU
after every click for every object (the decoder is bit-exact), then prints objects per
second for each and the ratio ours / upstream (above 1.0 = we evaluate more per second).

    python benchmarks/bench_evaluate.py                    # 20 clicks, every cell, 2 repeats
    python benchmarks/bench_evaluate.py --quick            # 3 objects, 5 clicks, 1 repeat
    python benchmarks/bench_evaluate.py [--clicks 20] [--objects N] [--start point|box]
        [--no-mask-input] [--repeats 2] [--model vit_b|tiny] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage
from segment_anything import SamPredictor, sam_model_registry

from napari_promptseg._sample_data import sample_cells_image
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.sam.prompts import to_sam_prompts
from napari_promptseg.core.workflows.evaluation import (
    EvaluationSettings,
    evaluate_plane,
    first_prompt,
    mask_iou,
    next_click,
)
from napari_promptseg.core.workflows.evaluation.ground_truth import plane_objects
from napari_promptseg.testing import build_tiny_sam


def scene(max_objects: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The sample cells as (H, W, 3) uint8 and their labels (bright connected regions)."""
    gray = sample_cells_image()
    labels, _ = ndimage.label(gray > 90)
    if max_objects is not None:
        labels[labels > max_objects] = 0
    return np.repeat(gray[..., None], 3, axis=2), labels


def upstream_object(predictor, truth, settings):
    """The evaluation loop of one object written with segment-anything's SamPredictor."""
    prompts, _ = first_prompt(truth, settings.start)
    ious = []
    while True:
        sam_prompts = to_sam_prompts(prompts, truth.shape)  # the same (x, y) inputs as ours
        points = 0 if sam_prompts.point_coords is None else len(sam_prompts.point_coords)
        masks, scores, logits = predictor.predict(
            point_coords=sam_prompts.point_coords,
            point_labels=sam_prompts.point_labels,
            box=sam_prompts.box,
            mask_input=sam_prompts.mask_input,
            multimask_output=sam_prompts.box is None and points <= 1,
        )
        best = int(np.argmax(scores))
        ious.append(mask_iou(truth, masks[best]))
        if len(ious) == settings.clicks:
            return tuple(ious)
        click = next_click(truth, masks[best])
        if click is None:
            return tuple(ious) + (ious[-1],) * (settings.clicks - len(ious))
        prompts = prompts.with_point((click.row, click.col), click.label)
        if settings.mask_input:
            prompts = type(prompts)(
                points=prompts.points,
                labels=prompts.labels,
                box=prompts.box,
                mask_input=logits[best][None],
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 objects, 5 clicks, 1 repeat")
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--objects", type=int, default=None, help="at most this many objects")
    parser.add_argument("--start", choices=("point", "box"), default="point")
    parser.add_argument("--no-mask-input", dest="mask_input", action="store_false")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", choices=("vit_b", "tiny"), default="vit_b")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args()
    if args.quick:
        args.clicks, args.objects, args.repeats = 5, args.objects or 3, 1

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]().eval() if args.model == "vit_b" else build_tiny_sam()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sam = sam.to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rgb, labels = scene(args.objects)
    objects = plane_objects(labels)
    settings = EvaluationSettings(clicks=args.clicks, start=args.start, mask_input=args.mask_input)
    print(
        f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads, {args.model} random "
        f"weights; {rgb.shape[1]}x{rgb.shape[0]} image, {len(objects)} objects, "
        f"{settings.clicks} clicks, start {settings.start}, mask input {settings.mask_input}"
    )

    segmenter = PromptSegmenter(sam, f"{args.model}-random")
    predictor = SamPredictor(sam)
    started = time.perf_counter()
    segmenter.embed(rgb)
    sync()
    ours_embed = time.perf_counter() - started
    started = time.perf_counter()
    predictor.set_image(rgb)
    sync()
    theirs_embed = time.perf_counter() - started
    print(
        f"embedding (once, not in the figures below): ours {ours_embed:.2f} s, "
        f"SamPredictor.set_image {theirs_embed:.2f} s"
    )

    ours_times, theirs_times = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        results = evaluate_plane(segmenter, rgb, labels, settings)
        sync()
        ours_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = [upstream_object(predictor, obj.mask(labels), settings) for obj in objects]
        sync()
        theirs_times.append(time.perf_counter() - started)
    ours = [r.ious for r in results]
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    gap = max(float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(ours, theirs, strict=True))
    print(
        f"IoU after every click identical for {same} of {len(objects)} objects "
        f"(largest difference {gap:.2e})"
    )
    if device.type == "cpu":  # bit-exact on the CPU; GPU kernels may differ in the last bits
        assert same == len(objects), "ours and upstream must give the same IoU after every click"

    ours_rate = len(objects) / float(np.median(ours_times))
    theirs_rate = len(objects) / float(np.median(theirs_times))
    print(
        f"objects evaluated per second ({settings.clicks} clicks each; median of "
        f"{args.repeats}): ours {ours_rate:.3f}, SamPredictor loop {theirs_rate:.3f}, "
        f"ratio ours/upstream {ours_rate / theirs_rate:.3f} (above 1.0 = faster)"
    )
    decodes = sum(len(r.clicks) + (settings.start == "box") for r in results)
    print(
        f"per decode: ours {1000 * np.median(ours_times) / max(decodes, 1):.1f} ms, "
        f"upstream {1000 * np.median(theirs_times) / max(decodes, 1):.1f} ms "
        f"({decodes} decodes per run, click simulation included)"
    )


if __name__ == "__main__":
    main()
