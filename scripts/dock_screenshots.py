"""Screenshots of the dock, one per task group, for the docs: docs/images/dock_<group>.png.

Opens napari at 1280 px wide (the narrowest window the dock is made for) with the synthetic
cells sample and the tiny test model (random weights: no download; its masks are not
meaningful, the dock around them is), places a prompt and commits two objects. Then it moves
the split up to give the tabs the dock's height, shows each group's tab with all its sections
open and grabs the tabs. ``--window`` first writes the whole window, as the dock opens, as
docs/images/widget.png (the README's picture).

It needs a display (napari draws with OpenGL)::

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/dock_screenshots.py
    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/dock_screenshots.py \\
        --window --out docs/images

The user's folders are neither used nor changed (the saved dock layout, autosaves, the
model cache's speed records): they all point into a throw-away folder. Every grab waits for Qt's posted events first: napari's status bar lays its labels
out in a posted event, and a grab taken before it shows the layer name drawn over the
coordinates.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

GROUP_SETTLE_S = 0.4
_FOLDERS = (
    ("NAPARI_PROMPTSEG_CONFIG", "config"),
    ("NAPARI_PROMPTSEG_CACHE", "models"),
    ("NAPARI_PROMPTSEG_STORE", "embeddings"),
    ("NAPARI_PROMPTSEG_AUTOSAVE_DIR", "autosave"),
    ("NAPARI_PROMPTSEG_MY_MODELS", "my_models"),
)  # the sections' resize and the layout requests are posted events


def slug(group: str) -> str:
    """``"Volume & time"`` -> ``"volume_time"`` (the image's file name part)."""
    return re.sub(r"[^a-z0-9]+", "_", group.lower()).strip("_")


def settle(seconds: float = 0.2) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def wait_for(condition, what: str, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        settle(0.05)


def open_dock(width: int, height: int):
    import napari

    from napari_promptseg._qt.widget import PromptSegWidget
    from napari_promptseg._sample_data import make_sample_cells
    from napari_promptseg.core import PromptSegmenter
    from napari_promptseg.testing import build_tiny_sam

    viewer = napari.Viewer(title="napari-promptseg", show=True)
    viewer.window._qt_window.resize(width, height)
    for data, kwargs, _ in make_sample_cells():
        viewer.add_image(data, **kwargs)
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation", area="right")
    segmenter = PromptSegmenter(build_tiny_sam(seed=0), "tiny-test", name="tiny test model")
    widget.session.set_segmenter(segmenter)
    wait_for(lambda: widget.session.embedding is not None, "the image embedding")
    return viewer, widget


def prompt_and_commit(viewer, widget) -> None:
    """Two committed objects and a live mask: the loop's sections as a user sees them."""
    import numpy as np

    from napari_promptseg._napari import layers as prompt_layers

    session = widget.session
    image = session.image_layer.data
    rows, cols = image.shape[:2]
    points = prompt_layers.find_layer(viewer, "points")
    for index, (r, c) in enumerate([(0.3, 0.3), (0.6, 0.55), (0.45, 0.75)]):
        before = session.result
        points.add(np.array([r * rows, c * cols]))
        wait_for(lambda b=before: session.result is not None and session.result is not b, "a mask")
        if index < 2:
            session.commit()
    settle()


def shoot(out: Path, width: int, height: int, window: bool) -> list[Path]:
    viewer, widget = open_dock(width, height)
    prompt_and_commit(viewer, widget)
    tabs = widget.tabs
    written = []
    if window:
        tabs.show_group(next(iter(tabs.pages)))
        settle(GROUP_SETTLE_S)
        path = out / "widget.png"
        viewer.screenshot(str(path), canvas_only=False)
        written.append(path)
    # the tabs get the dock's height (the user drags the split up): a group's sections show
    total = sum(widget.splitter.sizes())
    widget.splitter.setSizes([0, total])  # the loop keeps its minimum height
    for group, page in tabs.pages.items():
        tabs.show_group(group)
        for title, section in tabs.sections.items():
            if tabs.group_of[title] == group:
                section.expand(animate=False)
        page.verticalScrollBar().setValue(0)
        settle(GROUP_SETTLE_S)
        path = out / f"dock_{slug(group)}.png"
        tabs.grab().save(str(path))
        written.append(path)
    widget.close_session()
    viewer.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder")
    parser.add_argument("--width", type=int, default=1280, help="window width, px")
    parser.add_argument("--height", type=int, default=1000, help="window height, px")
    parser.add_argument("--window", action="store_true", help="also the window: widget.png")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"--out {args.out} is not a folder")
    # the user's folders stay as they are (the saved dock layout, autosaves, speed records)
    # and do not change the pictures
    scratch = Path(tempfile.mkdtemp(prefix="promptseg-shots-"))
    for env, name in _FOLDERS:
        os.environ[env] = str(scratch / name)
    for path in shoot(args.out, args.width, args.height, args.window):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
