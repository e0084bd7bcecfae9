"""Screenshot of the widget at work with the shipped ``demo`` model (the README's image).

Opens napari with the synthetic sample image, loads ``demo`` (no download), commits a few
cells with one click each, leaves one more click's live mask on screen, and saves the
window (canvas and dock) as a PNG. Needs a display; on a server:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_demo.py \
        docs/images/widget.png
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def wait_until(condition, timeout: float = 60.0) -> None:
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the widget did not get there in time")
        QApplication.processEvents()
        time.sleep(0.02)


def click(widget, point) -> None:
    from napari_promptseg._napari import layers as prompt_layers

    session = widget.session
    layer = prompt_layers.find_layer(widget.viewer, "points")
    before = session.result
    layer.add(np.asarray(point, dtype=float))
    wait_until(lambda: session.result is not None and session.result is not before)


def main(out: Path, committed: int = 6) -> int:
    import napari

    from napari_promptseg._qt.widget import PromptSegWidget
    from napari_promptseg._sample_data import sample_cells_centers, sample_cells_image

    viewer = napari.Viewer(title="napari-promptseg", show=True)
    viewer.window._qt_window.resize(1500, 900)
    viewer.add_image(sample_cells_image(), name="sample cells")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation", area="right")
    widget.select_model("demo")
    widget.session.load_model("demo")
    wait_until(lambda: widget.session.embedding is not None, timeout=120)
    centers = sample_cells_centers()
    for center in centers[:committed]:
        click(widget, center)
        widget.session.commit()
    click(widget, centers[committed])  # the live mask of the cell being prompted
    from qtpy.QtWidgets import QApplication

    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(out), canvas_only=False)
    print(f"wrote {out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images/widget.png")))
