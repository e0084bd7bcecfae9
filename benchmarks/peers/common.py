"""Shared inputs and helpers for the peer benchmarks (ours vs micro-sam's 2D annotator).

Plain Python: importable from the project's venv and from micro-sam's venv alike, and it never
imports ``napari_promptseg``. numpy and tifffile are needed for the inputs; torch and
``segment_anything`` only to build the checkpoint; qtpy only for the Qt helpers (imported lazily).

The inputs, made deterministically and cached in a folder (default ``out/peers/``):

* ``nuclei_512.tif``: a 512x512 uint16 image of 20 bright, noisy elliptical nuclei on a dark,
  noisy background (fixed seed; numpy only);
* ``nuclei_512_points.csv``: one positive point inside each nucleus, in the CLI's points format
  (``object,row,col,label``), so ``promptseg segment --points`` reads it too;
* ``vit_b_random.pth``: ``torch.manual_seed(0); sam_model_registry["vit_b"]()``'s state_dict
  saved with ``torch.save`` (~360 MB; the compute of the real vit_b, no download).

    python benchmarks/peers/common.py [--out-dir out/peers]   # make (or reuse) them, print paths

Helpers: :func:`busy_process` (a competing process spinning on one core), :class:`GapMeter` and
:func:`wait_until` (Qt event-loop timing), :func:`summarize_ms`, the JSON result schema
(:func:`new_result`, :func:`check_result`, :func:`format_result`) and :func:`ratios`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO_ROOT / "out" / "peers"

IMAGE_SHAPE: tuple[int, int] = (512, 512)
N_NUCLEI = 20
IMAGE_SEED = 0
CHECKPOINT_SEED = 0
MODEL_TYPE = "vit_b"
# Bump when the generator changes: a cached input made by another version is rebuilt.
INPUTS_VERSION = 1

IMAGE_NAME = "nuclei_512.tif"
POINTS_NAME = "nuclei_512_points.csv"
CHECKPOINT_NAME = "vit_b_random.pth"
MANIFEST_NAME = "inputs.json"

RESULT_SCHEMA = "promptseg-peer-bench/1"


# -- inputs ------------------------------------------------------------------------------------


def make_nuclei_image(
    seed: int = IMAGE_SEED, shape: tuple[int, int] = IMAGE_SHAPE, n_nuclei: int = N_NUCLEI
) -> tuple[np.ndarray, np.ndarray]:
    """A uint16 image of ``n_nuclei`` bright noisy ellipses on a dark noisy background.

    Returns ``(image, points)``: ``points`` is an ``(n, 2)`` int array of (row, col), one point
    at the centre of each nucleus (always inside it: the ellipses do not overlap and have a
    minor radius of at least 7 px). Same arguments, same output.
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]

    # Dark background: an offset, a faint gradient, camera-like noise added at the end.
    gy, gx = rng.uniform(-1.0, 1.0, size=2)
    image = 600.0 + 150.0 * (gy * rows / height + gx * cols / width)

    placed: list[tuple[float, float, float]] = []  # (row, col, major radius)
    attempts = 0
    while len(placed) < n_nuclei:
        attempts += 1
        if attempts > 10_000:
            raise RuntimeError(f"could not place {n_nuclei} nuclei in {shape}")
        r_major = rng.uniform(14.0, 30.0)
        r_minor = r_major * rng.uniform(0.55, 0.95)
        margin = r_major + 6.0
        cy = rng.uniform(margin, height - margin)
        cx = rng.uniform(margin, width - margin)
        if any(np.hypot(cy - py, cx - px) < r_major + pr + 6.0 for py, px, pr in placed):
            continue
        placed.append((cy, cx, r_major))

        angle = rng.uniform(0.0, np.pi)
        brightness = rng.uniform(6_000.0, 22_000.0)
        r0, r1 = int(max(cy - margin, 0)), int(min(cy + margin + 1, height))
        c0, c1 = int(max(cx - margin, 0)), int(min(cx + margin + 1, width))
        dy = rows[r0:r1] - cy
        dx = cols[:, c0:c1] - cx
        cos, sin = np.cos(angle), np.sin(angle)
        u = (dx * cos + dy * sin) / r_major
        v = (-dx * sin + dy * cos) / r_minor
        dist = np.sqrt(u * u + v * v)  # 1.0 on the outline
        body = 1.0 / (1.0 + np.exp((dist - 1.0) * 12.0))  # soft edge
        # Textured interior (chromatin-like speckle), a little brighter in the middle.
        texture = 1.0 + 0.15 * rng.standard_normal(dist.shape)
        profile = body * (0.8 + 0.2 * np.clip(1.0 - dist, 0.0, 1.0)) * texture
        image[r0:r1, c0:c1] += brightness * profile

    image += rng.normal(0.0, 120.0, size=shape)  # background / read noise
    image = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    points = np.array([(round(cy), round(cx)) for cy, cx, _ in placed], dtype=np.int64)
    return image, points


def write_points_csv(path: Path, points: np.ndarray) -> None:
    """Write (row, col) points as the CLI's points CSV: ``object,row,col,label`` (label 1)."""
    lines = ["object,row,col,label"]
    lines += [f"nucleus_{i:02d},{int(r)},{int(c)},1" for i, (r, c) in enumerate(points, start=1)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_points_csv(path: Path) -> np.ndarray:
    """The (row, col) points of a points CSV as an ``(n, 2)`` float array (positive ones only)."""
    points = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if int(float(row.get("label", 1) or 1)) == 1:
                points.append((float(row["row"]), float(row["col"])))
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def make_random_checkpoint(
    path: Path, model_type: str = MODEL_TYPE, seed: int = CHECKPOINT_SEED
) -> None:
    """Save a randomly initialised SAM's state_dict (``torch.manual_seed(seed)``) to ``path``."""
    import torch
    from segment_anything import sam_model_registry

    torch.manual_seed(seed)
    sam = sam_model_registry[model_type]()
    tmp = Path(f"{path}.tmp-{os.getpid()}")
    try:
        torch.save(sam.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: a half-written checkpoint is never cached
    finally:
        tmp.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Inputs:
    folder: Path
    image: Path
    points: Path
    checkpoint: Path
    model_type: str = MODEL_TYPE

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in dataclasses.asdict(self).items()}


def inputs_in(folder: Path | str | None = None) -> Inputs:
    """The input paths in ``folder`` (default ``out/peers/``), without making anything."""
    folder = Path(folder) if folder is not None else DEFAULT_DIR
    return Inputs(folder, folder / IMAGE_NAME, folder / POINTS_NAME, folder / CHECKPOINT_NAME)


def prepare_inputs(
    folder: Path | str | None = None, *, checkpoint: bool = True, verbose: bool = True
) -> Inputs:
    """Make the image, the points CSV and (if ``checkpoint``) the random vit_b checkpoint in
    ``folder`` (default ``out/peers/``), reusing those already there from the same generator."""
    inputs = inputs_in(folder)
    folder = inputs.folder
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST_NAME
    wanted = {
        "image": {
            "shape": list(IMAGE_SHAPE),
            "n_nuclei": N_NUCLEI,
            "seed": IMAGE_SEED,
            "dtype": "uint16",
        },
        "checkpoint": {"model_type": MODEL_TYPE, "seed": CHECKPOINT_SEED},
    }
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    say = print if verbose else (lambda *a, **k: None)

    if manifest.get("version") != INPUTS_VERSION:
        manifest = {"version": INPUTS_VERSION}  # made by another generator: rebuild everything
    if (
        manifest.get("image") != wanted["image"]
        or not inputs.image.exists()
        or not inputs.points.exists()
    ):
        import tifffile

        image, points = make_nuclei_image()
        tifffile.imwrite(inputs.image, image)
        write_points_csv(inputs.points, points)
        manifest["image"] = wanted["image"]
        say(
            f"wrote {inputs.image} ({image.shape[0]}x{image.shape[1]} {image.dtype}) "
            f"and {inputs.points} ({len(points)} points)"
        )
    if checkpoint and (
        manifest.get("checkpoint") != wanted["checkpoint"] or not inputs.checkpoint.exists()
    ):
        say(
            f"building the random {MODEL_TYPE} checkpoint (torch.manual_seed({CHECKPOINT_SEED})) ..."
        )
        started = time.perf_counter()
        make_random_checkpoint(inputs.checkpoint)
        manifest["checkpoint"] = wanted["checkpoint"]
        say(
            f"wrote {inputs.checkpoint} ({inputs.checkpoint.stat().st_size / 2**20:.0f} MiB, "
            f"{time.perf_counter() - started:.0f} s)"
        )
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return inputs


# -- a competing process -----------------------------------------------------------------------


@contextlib.contextmanager
def busy_process() -> Iterator[subprocess.Popen]:
    """Run ``python -c "while True: pass"`` (one core kept busy) for the ``with`` block.

    The process is not pinned: the OS schedules it like any other program a user might have
    running. It is terminated (then killed) on exit, whatever happened in the block.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    try:
        time.sleep(0.2)  # let it start spinning before the measurement begins
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (so a killed benchmark never
    leaves the spinning process behind)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


class CpuAccount:
    """How busy the rest of the machine was during a measurement (Linux; None elsewhere).

    ``other_load()``: the average number of cores used by processes other than ``pids`` (default:
    this one) between ``start()`` and the call: the machine's busy time from /proc/stat minus the
    CPU time of ``pids``. About 0 for a quiet run (Xvfb's own drawing shows up here too), about 1
    with :func:`busy_process` (pass its pid to count it as ours instead).
    """

    def __init__(self, pids: list[int] | None = None):
        self.pids = list(pids) if pids is not None else [os.getpid()]
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _machine() -> tuple[float, float]:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [float(v) for v in handle.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle, time.monotonic()

    def _own(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += float(fields[11]) + float(fields[12])  # utime + stime
            except (OSError, IndexError, ValueError):
                pass
        return total

    def start(self) -> CpuAccount:
        try:
            busy, now = self._machine()
            self._start = (busy, self._own(), now)
        except OSError:
            self._start = None
        return self

    def other_load(self) -> float | None:
        if self._start is None:
            return None
        busy, now = self._machine()
        ticks = os.sysconf("SC_CLK_TCK")
        other = (busy - self._start[0]) - (self._own() - self._start[1])
        wall = now - self._start[2]
        return round(max(other, 0.0) / ticks / wall, 3) if wall > 0 else None


# -- Qt helpers (qtpy imported lazily) ---------------------------------------------------------


def wait_until(
    condition: Callable[[], bool], timeout: float = 600.0, what: str = "condition"
) -> None:
    """Block in Qt's event loop until ``condition()`` is true.

    Sleeps in ``processEvents(WaitForMoreEvents)`` as a real session does (a busy polling loop
    would hold the GIL and steal the CPU from the work being waited for); a 20 ms wake timer
    makes it re-check the condition now and then.
    """
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    wake = QTimer()
    wake.start(20)
    try:
        deadline = time.perf_counter() + timeout
        while not condition():
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
            if time.perf_counter() > deadline:
                raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
    finally:
        wake.stop()


def pump(seconds: float) -> None:
    """Run Qt's event loop for ``seconds`` (let the window settle)."""
    end = time.perf_counter() + seconds
    wait_until(lambda: time.perf_counter() >= end, timeout=seconds + 60, what="settling")


class GapMeter:
    """A 10 ms QTimer on the GUI thread; the gaps between its ticks show how long the GUI froze."""

    def __init__(self, interval_ms: int = 10):
        from qtpy.QtCore import QTimer

        self.ticks: list[float] = []
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def start(self) -> None:
        self.ticks = [time.perf_counter()]
        self._timer.start()

    def stop_after(self, moment: float, timeout: float = 60.0) -> None:
        """Wait for the first tick after ``moment`` (so the gap spanning it is counted), then stop."""
        wait_until(lambda: self.ticks[-1] > moment, timeout=timeout, what="a GUI timer tick")
        self._timer.stop()

    def gaps_ms(self, start: float | None = None, end: float | None = None) -> np.ndarray:
        """Gaps (ms) between consecutive ticks that overlap [start, end]."""
        t = np.asarray(self.ticks)
        gaps = np.diff(t)
        keep = np.ones(len(gaps), dtype=bool)
        if start is not None:
            keep &= t[1:] >= start
        if end is not None:
            keep &= t[:-1] <= end
        return gaps[keep] * 1000.0

    def longest_ms(self, start: float | None = None, end: float | None = None) -> float:
        gaps = self.gaps_ms(start, end)
        return float(gaps.max()) if len(gaps) else float("nan")


# -- results -----------------------------------------------------------------------------------


def summarize_ms(values_ms) -> dict[str, Any]:
    """Median, p95, min, max and the values (ms) of a list of latencies."""
    values = np.asarray(list(values_ms), dtype=np.float64)
    if values.size == 0:
        return {"n": 0, "median": None, "p95": None, "min": None, "max": None, "values": []}
    return {
        "n": int(values.size),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "min": float(values.min()),
        "max": float(values.max()),
        "values": [round(float(v), 2) for v in values],
    }


# The figures every peer result carries (seconds or milliseconds as the name says); null where a
# tool cannot give one.
RESULT_FIGURES = (
    "load_embed_s",  # start of loading the model -> embedding ready (prompts can be segmented)
    "load_embed_longest_gap_ms",  # longest gap of a 10 ms GUI QTimer over that time
    "time_to_first_mask_s",  # 'load model' -> first mask drawn for the first point
    "prompt_to_mask_ms",  # summarize_ms(): point placed -> mask drawn, one per point
)


def new_result(
    tool: str, tool_version: str, *, busy: bool, inputs: Inputs | None = None
) -> dict[str, Any]:
    """A result dict with the schema's fixed fields filled in and the figures set to None."""
    import platform

    result: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "tool": tool,
        "tool_version": tool_version,
        "busy": bool(busy),
        "model_type": MODEL_TYPE,
        "image_shape": list(IMAGE_SHAPE),
        "inputs": inputs.as_dict() if inputs is not None else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for name in RESULT_FIGURES:
        result[name] = None
    result["details"] = {}
    return result


def check_result(result: dict[str, Any]) -> dict[str, Any]:
    """Raise ValueError if ``result`` does not follow the schema; return it."""
    if result.get("schema") != RESULT_SCHEMA:
        raise ValueError(f"not a {RESULT_SCHEMA} result: schema={result.get('schema')!r}")
    missing = [k for k in ("tool", "tool_version", "busy", *RESULT_FIGURES) if k not in result]
    if missing:
        raise ValueError(f"result lacks {missing}")
    p2m = result["prompt_to_mask_ms"]
    if p2m is not None and not {"median", "p95", "n"} <= set(p2m):
        raise ValueError("prompt_to_mask_ms must be a summarize_ms() dict")
    return result


def _fmt(value, unit: str, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def format_result(result: dict[str, Any]) -> str:
    """A few human-readable lines for one result."""
    p2m = result.get("prompt_to_mask_ms") or {}
    mode = "busy (one competing process)" if result.get("busy") else "quiet"
    lines = [
        f"{result['tool']} {result['tool_version']} [{mode}], {result.get('model_type')} "
        f"{'x'.join(map(str, result.get('image_shape') or []))}",
        f"  load + embed:            {_fmt(result.get('load_embed_s'), 's')}"
        f" (longest GUI gap {_fmt(result.get('load_embed_longest_gap_ms'), 'ms', 0)})",
        f"  time to first mask:      {_fmt(result.get('time_to_first_mask_s'), 's')}",
        f"  prompt -> mask drawn:    median {_fmt(p2m.get('median'), 'ms', 0)}, "
        f"p95 {_fmt(p2m.get('p95'), 'ms', 0)} ({p2m.get('n', 0)} points)",
    ]
    other = {
        k: v
        for k, v in ((result.get("details") or {}).get("other_load") or {}).items()
        if v is not None
    }
    if other:
        lines.append(
            "  other work on the machine: "
            + ", ".join(f"{k} {v:.2f} cores" for k, v in other.items())
            + " (not counting this run or its busy process; ~0 when quiet)"
        )
    return "\n".join(lines)


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    """peer / ours for each figure (> 1: we are faster / freeze less)."""

    def ratio(a, b):
        return None if a is None or b is None or a == 0 else float(b) / float(a)

    out = {
        "load_embed_s": ratio(ours.get("load_embed_s"), peer.get("load_embed_s")),
        "load_embed_longest_gap_ms": ratio(
            ours.get("load_embed_longest_gap_ms"), peer.get("load_embed_longest_gap_ms")
        ),
        "time_to_first_mask_s": ratio(
            ours.get("time_to_first_mask_s"), peer.get("time_to_first_mask_s")
        ),
    }
    for stat in ("median", "p95"):
        a = (ours.get("prompt_to_mask_ms") or {}).get(stat)
        b = (peer.get("prompt_to_mask_ms") or {}).get(stat)
        out[f"prompt_to_mask_{stat}_ms"] = ratio(a, b)
    return out


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Make (or reuse) the peer benchmarks' inputs.")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--no-checkpoint", action="store_true", help="image and points only")
    args = parser.parse_args(argv)
    inputs = prepare_inputs(args.out_dir, checkpoint=not args.no_checkpoint)
    print(json.dumps(inputs.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
