"""Engine speed against upstream SamPredictor, same process, same model, same image.

vit_b with random weights (the compute equals the trained model's). For each image size:
  * embedding: PromptSegmenter.embed (cache cleared) vs SamPredictor.set_image, alternated;
  * decoding: PromptSegmenter.predict vs SamPredictor.predict for the same prompts,
    alternated, median and p95 over many repeats.
Prints both figures and the ratio ours / upstream (below 1.0 = we are faster).

    python benchmarks/bench_engine.py [--sizes 512 1024] [--embed-repeats 2] [--decode-repeats 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry

from napari_promptseg.core import Prompts, PromptSegmenter


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def stats(samples):
    ms = np.array(samples) * 1000
    return np.median(ms), np.percentile(ms, 95)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--embed-repeats", type=int, default=2)
    parser.add_argument("--decode-repeats", type=int, default=40)
    args = parser.parse_args()

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]().eval()
    predictor = SamPredictor(sam)
    segmenter = PromptSegmenter(sam, "vit_b-random")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vit_b random weights")

    rng = np.random.default_rng(0)
    for size in args.sizes:
        rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        ours_embed, theirs_embed = [], []
        for _ in range(args.embed_repeats):
            theirs_embed.append(timed(lambda: predictor.set_image(rgb))[0])
            segmenter.cache.clear()
            seconds, embedding = timed(lambda: segmenter.embed(rgb, prepare=False))
            ours_embed.append(seconds)
        prepare_s, _ = timed(lambda: segmenter.decoder.prepare(embedding))
        ours, theirs = np.median(ours_embed), np.median(theirs_embed)
        print(
            f"\n{size}x{size} embedding: ours {ours:.2f} s, SamPredictor.set_image {theirs:.2f} s, "
            f"ratio {ours / theirs:.3f}  (+ decoder preparation {prepare_s * 1000:.0f} ms, once per image)"
        )
        assert torch.equal(embedding.features, predictor.features)

        c = size / 2
        cases = {
            "1 point, 3 masks": (
                Prompts.from_points([[c, c * 0.8]]),
                dict(point_coords=np.array([[c * 0.8, c]]), point_labels=np.array([1])),
                True,
            ),
            "3 points, 1 mask": (
                Prompts(points=[[c, c], [c * 0.5, c], [c, c * 1.5]], labels=[1, 1, 0]),
                dict(
                    point_coords=np.array([[c, c], [c, c * 0.5], [c * 1.5, c]]),
                    point_labels=np.array([1, 1, 0]),
                ),
                False,
            ),
            "box, 1 mask": (
                Prompts(box=[c * 0.5, c * 0.5, c * 1.2, c * 1.4]),
                dict(box=np.array([c * 0.5, c * 0.5, c * 1.4, c * 1.2])),
                False,
            ),
        }
        for name, (prompts, upstream_kwargs, multimask) in cases.items():
            for _ in range(3):  # warm-up
                segmenter.predict(embedding, prompts, multimask=multimask)
                predictor.predict(multimask_output=multimask, **upstream_kwargs)
            ours_t, theirs_t = [], []
            for _ in range(args.decode_repeats):
                seconds, result = timed(
                    lambda: segmenter.predict(embedding, prompts, multimask=multimask)
                )
                ours_t.append(seconds)
                seconds, (masks, _, _) = timed(
                    lambda: predictor.predict(multimask_output=multimask, **upstream_kwargs)
                )
                theirs_t.append(seconds)
            assert np.array_equal(result.masks, masks), "results must be identical"
            (om, op), (tm, tp) = stats(ours_t), stats(theirs_t)
            print(
                f"{size}x{size} decode {name:<17}: ours median {om:6.1f} ms (p95 {op:6.1f}), "
                f"SamPredictor.predict {tm:6.1f} ms (p95 {tp:6.1f}), ratio {om / tm:.3f}"
            )


if __name__ == "__main__":
    main()
