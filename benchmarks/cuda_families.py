"""On a CUDA GPU: each model family, random weights, ours against its reference predictor.

For SAM vit_b, MobileSAM vit_t and SAM 2.1 hiera_t / hiera_b+ (built by their own packages
on ``cuda``, no checkpoint, no network): our masks, predicted IoU and low-res logits against
``SamPredictor`` / ``mobile_sam.SamPredictor`` / ``SAM2ImagePredictor`` for a point, a box and
points + box, then embedding, first-decode and steady-decode times (CUDA-synchronised) for
ours and the reference, with the ratio ours / reference. Exit status 1 if any mask differs;
without a CUDA device it says so and exits 0 (``make bench`` runs every script).

    python benchmarks/cuda_families.py [--models vit_b vit_t sam2.1_hiera_t sam2.1_hiera_b+]
        [--size 1024] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from napari_promptseg.core import PromptSegmenter, SamPrompts

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_models import MODELS, build


def cuda_timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start, out


def check_and_time(name: str, size: int, repeats: int) -> bool:
    model, predictor, family = build(name)
    model.to("cuda").eval()
    if family == "mobilesam":
        model.eval()  # TinyViT re-caches its attention biases on the device
    rgb = np.random.default_rng(0).integers(0, 256, (size, int(size * 0.77), 3), dtype=np.uint8)
    height, width = rgb.shape[:2]
    segmenter = PromptSegmenter(model, f"{name}-cuda", name=name, family=family)

    predictor.set_image(rgb)  # warm-up (kernels, cuDNN plans)
    embed_ref = statistics.median(cuda_timed(lambda: predictor.set_image(rgb))[0] for _ in range(3))
    segmenter.embed(rgb, prepare=False)
    times = []
    for _ in range(3):
        segmenter.cache.clear()
        times.append(cuda_timed(lambda: segmenter.embed(rgb, prepare=False)))
    embed_ours = statistics.median(t for t, _ in times)
    embedding = times[-1][1]

    points = np.array([[0.3 * width, 0.4 * height], [0.7 * width, 0.6 * height]])
    labels = np.array([1, 0])
    box = np.array([0.1 * width, 0.2 * height, 0.8 * width, 0.9 * height])
    cases = {
        "point": dict(point_coords=points[:1], point_labels=labels[:1]),
        "box": dict(box=box),
        "points+box": dict(point_coords=points, point_labels=labels, box=box),
    }
    first, _ = cuda_timed(
        lambda: segmenter.decoder.decode(embedding, SamPrompts(points[:1], labels[:1], None, None))
    )
    ok = True
    for case, kw in cases.items():
        for multimask in (True, False):
            masks, scores, logits = predictor.predict(multimask_output=multimask, **kw)
            ours = segmenter.decoder.decode(
                embedding,
                SamPrompts(kw.get("point_coords"), kw.get("point_labels"), kw.get("box"), None),
                multimask=multimask,
            )
            same = np.array_equal(ours.masks, masks)
            diff = float(np.abs(ours.low_res_logits - logits).max())
            iou_diff = float(np.abs(ours.iou - scores).max())
            ok &= same
            print(
                f"  {case:<11} multimask={multimask!s:<5} masks {'identical' if same else 'DIFFER'}"
                f" ({int((ours.masks != masks).sum())} px), max |Δlogit| {diff:.2e}, "
                f"max |ΔIoU| {iou_diff:.2e}"
            )
    sam_prompt = SamPrompts(points[:1], labels[:1], None, None)
    ours_t = [
        cuda_timed(lambda: segmenter.decoder.decode(embedding, sam_prompt))[0]
        for _ in range(repeats)
    ]
    ref_t = [
        cuda_timed(lambda: predictor.predict(multimask_output=True, **cases["point"]))[0]
        for _ in range(repeats)
    ]
    decode_ours, decode_ref = statistics.median(ours_t), statistics.median(ref_t)
    print(
        f"  embed ours {embed_ours * 1e3:.1f} ms, reference {embed_ref * 1e3:.1f} ms "
        f"(ratio {embed_ours / embed_ref:.2f}); first decode {first * 1e3:.1f} ms; steady decode "
        f"ours {decode_ours * 1e3:.2f} ms, reference {decode_ref * 1e3:.2f} ms "
        f"(ratio {decode_ours / decode_ref:.2f}); embedding {embedding.nbytes / 2**20:.0f} MiB"
    )
    torch.cuda.empty_cache()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--size", type=int, default=1024, help="image height (width 0.77x)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing checked (run it on a machine with one)")
        return 0
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, fp32, random weights")
    ok = True
    for name in args.models:
        print(f"\n{name}")
        ok &= check_and_time(name, args.size, args.repeats)
    print("\nall masks identical to the reference predictors" if ok else "\nSOME MASKS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
