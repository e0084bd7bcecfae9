"""The real order of a napari session: the window exists first, then the plugin is opened.

Mesa's OpenGL loads libLLVM with the canvas; importing torch's triton afterwards used to
crash the whole process (segmentation fault). The other GUI tests import torch before any
viewer, so this runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    import napari
    from qtpy.QtWidgets import QApplication

    assert "torch" not in sys.modules
    viewer = napari.Viewer(show=True)
    viewer.add_image(__import__("numpy").zeros((60, 80), "uint8"), name="image")
    QApplication.processEvents()
    _, widget = viewer.window.add_plugin_dock_widget("napari-promptseg", "Prompt segmentation")
    from napari_promptseg.core import PromptSegmenter
    from napari_promptseg.testing import build_tiny_sam

    widget.session.set_segmenter(PromptSegmenter(build_tiny_sam(), "tiny"))
    import time
    deadline = time.time() + 60
    while widget.session.embedding is None and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    assert widget.session.embedding is not None
    print("embedded after the window existed")
    widget.close_session()
    viewer.close()
    """
)


def test_plugin_opened_after_the_window_does_not_crash():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "embedded after the window existed" in done.stdout
