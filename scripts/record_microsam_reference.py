"""Record micro-sam 1.8.14's AIS and APG label images for the fidelity tests (CI has no micro-sam).

Run with micro-sam's own interpreter (benchmarks/peers/setup_microsam.sh builds it; mobile_sam
must be installed there for vit_t):

    .venv-peers/microsam/bin/python scripts/record_microsam_reference.py [OUT.npz]

It regenerates the seeded random vit_t checkpoint in micro-sam's format (``model_state`` +
``decoder_state``, tests/core/workflows/instances/microsam_kit.py), loads it with micro-sam's
``get_predictor_and_decoder`` and stores, compressed, the labels of
``InstanceSegmentationWithDecoder`` (2D, 300x517), ``AutomaticPromptGenerator`` (2D; also
refined by box prompts with multimasking, and with ``mask_threshold="auto"``, whose per-mask local Otsu
thresholds of ``kit.otsu_logits`` are stored as ``otsu_thresholds``), their
``Tiled*`` versions by tiles (``kit.TILE_SHAPE`` + ``kit.HALO``, on ``kit.tiled_nuclei_image``) and
``automatic_3d_segmentation`` with AIS and with APG (3 planes), plus the checkpoint's state hash so that the
test notices a checkpoint that no longer matches. Default OUT: tests/data/microsam_instances.npz.
With ``--no-3d`` the stack is left out (the live test: 3 decoder passes fewer); with
``--json`` it prints the label images' summary instead of writing (used by the live test).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "core" / "workflows" / "instances"))
warnings.filterwarnings("ignore")

import microsam_kit as kit  # noqa: E402


def record(checkpoint: Path, with_3d: bool = True) -> dict[str, np.ndarray]:
    from micro_sam.inference import _local_otsu_threshold
    from micro_sam.instance_segmentation import (
        AutomaticPromptGenerator,
        InstanceSegmentationWithDecoder,
        TiledAutomaticPromptGenerator,
        TiledInstanceSegmentationWithDecoder,
        get_predictor_and_decoder,
    )
    from micro_sam.multi_dimensional_segmentation import automatic_3d_segmentation
    from micro_sam.util import precompute_image_embeddings

    predictor, decoder = get_predictor_and_decoder("vit_t", checkpoint, device="cpu")
    image = kit.nuclei_image()
    out: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    embeddings = precompute_image_embeddings(predictor, image, ndim=2, verbose=False)
    ais = InstanceSegmentationWithDecoder(predictor, decoder)
    ais.initialize(image, image_embeddings=embeddings)
    out["ais_2d"] = ais.generate()
    out["ais_2d_min_size"] = ais.generate(min_size=50, center_distance_threshold=0.4)
    apg = AutomaticPromptGenerator(predictor, decoder)
    apg.initialize(image, image_embeddings=embeddings)
    out["apg_2d"] = apg.generate()
    # with single masks, these random weights' box prompts all give one mask over the image
    out["apg_2d_boxes"] = apg.generate(refine_with_box_prompts=True, multimasking=True)
    out["apg_2d_auto"] = apg.generate(mask_threshold="auto", batch_size=kit.AUTO_BATCH)
    out["otsu_thresholds"] = np.concatenate(
        [_local_otsu_threshold(logits).numpy().ravel() for logits in kit.otsu_logits()]
    )
    # the same image by tiles (micro-sam's Blocking: inner tiles plus a halo, each embedded
    # on its own; the decoder maps stitched from the tiles' inner parts)
    image = kit.tiled_nuclei_image()
    tiled = precompute_image_embeddings(
        predictor, image, ndim=2, tile_shape=kit.TILE_SHAPE, halo=kit.HALO, verbose=False
    )
    ais_tiled = TiledInstanceSegmentationWithDecoder(predictor, decoder)
    ais_tiled.initialize(image, image_embeddings=tiled)
    out["ais_tiled"] = ais_tiled.generate()
    apg_tiled = TiledAutomaticPromptGenerator(predictor, decoder)
    apg_tiled.initialize(image, image_embeddings=tiled)
    out["apg_tiled"] = apg_tiled.generate()
    if not with_3d:
        out["seconds"] = np.array(time.perf_counter() - started)
        return out
    stack = kit.nuclei_stack()
    segmentor = InstanceSegmentationWithDecoder(predictor, decoder)
    out["ais_3d"] = automatic_3d_segmentation(stack, predictor, segmentor, verbose=False)
    prompter = AutomaticPromptGenerator(predictor, decoder)
    out["apg_3d"] = automatic_3d_segmentation(stack, predictor, prompter, verbose=False)
    out["seconds"] = np.array(time.perf_counter() - started)
    return out


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    with_3d = "--no-3d" not in argv
    argv = [a for a in argv if a not in ("--json", "--no-3d")]
    target = Path(argv[0]) if argv else ROOT / "tests" / "data" / "microsam_instances.npz"
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "vit_t_random_microsam.pt"
        digest = kit.make_checkpoint(checkpoint)
        results = record(checkpoint, with_3d)
    import micro_sam

    meta = {"state_hash": digest, "micro_sam": micro_sam.__version__, "seed": kit.SEED}
    if as_json:
        summary = {k: v.tolist() for k, v in results.items() if v.ndim == 0}
        for key, labels in results.items():
            if labels.ndim:
                summary[key] = {
                    "n": int(len(np.unique(labels)) - 1),
                    "path": str(Path(tempfile.gettempdir()) / f"microsam_{key}.npy"),
                }
                np.save(summary[key]["path"], labels)
        print(json.dumps({**meta, **summary}))
        return 0
    labels = {k: _stored(k, v) for k, v in results.items() if v.ndim}
    np.savez_compressed(target, meta=json.dumps(meta), **labels)
    counts = {k: int(len(np.unique(v)) - 1) for k, v in labels.items()}
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB): objects {counts}, {meta}")
    return 0


def _stored(key: str, values: np.ndarray) -> np.ndarray:
    """Label images as uint32; the Otsu thresholds stay float32 (bit for bit)."""
    return values.astype(np.float32 if key.startswith("otsu_") else np.uint32)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
