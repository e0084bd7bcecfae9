"""The disk store against computing: reload time, float16 fidelity, memory of a cached stack.

vit_b with random weights (the encoder's compute equals the trained model's), one 512² image,
all in one run:

1. compute the embedding (``PromptSegmenter.embed``, empty cache) vs reload it from the store
   in a NEW PromptSegmenter with a new memory cache and a new EmbeddingStore object on the
   same folder (what a new napari session does); goal: reload ≤ 2 % of compute;
2. float16 vs float32 entries: mask pixels that differ from the exact embedding's masks over
   a few point and box prompts (float32 must differ in none);
3. memory of a 50-slice 512² stack with every embedding cached: real embeddings are computed
   for ``--measured-slices`` slices, the bytes per embedding measured, and the 50-slice figure
   extrapolated (every vit_b embedding is (1, 256, 64, 64) float32 = 4 MiB exactly),
   against the budget that bounds it (``EmbeddingCache.max_bytes``).

    python benchmarks/bench_store.py [--size 512] [--reloads 10] [--measured-slices 2]
    python benchmarks/bench_store.py --tiny     # the tiny test model: checks the plumbing only
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_promptseg.core import EmbeddingCache, Prompts, PromptSegmenter
from napari_promptseg.core.storage.store import EmbeddingStore


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def build(tiny: bool):
    torch.manual_seed(0)
    if tiny:
        from napari_promptseg.testing import build_tiny_sam

        return build_tiny_sam(), "tiny-random"
    from segment_anything import sam_model_registry

    return sam_model_registry["vit_b"]().eval(), "vit_b-random"


def sample(size: int, seed: int) -> np.ndarray:
    """A (size, size, 3) uint8 image with a few bright discs on noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    image = rng.normal(60, 12, (size, size))
    for _ in range(6):
        r, c = rng.uniform(0.15, 0.85, 2) * size
        radius = rng.uniform(0.05, 0.12) * size
        image[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] += 120
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def prompts_for(size: int, count: int) -> list[Prompts]:
    rng = np.random.default_rng(1)
    out = [Prompts.from_points([rng.uniform(0, size, 2)]) for _ in range(count)]
    for _ in range(2):
        r0, c0 = rng.uniform(0, size / 2, 2)
        out.append(Prompts(box=[r0, c0, r0 + size / 3, c0 + size / 3]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--reloads", type=int, default=10, help="reloads timed (median)")
    parser.add_argument("--prompts", type=int, default=8, help="point prompts for float16")
    parser.add_argument("--slices", type=int, default=50, help="stack depth for the memory figure")
    parser.add_argument("--measured-slices", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="tiny test model (plumbing check)")
    args = parser.parse_args()

    sam, model_id = build(args.tiny)
    rgb = sample(args.size, 0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {model_id}, "
        f"{args.size}x{args.size} image"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder32, folder16 = Path(tmp) / "f32", Path(tmp) / "f16"

        # 1. compute vs reload ------------------------------------------------------------
        computing = PromptSegmenter(sam, model_id)
        compute_s, original = timed(lambda: computing.embed(rgb, prepare=False))
        save_s, _ = timed(lambda: EmbeddingStore(folder32).save(original))
        EmbeddingStore(folder16, dtype="float16").save(original)
        reloads = []
        for _ in range(args.reloads):
            fresh = PromptSegmenter(sam, model_id, store=EmbeddingStore(folder32))
            seconds, reloaded = timed(lambda: fresh.embed(rgb, prepare=False))
            assert fresh.encoder_calls == 0, "the reload must not run the encoder"
            reloads.append(seconds)
        assert torch.equal(reloaded.features, original.features), "float32 must round-trip exactly"
        reload_s = float(np.median(reloads))
        ratio = reload_s / compute_s
        print(
            f"\ncompute {compute_s:.2f} s | save {save_s * 1000:.1f} ms | reload in a new "
            f"PromptSegmenter + store (median of {args.reloads}) {reload_s * 1000:.1f} ms "
            f"(includes hashing the image for its key) | ratio {ratio:.4f} "
            f"({'meets' if ratio <= 0.02 else 'MISSES'} the 2 % goal)"
        )

        # 2. float16 vs float32 masks -----------------------------------------------------
        size32 = EmbeddingStore(folder32).nbytes
        size16 = EmbeddingStore(folder16).nbytes
        half = PromptSegmenter(sam, model_id, store=EmbeddingStore(folder16)).embed(rgb)
        exact = PromptSegmenter(sam, model_id, store=EmbeddingStore(folder32)).embed(rgb)
        print(
            f"\nentry size: float32 {size32 / 2**20:.2f} MiB, float16 {size16 / 2**20:.2f} MiB; "
            f"max |feature error| float16 {float((half.features - original.features).abs().max()):.2e}"
        )
        decoder = PromptSegmenter(sam, model_id)
        flipped32 = flipped16 = pixels = 0
        worst = 0.0
        for prompts in prompts_for(args.size, args.prompts):
            reference = decoder.predict(original, prompts, multimask=True)
            from32 = decoder.predict(exact, prompts, multimask=True)
            from16 = decoder.predict(half, prompts, multimask=True)
            flipped32 += int((from32.masks != reference.masks).sum())
            flipped16 += int((from16.masks != reference.masks).sum())
            pixels += reference.masks.size
            worst = max(worst, float(np.abs(from16.iou - reference.iou).max()))
        count = args.prompts + 2
        print(
            f"masks over {count} prompts x 3 candidates ({pixels} pixels): float32 entries differ "
            f"in {flipped32} pixels, float16 in {flipped16} ({flipped16 / pixels:.2e} of them); "
            f"max |predicted IoU change| float16 {worst:.2e}"
        )

        # 3. memory of a cached stack -----------------------------------------------------
        cache = EmbeddingCache()
        cache.put(original)
        for index in range(1, args.measured_slices):
            seconds, embedding = timed(
                lambda: PromptSegmenter(sam, model_id).embed(
                    sample(args.size, index), prepare=False
                )
            )
            cache.put(embedding)
        per_embedding = cache.nbytes / len(cache)
        extrapolated = per_embedding * args.slices
        fits = int(cache.max_bytes // per_embedding)
        print(
            f"\nmemory: {len(cache)} real embeddings hold {cache.nbytes} bytes in the cache = "
            f"{per_embedding:.0f} bytes each ({per_embedding / 2**20:.2f} MiB; "
            f"{tuple(original.features.shape)} {original.features.dtype}); extrapolated to "
            f"{args.slices} slices: {extrapolated / 2**20:.0f} MiB. Budget: EmbeddingCache "
            f"max_bytes = {cache.max_bytes / 2**20:.0f} MiB, room for {fits} embeddings "
            f"({'all' if fits >= args.slices else 'NOT all'} {args.slices} slices stay in memory; "
            "beyond the budget the least recently used go, and come back from the store)"
        )


if __name__ == "__main__":
    main()
