"""Model families side by side: SAM vit_b (the baseline), MobileSAM vit_t, SAM 2.1 hiera_t/b+.

Random weights (compute equals the trained models'), one process, the same images. For each
model and image size:

  * embed: PromptSegmenter.embed (cache cleared) and the family's reference predictor's
    ``set_image``, alternated; both as a ratio of vit_b's embedding (the baseline);
  * first mask: embedding + the first decode on it (decoder preparation included): what a
    user waits for after opening an image; goal with vit_t on 512²: ≤ 2 s and ≤ 0.15× vit_b's
    embedding;
  * steady decode: median PromptSegmenter.predict against the reference predictor's
    ``predict`` for the same prompt (goal: ratio ≤ 1.0);
  * embedding bytes (SAM 2.1 keeps two high-resolution maps besides the 64x64 embedding);
  * segment everything on a cached embedding, vit_t against vit_b.

Goals on a laptop CPU: first mask on 512² with vit_t ≤ 2 s (≤ 0.15× vit_b's embed);
SAM 2.1 hiera_t embed ≤ 0.5× vit_b; our decode ≤ 1.0× the family's reference predictor.

    python benchmarks/bench_models.py                       # everything (many minutes on a CPU)
    python benchmarks/bench_models.py --sizes 512 --models vit_b vit_t sam2.1_hiera_t \\
        --embed-repeats 1 --decode-repeats 5 --everything-points 4           # a quick check
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from napari_promptseg.core import Prompts, PromptSegmenter
from napari_promptseg.core.workflows.everything import EverythingParams, segment_everything

MODELS = ["vit_b", "vit_t", "sam2.1_hiera_t", "sam2.1_hiera_b+"]
SAM2_CONFIGS = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def build(name: str) -> tuple[Any, Any, str]:
    """(model with random weights, its reference predictor, family) for ``name``."""
    torch.manual_seed(0)
    if name in ("vit_b", "vit_l", "vit_h"):
        from segment_anything import SamPredictor, sam_model_registry

        model = sam_model_registry[name]().eval()
        return model, SamPredictor(model), "sam"
    if name == "vit_t":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mobile_sam import SamPredictor, sam_model_registry
        model = sam_model_registry["vit_t"]().eval()
        return model, SamPredictor(model), "mobilesam"
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = build_sam2(SAM2_CONFIGS[name], ckpt_path=None, device="cpu")
        return model, SAM2ImagePredictor(model), "sam2.1"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(name: str, sizes: list[int], args: argparse.Namespace) -> dict[int, dict]:
    model, predictor, family = build(name)
    rng = np.random.default_rng(0)
    out: dict[int, dict] = {}
    for size in sizes:
        rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        ours_embed, ref_embed, first_mask = [], [], []
        row, col = size * 0.45, size * 0.55
        prompts = Prompts.from_points([[row, col]])
        for _ in range(args.embed_repeats):
            ref_embed.append(timed(lambda: predictor.set_image(rgb))[0])
            # a fresh engine each time: first decode really is the first on this embedding
            segmenter = PromptSegmenter(model, f"{name}-random", name=name, family=family)
            start = time.perf_counter()
            embedding = segmenter.embed(rgb, prepare=False)
            ours_embed.append(time.perf_counter() - start)
            segmenter.predict(embedding, prompts)  # prepares the decoder, then decodes
            first_mask.append(time.perf_counter() - start)
        ours_decode, ref_decode = [], []
        point = dict(point_coords=np.array([[col, row]]), point_labels=np.array([1]))
        for _ in range(args.decode_repeats):
            ours_decode.append(timed(lambda: segmenter.predict(embedding, prompts))[0])
            ref_decode.append(timed(lambda: predictor.predict(multimask_output=True, **point))[0])
        masks, scores, _ = predictor.predict(multimask_output=True, **point)
        result = segmenter.predict(embedding, prompts)
        identical = np.array_equal(result.masks, masks) and np.array_equal(result.iou, scores)
        out[size] = {
            "embed": statistics.median(ours_embed),
            "ref_embed": statistics.median(ref_embed),
            "first_mask": statistics.median(first_mask),
            "decode": statistics.median(ours_decode),
            "ref_decode": statistics.median(ref_decode),
            "bytes": embedding.nbytes,
            "identical": identical,
            "segmenter": segmenter,
            "rgb": rgb,
        }
    return out


def everything_seconds(result: dict, points: int) -> float:
    segmenter, rgb = result["segmenter"], result["rgb"]
    params = EverythingParams(points_per_side=points)
    segmenter.embed(rgb)  # cached: the figure is segment everything alone
    return timed(lambda: segment_everything(segmenter, rgb, params))[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--embed-repeats", type=int, default=2)
    parser.add_argument("--decode-repeats", type=int, default=20)
    parser.add_argument("--everything-points", type=int, default=32, help="0 skips it")
    args = parser.parse_args()
    names = ["vit_b", *[m for m in args.models if m != "vit_b"]]  # the baseline always runs

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, random weights, CPU")
    results = {name: measure(name, args.sizes, args) for name in names}
    base = results["vit_b"]
    for size in args.sizes:
        print(f"\n{size}x{size}; ratios: embed and first mask / vit_b embed, decode / reference")
        print(
            f"{'model':<16} {'embed s':>8} {'ref s':>7} {'×vit_b':>7} {'1st mask s':>10} "
            f"{'×vit_b':>7} {'decode ms':>9} {'ref ms':>7} {'×ref':>6} {'MiB':>5}  identical"
        )
        for name in names:
            r, b = results[name][size], base[size]["embed"]
            print(
                f"{name:<16} {r['embed']:>8.2f} {r['ref_embed']:>7.2f} {r['embed'] / b:>7.3f} "
                f"{r['first_mask']:>10.2f} {r['first_mask'] / b:>7.3f} {r['decode'] * 1e3:>9.1f} "
                f"{r['ref_decode'] * 1e3:>7.1f} {r['decode'] / r['ref_decode']:>6.2f} "
                f"{r['bytes'] / 2**20:>5.0f}  {'yes' if r['identical'] else 'NO'}"
            )
    size = 512 if 512 in args.sizes else args.sizes[0]
    print(f"\ngoals ({size}x{size}):")
    if "vit_t" in results:
        r = results["vit_t"][size]
        ratio = r["first_mask"] / base[size]["embed"]
        print(
            f"  vit_t first mask {r['first_mask']:.2f} s (goal ≤ 2 s), {ratio:.3f}× vit_b embed (≤ 0.15)"
        )
    if "sam2.1_hiera_t" in results:
        ratio = results["sam2.1_hiera_t"][size]["embed"] / base[size]["embed"]
        print(f"  sam2.1_hiera_t embed {ratio:.3f}× vit_b (goal ≤ 0.5)")
    for name in names:
        r = results[name][size]
        print(
            f"  {name} decode {r['decode'] / r['ref_decode']:.2f}× its reference predictor (≤ 1.0)"
        )
    if args.everything_points and "vit_t" in results:
        t = everything_seconds(results["vit_t"][size], args.everything_points)
        b = everything_seconds(base[size], args.everything_points)
        print(
            f"\nsegment everything ({args.everything_points}² points, cached embedding, {size}²): "
            f"vit_t {t:.2f} s, vit_b {b:.2f} s, ratio {t / b:.2f}"
        )


if __name__ == "__main__":
    main()
