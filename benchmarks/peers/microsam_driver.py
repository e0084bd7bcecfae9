"""Drive micro-sam's napari 2D annotator the way a user would and time it (runs in micro-sam's venv).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv-peers/microsam/bin/python \\
        benchmarks/peers/microsam_driver.py --image out/peers/nuclei_512.tif \\
        --checkpoint out/peers/vit_b_random.pth --points out/peers/nuclei_512_points.csv \\
        --out out/peers/microsam.json [--busy] [--n-points 20]

What it does, in a real napari window (show=True, 1400x900):

1. adds the image and opens micro-sam's "Annotator 2d" dock widget from its napari manifest
   (Plugins > Segment Anything for Microscopy > Annotator 2d);
2. in the widget's "Embedding Settings" picks model "Natural Images (SAM)", size "base" and types
   the checkpoint path into "custom weights path", then presses "Compute Embeddings" (micro-sam's
   "load model": it loads the checkpoint and embeds the image, synchronously on the GUI thread);
   a 10 ms QTimer measures how long the GUI is frozen meanwhile;
3. as soon as the annotator is ready, places the first point on the ``point_prompts`` layer and
   presses S (micro-sam segments only on its "Segment Object [S]" action) and stops the clock at
   the first canvas draw after ``current_object``'s data changed: time to first mask;
4. clears (Shift-C, not timed) and then, for each point: places it on ``point_prompts`` (what a
   click in add mode does: ``layer.add`` with the layer's current label, "positive"), presses S,
   and stops the clock at the first draw after ``current_object`` changed; clears again.

micro-sam is not changed: the only additions are timestamps around ``micro_sam.util.get_sam_model``
/ ``precompute_image_embeddings`` / ``prompt_segmentation`` (for the load / embed / decode
breakdown). Writes the figures as JSON (schema in common.py).
"""

from __future__ import annotations

import argparse
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
    parser.add_argument(
        "--busy", action="store_true", help="run a competing process spinning on one core"
    )
    parser.add_argument("--n-points", type=int, default=None, help="time only the first N points")
    parser.add_argument("--model-type", default="vit_b")
    parser.add_argument(
        "--trigger",
        choices=("key", "button"),
        default="key",
        help="segment by pressing S on the canvas (default) or by calling the 'Segment Object' widget",
    )
    parser.add_argument(
        "--screenshot", type=Path, default=None, help="PNG of the window at the first mask"
    )
    args = parser.parse_args(argv)

    import tifffile

    image = tifffile.imread(args.image)
    points = common.read_points_csv(args.points)
    if args.n_points is not None:
        points = points[: args.n_points]
    if len(points) == 0:
        parser.error("no positive points in --points")

    if args.busy:
        with common.busy_process() as proc:
            result = run(args, image, points, busy_pid=proc.pid)
    else:
        result = run(args, image, points)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(common.check_result(result), indent=2) + "\n", encoding="utf-8")
    print(common.format_result(result))
    print(f"wrote {args.out}")
    sys.stdout.flush()
    # napari/Qt teardown can take seconds or hang on Xvfb; the results are written.
    os._exit(0)


def run(args, image: np.ndarray, points: np.ndarray, busy_pid: int | None = None) -> dict:
    import micro_sam
    import micro_sam.util
    import napari
    import torch
    from micro_sam.sam_annotator import util as vutil
    from micro_sam.sam_annotator._state import AnnotatorState
    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtTest import QTest

    result = common.new_result("micro-sam", micro_sam.__version__, busy=args.busy)
    result["model_type"] = args.model_type
    result["image_shape"] = list(image.shape)
    result["inputs"] = {
        "image": str(args.image),
        "points": str(args.points),
        "checkpoint": str(args.checkpoint),
    }
    details = result["details"]
    details.update(
        loadavg_at_start=list(os.getloadavg()),  # other work on the machine shows up here
        napari=napari.__version__,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        n_points=len(points),
        trigger="key S on the canvas" if args.trigger == "key" else "Segment Object widget",
    )

    # -- timestamps around micro-sam's own functions (behaviour unchanged) -------------------
    marks: dict[str, list] = {"load": [], "embed": [], "decode": []}

    def stamped(module, name, key):
        original = getattr(module, name)

        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                marks[key].append((started, time.perf_counter(), threading.current_thread().name))

        setattr(module, name, wrapper)

    stamped(micro_sam.util, "get_sam_model", "load")  # _state.py calls util.get_sam_model
    stamped(micro_sam.util, "precompute_image_embeddings", "embed")
    # _widgets.segment calls vutil.prompt_segmentation
    stamped(vutil, "prompt_segmentation", "decode")

    # -- the window, the image and the plugin ---------------------------------------------------
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    image_layer = viewer.add_image(image, name=args.image.stem)
    annotator, errors = None, []
    for plugin in ("micro-sam", "micro_sam"):  # the manifest's name; napari may know it by either
        try:
            _dock, annotator = viewer.window.add_plugin_dock_widget(plugin, "Annotator 2d")
            details["opened_via"] = f"add_plugin_dock_widget({plugin!r}, 'Annotator 2d')"
            break
        except Exception as exc:
            errors.append(f"{plugin}: {type(exc).__name__}: {exc}")
    if annotator is None:
        from micro_sam.sam_annotator.annotator_2d import Annotator2d

        annotator = Annotator2d(viewer)
        viewer.window.add_dock_widget(annotator, name="Annotator 2d")
        details["opened_via"] = f"Annotator2d(viewer) + add_dock_widget ({'; '.join(errors)})"
    state = AnnotatorState()
    embedding = annotator._widgets["embeddings"]
    common.pump(1.0)
    viewer.reset_view()  # fit the image to the canvas as it is now, with the dock open

    # What a user sets in the embedding widget for a local vit_b checkpoint.
    if embedding.image_selection.get_value() is not image_layer:
        embedding.image_selection.value = image_layer
    embedding.model_family_dropdown.setCurrentText("Natural Images (SAM)")
    embedding.model_size_dropdown.setCurrentText(
        {"vit_b": "base", "vit_l": "large", "vit_h": "huge"}[args.model_type]
    )
    embedding.custom_weights_param.setText(str(args.checkpoint.resolve()))
    common.pump(0.5)

    canvas = viewer.window._qt_viewer.canvas
    draws: list[float] = []
    canvas._scene_canvas.events.draw.connect(lambda event: draws.append(time.perf_counter()))
    mask_layer = viewer.layers["current_object"]
    point_layer = viewer.layers["point_prompts"]
    mask_changes: list[float] = []
    mask_layer.events.data.connect(lambda event: mask_changes.append(time.perf_counter()))

    def segment():
        if args.trigger == "key":
            # The key binding on the point layer / viewer calls annotator._widgets["segment"](viewer).
            QTest.keyClick(canvas.native, Qt.Key.Key_S)
        else:
            annotator._widgets["segment"](viewer)

    def place_point(row: float, col: float) -> None:
        # A left click in add mode ends in layer.add(coords) with the layer's current label.
        point_layer.add(np.array([[row, col]]))

    def segment_point_and_wait(row: float, col: float) -> float:
        """Place a point, press S; return the perf_counter time of the first draw after the mask changed."""
        n_changes = len(mask_changes)
        place_point(row, col)
        segment()
        common.wait_until(
            lambda: len(mask_changes) > n_changes, timeout=60, what="micro-sam's mask"
        )
        changed = mask_changes[n_changes]
        common.wait_until(
            lambda: bool(draws) and draws[-1] > changed, timeout=30, what="a canvas draw"
        )
        return next(t for t in draws if t > changed)

    def clear() -> None:
        annotator._widgets["clear"](viewer)  # Shift-C: removes the prompts and the current mask
        cleared = time.perf_counter()
        common.wait_until(
            lambda: bool(draws) and draws[-1] > cleared, timeout=30, what="a canvas draw"
        )
        common.pump(0.1)

    # The user selects the point layer and its add mode before clicking.
    viewer.layers.selection.active = point_layer
    point_layer.mode = "add"
    common.pump(0.3)

    # -- load model + embed ("Compute Embeddings"), then the first mask ------------------------
    gap = common.GapMeter(10)
    clicked: dict[str, float] = {}

    def press_compute():
        clicked["t0"] = time.perf_counter()
        embedding.run_button.click()  # runs micro-sam's slots; returns when they are all done

    # connected after micro-sam's own slots, so it runs after them
    embedding.run_button.clicked.connect(
        lambda *a: clicked.setdefault("ready", time.perf_counter())
    )
    # other_load: cores used by anything but this process (and the busy process): ~0 when quiet
    ours = [os.getpid()] + ([busy_pid] if busy_pid else [])
    cpu_load_embed = common.CpuAccount(ours).start()
    gap.start()
    QTimer.singleShot(0, press_compute)
    common.wait_until(lambda: "ready" in clicked, timeout=1800, what="micro-sam's embedding")
    t0, ready = clicked["t0"], clicked["ready"]
    if state.image_embeddings is None or state.predictor is None:
        raise RuntimeError("micro-sam did not compute the embedding (see its messages above)")
    other_load_embed = cpu_load_embed.other_load()
    first_row, first_col = points[0]
    gap.stop_after(ready)  # the gaps of loading + embedding only, not of the first prompt
    first_drawn = segment_point_and_wait(first_row, first_col)
    first_mask_pixels = int(np.count_nonzero(mask_layer.data))
    details["point_label"] = str(point_layer.properties["label"][-1])  # "positive"
    if args.screenshot is not None:  # after the clock stopped
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        viewer.window._qt_window.grab().save(str(args.screenshot))

    load, embed = marks["load"][-1], marks["embed"][-1]
    result["load_embed_s"] = ready - t0
    result["load_embed_longest_gap_ms"] = gap.longest_ms(t0, ready)
    result["time_to_first_mask_s"] = first_drawn - t0
    details.update(
        load_s=load[1] - load[0],
        embed_s=embed[1] - embed[0],
        embedding_ready_s=embed[1] - t0,
        load_thread=load[2],
        embed_thread=embed[2],
        first_prompt_to_mask_ms=(first_drawn - ready) * 1000.0,
        first_mask_pixels=first_mask_pixels,
        predictor_model_type=getattr(state.predictor, "model_type", None),
        gap_ticks_during_load_embed=len(gap.gaps_ms(t0, ready)),
    )
    clear()

    # -- prompt -> mask drawn, one point at a time ---------------------------------------------
    latencies, decode_ms, pixels = [], [], []
    cpu_prompts = common.CpuAccount(ours).start()
    for row, col in points:
        n_decodes = len(marks["decode"])
        started = time.perf_counter()
        drawn = segment_point_and_wait(row, col)
        latencies.append((drawn - started) * 1000.0)
        if len(marks["decode"]) > n_decodes:
            d0, d1, thread = marks["decode"][n_decodes]
            decode_ms.append((d1 - d0) * 1000.0)
            details["decode_thread"] = thread
        pixels.append(int(np.count_nonzero(mask_layer.data)))
        clear()

    result["prompt_to_mask_ms"] = common.summarize_ms(latencies)
    details["other_load"] = {"load_embed": other_load_embed, "prompts": cpu_prompts.other_load()}
    if busy_pid:
        details["busy_pid"] = busy_pid
    details["decode_ms"] = common.summarize_ms(decode_ms)
    details["mask_pixels"] = pixels
    details["window"] = [viewer.window._qt_window.width(), viewer.window._qt_window.height()]
    viewer.close()
    return result


if __name__ == "__main__":
    raise SystemExit(main())
