"""A session freezes the long-lived objects once its first embedding is ready (no full GC
walking napari, Qt and torch in the middle of a click), and only once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import gc, os, time
    import numpy as np
    import napari
    from napari_promptseg._qt.widget import PromptSegWidget
    from napari_promptseg.core import PromptSegmenter
    from napari_promptseg.testing import build_tiny_sam
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False)
    viewer.add_image(np.random.default_rng(0).random((37, 53)))
    widget = PromptSegWidget(viewer)
    assert gc.get_freeze_count() == 0
    widget.session.set_segmenter(PromptSegmenter(build_tiny_sam(seed=0), "tiny", name="tiny"))
    app = QApplication.instance()

    def wait_for_embedding():
        deadline = time.monotonic() + 120
        while widget.session.embedding is None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        assert widget.session.embedding is not None, "no embedding"

    wait_for_embedding()
    frozen = gc.get_freeze_count()
    print("frozen", frozen)
    assert frozen > 100_000, frozen  # napari, Qt wrappers, torch: the bulk of the objects
    widget.session.refresh()  # a second embedding freezes nothing more
    wait_for_embedding()
    assert gc.get_freeze_count() == frozen
    gc.collect()  # full collections still run, over what was made since
    print("ok")
    os._exit(0)
    """
)


@pytest.mark.slow
def test_first_embedding_freezes_long_lived_objects_once():
    env = {**os.environ, "NAPARI_PROMPTSEG_GC_FREEZE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout


def test_switched_off_by_the_environment(monkeypatch):
    from napari_promptseg._qt import long_lived

    monkeypatch.setenv(long_lived.FREEZE_ENV, "0")
    monkeypatch.setattr(long_lived, "_frozen", False)
    assert long_lived.freeze_long_lived_objects() is False
