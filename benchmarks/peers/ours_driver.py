"""Our side of the peer benchmark: the "Prompt segmentation" widget, driven as a user would.

The same harness as ``microsam_driver.py`` (same window size, image, checkpoint, points, clock):

* load + embed: "Load model" for the checkpoint file (``model_type`` vit_b, loaded by our
  loader) until the embedding is ready; the longest gap of a 10 ms GUI timer meanwhile;
* time to first mask: "Load model" → the first mask drawn for the first point;
* prompt → mask drawn: each point placed on our points layer (``layer.add``, what a click in add
  mode ends in; we need no extra key press) until the first canvas draw after the mask shown
  changed (the session's ``result_changed`` with a mask); prompts cleared between points.

Each click is traced (``details["clicks"]``, and the slowest ones printed): which path its
decode took (``inline`` on the GUI thread or the ``worker``), the thread count the chooser
gave it and whether that was a re-timing of the other option, the garbage collections that
ran during the click (generation, ms), how many decodes the model had run since its
embedding, and the time from the mask set to its draw.

    xvfb-run -a python benchmarks/peers/ours_driver.py --image out/peers/nuclei_512.tif \\
        --checkpoint out/peers/vit_b_random.pth --points out/peers/nuclei_512_points.csv \\
        --out ours.json [--busy] [--n-points N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--points", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--busy", action="store_true", help="a competing process on one core")
    parser.add_argument("--n-points", type=int, default=None, help="time only the first N points")
    parser.add_argument("--model-type", default="vit_b")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args(argv)

    import tifffile

    image = tifffile.imread(args.image)
    points = common.read_points_csv(args.points)
    if args.n_points is not None:
        points = points[: args.n_points]
    if args.busy:
        with common.busy_process() as proc:
            result = run(args, image, points)
            result["details"]["busy_pid"] = proc.pid
    else:
        result = run(args, image, points)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(common.check_result(result), indent=2) + "\n", encoding="utf-8")
    print(common.format_result(result))
    print(f"  breakdown (medians, ms): {result['details'].get('breakdown_median_ms')}")
    sys.stdout.flush()
    os._exit(0)  # napari/Qt teardown on Xvfb can take seconds; the results are written


def run(args, image: np.ndarray, points: np.ndarray) -> dict:
    import napari
    import torch

    import napari_promptseg
    from napari_promptseg._napari import layers as prompt_layers
    from napari_promptseg.core import PromptSegmenter

    try:
        from napari_promptseg._qt.widget import PromptSegWidget
    except ImportError:  # the layout before the architecture issue: to measure "before"
        from napari_promptseg._napari.widget import PromptSegWidget

    decodes: list[tuple[float, float, str]] = []  # (start, end, thread) of every predict
    predict = PromptSegmenter.predict

    def timed_predict(self, *a, **k):
        started = time.perf_counter()
        try:
            return predict(self, *a, **k)
        finally:
            decodes.append((started, time.perf_counter(), threading.current_thread().name))

    PromptSegmenter.predict = timed_predict

    # the per-click trace: what the thread chooser said, and every garbage collection
    from napari_promptseg.core.sam.threads import DecodeThreads

    choices: list[tuple[float, int, bool]] = []  # (time, thread count, a re-timing)
    choose = DecodeThreads.choose

    def traced_choose(self):
        count = choose(self)
        choices.append((time.perf_counter(), count, count != self.current))
        return count

    DecodeThreads.choose = traced_choose
    collections: list[tuple[float, float, int]] = []  # (start, end, generation)
    gc_started: dict[str, float] = {}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started["t"] = time.perf_counter()
        elif "t" in gc_started:
            collections.append((gc_started.pop("t"), time.perf_counter(), info["generation"]))

    gc.callbacks.append(on_gc)

    result = common.new_result("napari-promptseg", napari_promptseg.__version__, busy=args.busy)
    result["model_type"] = args.model_type
    result["image_shape"] = list(image.shape)
    result["inputs"] = {
        "image": str(args.image),
        "points": str(args.points),
        "checkpoint": str(args.checkpoint),
    }
    details = result["details"]
    details.update(
        loadavg_at_start=list(os.getloadavg()),
        napari=napari.__version__,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        n_points=len(points),
        trigger="point added to the points layer (no key needed)",
    )

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.add_image(image, name=args.image.stem)
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    session = widget.session
    common.pump(1.0)
    viewer.reset_view()

    canvas = viewer.window._qt_viewer.canvas
    draws: list[float] = []
    canvas._scene_canvas.events.draw.connect(lambda event: draws.append(time.perf_counter()))
    shown: list[float] = []
    session.result_changed.connect(
        lambda: shown.append(time.perf_counter()) if session.result is not None else None
    )
    point_layer = prompt_layers.find_layer(viewer, "points")
    viewer.layers.selection.active = point_layer
    point_layer.mode = "add"
    common.pump(0.3)

    breakdown: list[dict] = []
    clicks: list[dict] = []  # the per-click trace

    def segment_point_and_wait(row: float, col: float) -> float:
        n_shown, n_decodes, n_choices = len(shown), len(decodes), len(choices)
        started = time.perf_counter()
        point_layer.add(np.array([[row, col]]))  # what a click in add mode ends in
        common.wait_until(lambda: len(shown) > n_shown, timeout=60, what="our mask")
        changed = shown[n_shown]
        common.wait_until(lambda: bool(draws) and draws[-1] > changed, timeout=30, what="a draw")
        drawn = next(t for t in draws if t > changed)
        if len(decodes) > n_decodes:  # where the time went, for docs/performance.md
            d0, d1, thread = decodes[-1]
            breakdown.append(
                {
                    "until_decode_starts": (d0 - started) * 1000,
                    "decode": (d1 - d0) * 1000,
                    "decode_to_mask_set": (changed - d1) * 1000,
                    "mask_set_to_drawn": (drawn - changed) * 1000,
                    "frames_before_mask": sum(started < t < changed for t in draws),
                    "decode_thread": thread,
                }
            )
        ours = decodes[n_decodes:]
        chosen = choices[n_choices:]
        gcs = [(a, b, g) for a, b, g in collections if a >= started and b <= drawn]
        clicks.append(
            {
                "ms": (drawn - started) * 1000,
                "path": ("inline" if ours and ours[-1][2] == "MainThread" else "worker")
                if ours
                else "none",
                "decodes": len(ours),
                "decode_ms": (ours[-1][1] - ours[-1][0]) * 1000 if ours else None,
                "threads": chosen[-1][1] if chosen else None,
                "retimed": any(r for _, _, r in chosen),
                "gc": [[g, round((b - a) * 1000, 2)] for a, b, g in gcs],
                "gc_ms": sum((b - a) * 1000 for a, b, _ in gcs),
                "decodes_since_embedding": len(decodes) - 1,
                "mask_set_to_drawn": (drawn - changed) * 1000,
            }
        )
        return drawn

    def clear() -> None:
        session.clear()
        cleared = time.perf_counter()
        common.wait_until(lambda: bool(draws) and draws[-1] > cleared, timeout=30, what="a draw")
        common.pump(0.1)

    # -- "Load model" for the checkpoint file, then the first mask -------------------------
    model_loaded: list[float] = []
    session.model_changed.connect(lambda name: model_loaded.append(time.perf_counter()))
    gap = common.GapMeter(10)
    gap.start()
    t0 = time.perf_counter()
    session.load_model(checkpoint=args.checkpoint, model_type=args.model_type)  # the button's call
    common.wait_until(lambda: session.embedding is not None, timeout=1800, what="the embedding")
    ready = time.perf_counter()
    gap.stop_after(ready)  # the gaps of loading + embedding only, not of the first prompt
    first_drawn = segment_point_and_wait(*points[0])
    if args.screenshot is not None:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        viewer.window._qt_window.grab().save(str(args.screenshot))
    result["load_embed_s"] = ready - t0
    result["load_embed_longest_gap_ms"] = gap.longest_ms(t0, ready)
    result["time_to_first_mask_s"] = first_drawn - t0
    ticks = np.asarray(gap.ticks)
    inside = (ticks[1:] >= t0) & (ticks[:-1] <= ready)
    worst = int(np.argmax(np.where(inside, np.diff(ticks), -1)))
    details.update(
        first_prompt_to_mask_ms=(first_drawn - ready) * 1000.0,
        gap_ticks_during_load_embed=len(gap.gaps_ms(t0, ready)),
        longest_gap_starts_at_s=float(ticks[worst] - t0),  # where to look for its cause
        model_loaded_at_s=float(model_loaded[0] - t0) if model_loaded else None,
    )
    clear()

    # -- prompt → mask drawn, one point at a time -------------------------------------------
    breakdown.clear()
    clicks.clear()
    latencies = []
    for row, col in points:
        started = time.perf_counter()
        drawn = segment_point_and_wait(row, col)
        latencies.append((drawn - started) * 1000.0)
        clear()
    result["prompt_to_mask_ms"] = common.summarize_ms(latencies)
    details["decode_ms"] = common.summarize_ms([b["decode"] for b in breakdown])
    details["breakdown_median_ms"] = (
        {
            key: float(np.median([b[key] for b in breakdown]))
            for key in breakdown[0]
            if key != "decode_thread"
        }
        if breakdown
        else {}
    )
    details["decode_thread"] = breakdown[-1]["decode_thread"] if breakdown else None
    details["clicks"] = clicks
    print_slowest(clicks)
    widget.close_session()
    viewer.close()
    return result


def print_slowest(clicks: list[dict], n: int = 4) -> None:
    """The slowest clicks and the median one, with what their trace says."""
    if not clicks:
        return
    order = sorted(range(len(clicks)), key=lambda i: clicks[i]["ms"])
    shown = [*order[-n:][::-1], order[len(order) // 2]]
    print("  per-click trace (slowest first, then the median click):")
    for i in shown:
        c = clicks[i]
        decode = f"{c['decode_ms']:.0f}" if c["decode_ms"] is not None else "-"
        print(
            f"    click {i:2d}: {c['ms']:6.1f} ms  {c['path']:6s} threads={c['threads']} "
            f"retimed={c['retimed']!s:5s} decode={decode} ms gc={c['gc']} "
            f"draw={c['mask_set_to_drawn']:.0f} ms decodes#{c['decodes_since_embedding']}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
