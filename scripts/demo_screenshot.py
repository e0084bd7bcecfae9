"""The README's picture: the demo model's real masks in napari, docs/images/widget.png.

Opens napari at 1280 x 1000 px with the synthetic cells sample (what ``make run`` shows),
loads the shipped ``demo`` model (no download), runs *Segment everything* in AIS mode from
the Automatic tab, then clicks one cell so the live mask and its score show, and grabs the
window. Needs a display::

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/demo_screenshot.py

The user's folders are not used (as ``dock_screenshots.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from dock_screenshots import _FOLDERS, settle, wait_for


def shoot(out: Path, width: int, height: int) -> Path:
    import napari
    import numpy as np

    from napari_promptseg._napari import layers as prompt_layers
    from napari_promptseg._qt.panels.everything import EverythingPanel
    from napari_promptseg._qt.widget import PromptSegWidget
    from napari_promptseg._sample_data import make_sample_cells, sample_cells_centers

    viewer = napari.Viewer(title="napari-promptseg", show=True)
    viewer.window._qt_window.resize(width, height)
    for data, kwargs, _ in make_sample_cells():
        viewer.add_image(data, **kwargs)
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation", area="right")
    widget.select_model("demo")
    widget.session.load_model("demo", device="cpu")
    session = widget.session
    wait_for(lambda: session.embedding is not None, "the demo model and the embedding", 120)

    panel = next(p for p in widget.panels if isinstance(p, EverythingPanel))
    widget.tabs.show_section("Segment everything")
    panel.run_button.click()
    wait_for(lambda: not panel.running, "automatic segmentation", 120)
    settle(0.5)

    # one click on a cell: the live mask, its score and the alternatives show in the loop
    center = sample_cells_centers()[3]
    points = prompt_layers.find_layer(viewer, "points")
    before = session.result
    points.add(np.asarray(center, float))
    wait_for(lambda: session.result is not None and session.result is not before, "a mask")
    settle(0.5)
    path = out / "widget.png"
    viewer.screenshot(str(path), canvas_only=False)
    widget.close_session()
    viewer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder")
    parser.add_argument("--width", type=int, default=1280, help="window width, px")
    parser.add_argument("--height", type=int, default=1000, help="window height, px")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="promptseg-shots-"))
    for env, name in _FOLDERS:
        os.environ[env] = str(scratch / name)
    print(shoot(args.out, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
