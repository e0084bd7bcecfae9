"""The "Learn classes" section at work, for the docs: docs/images/learn_classes.png.

The two-class synthetic cells (``core.workflows.classify.synthetic``) with their labels,
five objects of each class given their class as a user does (Shift+click, then key 1 or 2),
*Train & predict*, objects coloured by class, the review list filled. The model is the tiny
test model (random weights, no download): the classes come from shape and intensity as
much as from its embedding. Needs a display::

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/classes_screenshot.py
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

    from napari_promptseg._qt.widget import PromptSegWidget
    from napari_promptseg.core import PromptSegmenter
    from napari_promptseg.core.workflows.classify.synthetic import two_class_cells
    from napari_promptseg.testing import build_tiny_sam

    cells = two_class_cells(shape=(300, 417), per_class=12, seed=3)
    viewer = napari.Viewer(title="napari-promptseg", show=True)
    viewer.window._qt_window.resize(width, height)
    viewer.add_image(cells.image, name="cells")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation", area="right")
    widget.session.set_segmenter(PromptSegmenter(build_tiny_sam(seed=0), "tiny-test", name="tiny"))
    wait_for(lambda: widget.session.embedding is not None, "the image embedding")
    layer = viewer.add_labels(cells.labels, name="cells labels")
    panels = {type(p).__name__: p for p in widget.panels}
    classes, learn = panels["ClassesPanel"], panels["ClassifierPanel"]
    classes.add_class("round", "#ffb000")
    classes.add_class("long", "#21a0ff")
    editor = widget.session.editing
    for name in ("round", "long"):
        for object_id in [i for i, c in cells.classes.items() if c == name][:5]:
            editor.start(layer, object_id)
            classes.choose(name)
    widget.session.clear()  # the last edit's mask and prompts: not part of the picture
    classes.colour_check.setChecked(True)
    learn.train()
    wait_for(lambda: not learn.running and learn.predictions, "the classifier")
    widget.tabs.show_group("Annotate")
    for title, section in widget.tabs.sections.items():
        if title in ("Object classes", "Learn classes"):
            section.expand(animate=False)
        elif widget.tabs.group_of[title] == "Annotate":
            section.collapse(animate=False)
    total = sum(widget.splitter.sizes())
    widget.splitter.setSizes([0, total])
    viewer.layers.selection.active = layer
    viewer.reset_view()
    settle(0.5)
    path = out / "learn_classes.png"
    viewer.screenshot(str(path), canvas_only=False)
    widget.close_session()
    viewer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="promptseg-shots-"))
    for env, name in _FOLDERS:
        os.environ[env] = str(scratch / name)
    print(shoot(args.out, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
