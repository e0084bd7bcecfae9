"""What tiling costs: one tile embedding, decoding on a tile vs through TiledImage, projections.

vit_b with random weights (the compute equals the trained model's), torch's default threads.

1. Embeds ONE 1024x1024 tile (``--embed-repeats`` times, cache cleared): seconds and the
   bytes of the embedding and of the decoder's per-image state. This is the number every
   size limit in docs/tiling.md is built from.
2. Decoding, same process, same embedding, alternated: the baseline is
   ``PromptSegmenter.predict`` on the tile itself; the candidate is ``TiledImage.predict``
   routing the same point on an ``--image-size`` image (shift, decode, paste into full-size
   masks; ``reach=0`` so no other tile is needed). With ``--continuation`` the candidate
   also continues across tile edges (embeds the neighbours it needs first: slow).
3. Prints, from the measured embedding, the tile count, CPU time to embed every tile and
   memory of the embeddings for images from 2048 to 20000 px square.

    python benchmarks/bench_tiling.py                       # full run
    python benchmarks/bench_tiling.py --image-size 2048 --decode-repeats 3   # small
    python benchmarks/bench_tiling.py --model tiny          # plumbing only, meaningless times
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from napari_promptseg.core import Prompts, PromptSegmenter
from napari_promptseg.core.workflows.tiling.grid import OVERLAP, TILE, TileGrid
from napari_promptseg.core.workflows.tiling.tiled_image import TiledImage


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def build(model: str):
    if model == "tiny":
        from napari_promptseg.testing import build_tiny_sam

        return build_tiny_sam(seed=0), "tiny-random"
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    return sam_model_registry["vit_b"]().eval(), "vit_b-random"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("vit_b", "tiny"), default="vit_b")
    parser.add_argument("--image-size", type=int, default=5000)
    parser.add_argument("--embed-repeats", type=int, default=1)
    parser.add_argument("--decode-repeats", type=int, default=20)
    parser.add_argument("--continuation", action="store_true")
    args = parser.parse_args()

    sam, model_id = build(args.model)
    segmenter = PromptSegmenter(sam, model_id)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {model_id} weights")

    rng = np.random.default_rng(0)
    size = args.image_size
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    tiled = TiledImage(segmenter, rgb, reach=1 if args.continuation else 0)
    grid = tiled.grid
    # a point at the centre of the middle tile: no other tile holds it with more margin
    home = grid[grid.n_rows // 2, grid.n_cols // 2]
    point = ((home.row0 + home.row1) // 2, (home.col0 + home.col1) // 2)
    prompts = Prompts.from_points([point])
    assert tiled.route(prompts) == home, "the benchmark point must route to the middle tile"

    # 1. one tile embedding
    tile_rgb = tiled.tile_rgb(home)
    seconds, cpu_seconds = [], []
    for _ in range(args.embed_repeats):
        segmenter.cache.clear()
        cpu_start = time.process_time()  # CPU time shows the work when the machine is busy
        elapsed, embedding = timed(lambda: segmenter.embed(tile_rgb, prepare=False))
        cpu_seconds.append(time.process_time() - cpu_start)
        seconds.append(elapsed)
    prepare_s, prepared = timed(lambda: segmenter.decoder.prepare(embedding))
    embed_s = float(np.median(seconds))
    prepared_bytes = sum(
        t.element_size() * t.nelement()
        for t in vars(prepared).values()
        if isinstance(t, torch.Tensor)
    )
    print(
        f"\none {TILE}x{TILE} tile embedding: {embed_s:.2f} s (median of {len(seconds)}: "
        f"{', '.join(f'{s:.2f}' for s in seconds)}; CPU time {np.median(cpu_seconds):.1f} s, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); embedding {embedding.nbytes / 2**20:.1f} MiB, "
        f"decoder state {prepared_bytes / 2**20:.1f} MiB (prepared in {prepare_s * 1000:.0f} ms)"
    )

    # 2. decoding: on the tile directly (baseline) vs through TiledImage (candidate)
    local = Prompts.from_points([[point[0] - home.row0, point[1] - home.col0]])
    if args.continuation:
        needed_s, extra = timed(lambda: _all_needed(tiled, prompts))
        print(f"embedding the {len(extra)} tile(s) the object continues into: {needed_s:.1f} s")
    for _ in range(2):  # warm-up
        segmenter.predict(embedding, local)
        tiled.predict(prompts)
    base, cand = [], []
    for _ in range(args.decode_repeats):
        base.append(timed(lambda: segmenter.predict(embedding, local))[0])
        elapsed, result = timed(lambda: tiled.predict(prompts))
        cand.append(elapsed)
    direct = segmenter.predict(embedding, local)
    assert (result.masks[(slice(None), *home.slices)] >= direct.masks).all()
    b, c = np.median(base) * 1000, np.median(cand) * 1000
    print(
        f"decode 1 point, 3 masks: PromptSegmenter.predict on the tile {b:.1f} ms, "
        f"TiledImage.predict on {size}x{size} ({len(grid)} tiles, {len(result.tiles)} used) "
        f"{c:.1f} ms, ratio {c / b:.2f}"
    )

    # 3. projections from the measured tile
    print(f"\nprojection with tile {TILE}, overlap {OVERLAP} (from the measurement above):")
    print(
        f"{'image':>13} {'tiles':>6} {'embed all (CPU)':>16} {'embeddings':>11} {'masks K=3':>10}"
    )
    for side in (2048, 4096, 5000, 8192, 10000, 16384, 20000):
        n = len(TileGrid((side, side)))
        total = n * embed_s
        print(
            f"{side:>6}x{side:<6} {n:>6} {_duration(total):>16} "
            f"{n * embedding.nbytes / 2**20:>8.0f} MiB {3 * side * side / 2**20:>6.0f} MiB"
        )


def _all_needed(tiled, prompts):
    needed, seen = tiled.tiles_needed(prompts), set()
    while needed:
        for tile in needed:
            tiled.embed(tile)
            seen.add(tile)
        needed = [t for t in tiled.tiles_needed(prompts) if t not in seen]
    return seen


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return (
        f"{minutes:.0f} min"
        if minutes < 120
        else f"{math.floor(minutes / 60)} h {minutes % 60:.0f} min"
    )


if __name__ == "__main__":
    main()
