"""AIS and APG: ours against micro-sam 1.8.14, same image, same checkpoint, same run.

    .venv/bin/python benchmarks/bench_instances.py [--size 512] [--no-grid] [--no-microsam]

Input: the peer benchmarks' 512x512 uint16 nuclei image (benchmarks/peers/common.py),
brought to uint8 RGB as micro-sam's ``_to_image`` does (so both embed the same pixels), and
the seeded random vit_t checkpoint in micro-sam's format that the fidelity tests use
(tests/core/workflows/instances/microsam_kit.py; the compute of vit_t_lm). micro-sam runs
first, in its own venv (benchmarks/peers/setup_microsam.sh; this file is its driver with
``--microsam-driver``), then ours in this process. Printed: seconds per stage (embedding,
decoder pass, watershed, APG), the ratios ours / micro-sam, whether the label images are
identical, our grid mode ("everything") on the same cached embedding for comparison, and
the shipped demo model's AIS on the same image (its small decoder: the "AIS in seconds" row).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
sys.path.insert(0, str(ROOT / "tests" / "core" / "workflows" / "instances"))
MICROSAM_PY = (
    Path(os.environ.get("PROMPTSEG_MICROSAM_VENV", ROOT / ".venv-peers" / "microsam"))
    / "bin"
    / "python"
)


def microsam_rgb(image: np.ndarray) -> np.ndarray:
    """micro-sam's ``util._to_image`` (gray → 3 channels, per-channel min/max → uint8)."""
    rgb = np.concatenate([image[..., None]] * 3, axis=-1).astype("float32")
    rgb -= rgb.min(axis=(0, 1))[None, None]
    rgb /= rgb.max(axis=(0, 1))[None, None] + 1e-7
    return (rgb * 255).astype("uint8")


def inputs(size: int) -> np.ndarray:
    from common import make_nuclei_image

    image, _ = make_nuclei_image(shape=(size, size))
    return image


def run_microsam(checkpoint: Path, size: int, out: Path) -> dict:
    """Driver, in micro-sam's venv: time its stages, save its labels to ``out``."""
    warnings.filterwarnings("ignore")
    from micro_sam.instance_segmentation import (
        AutomaticPromptGenerator,
        InstanceSegmentationWithDecoder,
        get_predictor_and_decoder,
    )
    from micro_sam.util import precompute_image_embeddings

    predictor, decoder = get_predictor_and_decoder("vit_t", checkpoint, device="cpu")
    image = inputs(size)
    seconds = {}
    start = time.perf_counter()
    embeddings = precompute_image_embeddings(predictor, image, ndim=2, verbose=False)
    seconds["embedding"] = time.perf_counter() - start
    ais = InstanceSegmentationWithDecoder(predictor, decoder)
    start = time.perf_counter()
    ais.initialize(image, image_embeddings=embeddings)
    seconds["decoder"] = time.perf_counter() - start
    start = time.perf_counter()
    ais_labels = ais.generate()
    seconds["watershed"] = time.perf_counter() - start
    seconds["ais"] = seconds["embedding"] + seconds["decoder"] + seconds["watershed"]
    apg = AutomaticPromptGenerator(predictor, decoder)
    start = time.perf_counter()
    apg.initialize(image, image_embeddings=embeddings)
    seconds["apg_decoder"] = time.perf_counter() - start
    start = time.perf_counter()
    apg_labels = apg.generate()
    seconds["apg_prompts"] = time.perf_counter() - start
    seconds["apg"] = seconds["embedding"] + seconds["apg_decoder"] + seconds["apg_prompts"]
    np.savez_compressed(out, ais=ais_labels, apg=apg_labels)
    return seconds


def run_ours(checkpoint: Path, size: int, grid: bool) -> tuple[dict, dict]:
    from napari_promptseg.core.workflows.everything import segment_everything
    from napari_promptseg.core.workflows.instances import InstanceSegmenter, segment_maps

    inst = InstanceSegmenter.load(checkpoint=checkpoint, device="cpu")
    rgb = microsam_rgb(inputs(size))
    seconds = {}
    start = time.perf_counter()
    embedding = inst.segmenter.embed(rgb)
    seconds["embedding"] = time.perf_counter() - start
    start = time.perf_counter()
    maps = inst.maps(embedding)
    seconds["decoder"] = time.perf_counter() - start
    start = time.perf_counter()
    ais_labels = segment_maps(maps)
    seconds["watershed"] = time.perf_counter() - start
    seconds["ais"] = seconds["embedding"] + seconds["decoder"] + seconds["watershed"]
    start = time.perf_counter()
    apg_labels = inst.apg(embedding)  # the maps are cached: no second decoder pass
    seconds["apg_prompts"] = time.perf_counter() - start
    seconds["apg"] = seconds["embedding"] + seconds["decoder"] + seconds["apg_prompts"]
    seconds["ais_cached_embedding"] = seconds["decoder"] + seconds["watershed"]
    if grid:
        start = time.perf_counter()
        result = segment_everything(inst.segmenter, rgb)
        seconds["grid_cached_embedding"] = time.perf_counter() - start
        seconds["grid_objects"] = float(len(np.unique(result.labels)) - 1)
    return seconds, {"ais": ais_labels, "apg": apg_labels}


def run_demo(size: int) -> dict:
    """The shipped demo model's AIS on the same image: embedding, decoder pass, watershed."""
    from napari_promptseg.core.workflows.instances import InstanceSegmenter, segment_maps

    inst = InstanceSegmenter.load("demo", device="cpu", offline=True, progress=False)
    rgb = microsam_rgb(inputs(size))
    seconds = {}
    start = time.perf_counter()
    embedding = inst.segmenter.embed(rgb)
    seconds["embedding"] = time.perf_counter() - start
    start = time.perf_counter()
    maps = inst.maps(embedding)
    seconds["decoder"] = time.perf_counter() - start
    start = time.perf_counter()
    labels = segment_maps(maps)
    seconds["watershed"] = time.perf_counter() - start
    seconds["ais"] = seconds["embedding"] + seconds["decoder"] + seconds["watershed"]
    seconds["objects"] = float(len(np.unique(labels)) - 1)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--no-grid", action="store_true", help="skip our grid mode")
    parser.add_argument("--no-microsam", action="store_true")
    parser.add_argument("--microsam-driver", nargs=2, metavar=("CHECKPOINT", "OUT"))
    args = parser.parse_args(argv)
    if args.microsam_driver:
        checkpoint, out = map(Path, args.microsam_driver)
        print(json.dumps(run_microsam(checkpoint, args.size, out)))
        return 0

    import microsam_kit as kit
    import torch

    print(f"torch threads {torch.get_num_threads()}, image {args.size}x{args.size}, vit_t")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "vit_t_random_microsam.pt"
        kit.make_checkpoint(checkpoint)
        peer = None
        if not args.no_microsam and MICROSAM_PY.exists():
            labels_path = Path(tmp) / "microsam_labels.npz"
            run = subprocess.run(
                [str(MICROSAM_PY), __file__, "--size", str(args.size), "--microsam-driver",
                 str(checkpoint), str(labels_path)],
                capture_output=True, text=True, check=True, timeout=3600,
            )  # fmt: skip
            peer = json.loads(run.stdout.strip().splitlines()[-1])
            peer_labels = np.load(labels_path)
        elif not args.no_microsam:
            print(f"micro-sam's venv not found ({MICROSAM_PY}): ours only")
        ours, our_labels = run_ours(checkpoint, args.size, not args.no_grid)
        demo = run_demo(args.size)

    print(f"{'stage':<24}{'ours s':>9}{'micro-sam s':>13}{'ratio':>8}")
    for key in ("embedding", "decoder", "watershed", "ais", "apg_prompts", "apg"):
        theirs = peer.get(key) if peer else None
        ratio = f"{ours[key] / theirs:.2f}" if theirs else "-"
        theirs_s = f"{theirs:.2f}" if theirs is not None else "-"
        print(f"{key:<24}{ours[key]:>9.2f}{theirs_s:>13}{ratio:>8}")
    if peer:
        print(f"{'(micro-sam apg decoder)':<24}{'':>9}{peer['apg_decoder']:>13.2f}")
    print(f"{'ais, cached embedding':<24}{ours['ais_cached_embedding']:>9.2f}")
    if "grid_cached_embedding" in ours:
        print(
            f"{'grid mode, cached emb.':<24}{ours['grid_cached_embedding']:>9.2f}"
            f"   ({int(ours['grid_objects'])} objects; AIS {len(np.unique(our_labels['ais'])) - 1})"
        )
    base = peer["ais"] if peer else ours["ais"]
    print(
        f"{'demo model AIS':<24}{demo['ais']:>9.2f}   ({int(demo['objects'])} objects; "
        f"embedding {demo['embedding']:.2f} + decoder {demo['decoder']:.2f} + watershed "
        f"{demo['watershed']:.2f}; {demo['ais'] / base:.2f}x "
        f"{'micro-sam' if peer else 'our'} vit_t AIS)"
    )
    if peer:
        for key in ("ais", "apg"):
            same = np.array_equal(
                our_labels[key].astype(np.int64), peer_labels[key].astype(np.int64)
            )
            n = len(np.unique(peer_labels[key])) - 1
            print(f"{key} labels identical to micro-sam's: {same} ({n} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
