"""APG's ``mask_threshold="auto"``: our local Otsu against micro-sam 1.8.14's, same run.

    .venv/bin/python benchmarks/bench_mask_threshold.py [--masks 8] [--batch 2]

Input: ``--masks`` seeded (1, 256, 256) low-resolution logits (a blob on noise at a random
place and size, as SAM's decoder gives), written once and read by both sides. Each side runs
in a fresh process (micro-sam in its venv, this file being its driver), so the peak resident
memory printed is that side's own. Printed: seconds per mask, peak memory, the ratio ours /
micro-sam and whether the thresholds are bit for bit equal.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_instances import MICROSAM_PY, ROOT


def logits(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:256, :256]
    out = rng.normal(0, 1, (n, 1, 256, 256))
    for i in range(n):
        r, c, radius = rng.uniform(30, 226), rng.uniform(30, 226), rng.uniform(8, 60)
        out[i, 0] += 10 - np.hypot(rows - r, cols - c) / radius * 6
    return out.astype(np.float32)


def drive(side: str, path: str, batch: int) -> None:
    """One side in this process: print seconds, peak memory and the thresholds as JSON."""
    import torch

    if side == "microsam":
        from micro_sam.inference import _local_otsu_threshold as thresholds_of
    else:
        sys.path.insert(0, str(ROOT / "src"))
        from napari_promptseg.core.workflows.instances.mask_threshold import (
            local_otsu_thresholds as thresholds_of,
        )
    data = torch.from_numpy(np.load(path))
    started = time.perf_counter()
    values = [thresholds_of(data[i : i + batch]) for i in range(0, len(data), batch)]
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "thresholds": torch.cat(values).flatten().tolist(),
            }
        )
    )


def run_side(python: Path, side: str, path: Path, batch: int) -> dict:
    command = [str(python), __file__, "--driver", side, str(path), str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=8)
    parser.add_argument(
        "--batch", type=int, default=2, help="masks per call (micro-sam: ~1.5 GB each)"
    )
    parser.add_argument("--driver", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        side, path, batch = args.driver
        drive(side, path, int(batch))
        return 0
    if not MICROSAM_PY.exists():
        raise SystemExit(
            f"micro-sam's venv not found ({MICROSAM_PY}): benchmarks/peers/setup_microsam.sh"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logits.npy"
        np.save(path, logits(args.masks))
        theirs = run_side(MICROSAM_PY, "microsam", path, args.batch)
        ours = run_side(Path(sys.executable), "ours", path, args.batch)
    n = args.masks
    print(f"{n} masks of 256x256 logits, {args.batch} per call")
    for name, side in (("micro-sam 1.8.14", theirs), ("ours", ours)):
        print(
            f"  {name:17s} {side['seconds'] / n * 1000:8.1f} ms/mask  peak {side['peak_mb']:7.0f} MB"
        )
    print(
        f"  ratio ours / micro-sam: time {ours['seconds'] / theirs['seconds']:.3f}x, "
        f"peak memory {ours['peak_mb'] / theirs['peak_mb']:.3f}x"
    )
    same = (
        np.array(ours["thresholds"], np.float32).tobytes()
        == np.array(theirs["thresholds"], np.float32).tobytes()
    )
    print(f"  thresholds identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
