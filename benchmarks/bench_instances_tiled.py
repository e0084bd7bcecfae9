"""AIS and APG by tiles: ours against micro-sam 1.8.14's ``Tiled*`` classes, same run.

    .venv/bin/python benchmarks/bench_instances_tiled.py [--shape 400 1000] [--tile 400 500]
        [--halo 0 64] [--no-microsam]

Input: the peer benchmarks' nuclei image at ``--shape`` with a 0 and a 255 pixel in every
inner tile (micro-sam stretches each tile's contrast to its own range; on such an image that
changes nothing, so both embed the same pixels) and the fidelity tests' seeded random vit_t
checkpoint in micro-sam's format. micro-sam runs first in its venv (this file is its driver
with ``--microsam-driver``), then ours. Printed: seconds for tiled AIS (embedding of every
tile + decoder + watershed) and for tiled APG after it, the ratios ours / micro-sam, and
whether the label images are identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_instances import MICROSAM_PY, ROOT, microsam_rgb


def inputs(shape: tuple[int, int], tile: tuple[int, int]) -> np.ndarray:
    from common import make_nuclei_image

    image, _ = make_nuclei_image(shape=shape)
    low, high = image.min(), image.max()
    for row in range(0, shape[0], tile[0]):
        for col in range(0, shape[1], tile[1]):
            image[row + 5, col + 5], image[row + 6, col + 5] = low, high
    return image


def run_microsam(checkpoint: Path, args, out: Path) -> dict:
    """Driver, in micro-sam's venv."""
    warnings.filterwarnings("ignore")
    from micro_sam.instance_segmentation import (
        TiledAutomaticPromptGenerator,
        TiledInstanceSegmentationWithDecoder,
        get_predictor_and_decoder,
    )
    from micro_sam.util import precompute_image_embeddings

    predictor, decoder = get_predictor_and_decoder("vit_t", checkpoint, device="cpu")
    image = inputs(tuple(args.shape), tuple(args.tile))
    seconds = {}
    start = time.perf_counter()
    embeddings = precompute_image_embeddings(
        predictor, image, ndim=2, tile_shape=tuple(args.tile), halo=tuple(args.halo), verbose=False
    )
    seconds["embedding"] = time.perf_counter() - start
    ais = TiledInstanceSegmentationWithDecoder(predictor, decoder)
    start = time.perf_counter()
    ais.initialize(image, image_embeddings=embeddings)
    ais_labels = ais.generate()
    seconds["ais"] = seconds["embedding"] + time.perf_counter() - start
    apg = TiledAutomaticPromptGenerator(predictor, decoder)
    start = time.perf_counter()
    apg.initialize(image, image_embeddings=embeddings)  # micro-sam runs the decoder again
    apg_labels = apg.generate()
    seconds["apg_after_ais"] = time.perf_counter() - start
    np.savez_compressed(out, ais=ais_labels, apg=apg_labels)
    return seconds


def run_ours(checkpoint: Path, args) -> tuple[dict, dict]:
    from napari_promptseg.core.workflows.instances import APGParams, InstanceSegmenter

    inst = InstanceSegmenter.load(checkpoint=checkpoint, device="cpu")
    rgb = microsam_rgb(inputs(tuple(args.shape), tuple(args.tile)))
    tiling = {"tile_shape": tuple(args.tile), "halo": tuple(args.halo)}
    seconds = {}
    start = time.perf_counter()
    ais = inst.ais(rgb, **tiling)
    seconds["ais"] = time.perf_counter() - start
    start = time.perf_counter()
    apg = inst.apg(rgb, APGParams(), **tiling)  # tiles' embeddings and maps cached
    seconds["apg_after_ais"] = time.perf_counter() - start
    return seconds, {"ais": ais, "apg": apg}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=[400, 1000])
    parser.add_argument("--tile", type=int, nargs=2, default=[400, 500])
    parser.add_argument("--halo", type=int, nargs=2, default=[0, 64])
    parser.add_argument("--no-microsam", action="store_true")
    parser.add_argument("--microsam-driver", nargs=2, metavar=("CHECKPOINT", "OUT"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
    if args.microsam_driver:
        checkpoint, out = map(Path, args.microsam_driver)
        print(json.dumps(run_microsam(checkpoint, args, out)))
        return 0

    import microsam_kit as kit
    import torch

    flags = ["--shape", *map(str, args.shape), "--tile", *map(str, args.tile)]
    flags += ["--halo", *map(str, args.halo)]
    print(
        f"torch threads {torch.get_num_threads()}, image {args.shape}, tiles {args.tile} "
        f"+ halo {args.halo}, vit_t"
    )
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "vit_t_random_microsam.pt"
        kit.make_checkpoint(checkpoint)
        peer = None
        if not args.no_microsam and MICROSAM_PY.exists():
            labels_path = Path(tmp) / "microsam_labels.npz"
            run = subprocess.run(
                [str(MICROSAM_PY), __file__, *flags, "--microsam-driver", str(checkpoint),
                 str(labels_path)],
                capture_output=True, text=True, check=True, timeout=3600,
            )  # fmt: skip
            peer = json.loads(run.stdout.strip().splitlines()[-1])
            peer_labels = np.load(labels_path)
        elif not args.no_microsam:
            print(f"micro-sam's venv not found ({MICROSAM_PY}): ours only")
        ours, labels = run_ours(checkpoint, args)

    print(f"{'stage':<24}{'ours s':>9}{'micro-sam s':>13}{'ratio':>8}{'identical':>11}")
    for key, kind in (("ais", "ais"), ("apg_after_ais", "apg")):
        theirs = peer[key] if peer else None
        ratio = f"{ours[key] / theirs:.2f}" if theirs else "-"
        same = (
            str(np.array_equal(labels[kind].astype(np.int64), peer_labels[kind].astype(np.int64)))
            if peer
            else "-"
        )
        theirs_s = f"{theirs:.2f}" if theirs is not None else "-"
        print(f"{key:<24}{ours[key]:>9.2f}{theirs_s:>13}{ratio:>8}{same:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
