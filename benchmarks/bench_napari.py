"""Click → mask on screen in a real napari window, and GUI stalls while the embedding runs.

vit_b with random weights (the compute of the trained model), a 512x512 image, Xvfb + Mesa:

* stall: a 10 ms QTimer runs while the widget embeds the image in its worker; we report the
  longest gap between ticks (a frozen GUI shows up as a long gap);
* click → mask: a left click is sent to the canvas (Qt mouse events → vispy → napari's
  points layer in add mode), and the clock stops when the canvas has drawn the new preview
  (the first draw after the preview layer's data changed). Median and p95 over many clicks,
  next to raw ``SamPredictor.predict`` for the same point on the same image, same run.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_napari.py [--clicks 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--model", default="vit_b", help="vit_b (default) or tiny for a quick check"
    )
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QEventLoop, QPoint, Qt, QTimer
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication
    from segment_anything import SamPredictor, sam_model_registry

    from napari_promptseg._napari import layers as prompt_layers
    from napari_promptseg._qt.widget import PromptSegWidget
    from napari_promptseg._sample_data import sample_cells_image
    from napari_promptseg.core import PromptSegmenter
    from napari_promptseg.testing import build_tiny_sam

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]().eval() if args.model == "vit_b" else build_tiny_sam()
    image = sample_cells_image(shape=(args.size, args.size))

    wake = QTimer()  # wakes the wait below now and then to re-check its condition
    wake.start(20)

    def wait(condition, timeout=600.0):
        # Block in Qt's event loop as a real session does: a busy polling loop would hold
        # the GIL and slow the decoding thread it is waiting for.
        deadline = time.perf_counter() + timeout
        while not condition():
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
            if time.perf_counter() > deadline:
                raise TimeoutError

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(1400, 900)
    viewer.add_image(image, name="cells")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)

    # -- stall while embedding ---------------------------------------------------------------
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    # built first: in the plugin the model-loading worker builds it, off the GUI thread
    segmenter = PromptSegmenter(sam, f"{args.model}-random", name=args.model)
    timer = QTimer()
    timer.timeout.connect(tick)
    last[0] = time.perf_counter()
    timer.start(10)
    started = time.perf_counter()
    widget.session.set_segmenter(segmenter)
    wait(lambda: widget.session.embedding is not None)
    embed_seconds = time.perf_counter() - started
    timer.stop()
    gaps_ms = np.array(gaps[1:]) * 1000
    print(
        f"model {args.model} (random weights), image {args.size}x{args.size}, torch {torch.get_num_threads()} threads"
    )
    print(
        f"embedding in the worker: {embed_seconds:.1f} s; GUI timer (10 ms) gaps: "
        f"longest {gaps_ms.max():.0f} ms, p99 {np.percentile(gaps_ms, 99):.0f} ms, "
        f"median {np.median(gaps_ms):.0f} ms over {len(gaps_ms)} ticks"
    )

    # -- click → mask on screen ---------------------------------------------------------------
    points = prompt_layers.find_layer(viewer, "points")
    viewer.layers.selection.active = points
    points.mode = "add"
    viewer.reset_view()
    canvas = viewer.window._qt_viewer.canvas
    native = canvas.native
    scene = canvas._scene_canvas
    draws = []
    scene.events.draw.connect(lambda event: draws.append(time.perf_counter()))
    preview_changed = []

    def on_result():
        if widget.session.result is not None:
            preview_changed.append(time.perf_counter())

    widget.session.result_changed.connect(on_result)

    rng = np.random.default_rng(0)
    latencies, clicked_positions = [], []
    for _ in range(args.clicks + 3):
        widget.session.clear()
        for _ in range(5):
            app.processEvents()
        # a point well inside the image, in canvas pixels
        row, col = rng.uniform(0.2, 0.8, 2) * args.size
        world = points.data_to_world((row, col))
        x, y = _world_to_canvas_pixels(viewer, canvas, np.asarray(world, dtype=float))
        before = len(preview_changed)
        t0 = time.perf_counter()
        QTest.mouseClick(native, Qt.LeftButton, Qt.NoModifier, QPoint(int(x), int(y)))
        wait(lambda b=before: len(preview_changed) > b, timeout=30)
        shown_at = preview_changed[-1]
        wait(lambda s=shown_at: draws and draws[-1] > s, timeout=5)
        latencies.append(draws[-1] - t0)
        clicked_positions.append(points.data[-1].copy())
    latencies = np.array(latencies[3:]) * 1000  # drop warm-up clicks

    predictor = SamPredictor(sam)
    predictor.set_image(np.repeat(image[:, :, None], 3, axis=2))
    raw = []
    for position in clicked_positions:
        coords = np.array([[position[1], position[0]]])
        t0 = time.perf_counter()
        predictor.predict(point_coords=coords, point_labels=np.array([1]), multimask_output=True)
        raw.append(time.perf_counter() - t0)
    raw = np.array(raw[3:]) * 1000
    print(
        f"click → mask on screen: median {np.median(latencies):.0f} ms, p95 {np.percentile(latencies, 95):.0f} ms "
        f"({len(latencies)} clicks); raw SamPredictor.predict: median {np.median(raw):.0f} ms, "
        f"p95 {np.percentile(raw, 95):.0f} ms; ratio of medians {np.median(latencies) / np.median(raw):.2f}"
    )
    widget.close_session()
    viewer.close()


def _world_to_canvas_pixels(viewer, canvas, world):
    """Canvas pixel (x, y) of a 2D world point (row, col), from napari's camera."""
    center = np.asarray(_camera(viewer).center)[-2:]
    zoom = _camera(viewer).zoom
    width, height = canvas.native.width(), canvas.native.height()
    row, col = (float(v) for v in np.asarray(world, dtype=float).ravel()[-2:])
    x = width / 2 + (col - center[1]) * zoom
    y = height / 2 + (row - center[0]) * zoom
    return x, y


def _camera(viewer):
    """napari 0.9 moved the camera to ``viewer.scene.camera``; older versions have ``viewer.camera``."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


if __name__ == "__main__":
    main()
