"""Fault matrix, models in napari: every way loading a model can fail leaves the working
model, its embedding and the committed labels as they were; switching models while an
embedding runs ends with the new model's embedding."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
from faultkit import LabelsGuard, commit_one, register_served_model, wait_problem, watch_problems
from loopback import LoopbackServer
from widgetkit import WAIT_MS, open_widget, wait_embedded

from napari_promptseg._napari.slices import slice_rgb
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core import models as core_models
from napari_promptseg.testing import build_tiny_sam, make_slow, save_tiny_checkpoint


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_model(kind, tmp_path, monkeypatch):
    """(load_model kwargs, expected message substring, a server to stop or None)."""
    good = save_tiny_checkpoint(tmp_path / "tiny.pth")
    if kind == "unknown-name":
        return {"name": "vit_q"}, "unknown model 'vit_q'", None
    if kind == "wrong-type":
        return {"checkpoint": good, "model_type": "vit_b"}, "does not fit model type 'vit_b'", None
    if kind == "truncated":
        cut = tmp_path / "cut.pth"
        cut.write_bytes(good.read_bytes()[:4000])
        return {"checkpoint": cut}, "truncated or not a PyTorch checkpoint", None
    if kind == "pickle-runs-code":
        evil = tmp_path / "evil.pth"
        with open(evil, "wb") as stream:
            pickle.dump({"x": _RunsCode(tmp_path / "ran")}, stream, protocol=2)
        return {"checkpoint": evil}, "refused as unsafe", None
    if kind == "missing-file":
        return {"checkpoint": tmp_path / "nope.pth"}, "checkpoint file not found", None
    root = tmp_path / "www"
    root.mkdir()
    served = save_tiny_checkpoint(root / "tiny.pth")
    server = LoopbackServer(root)
    sha = hashlib.sha256(served.read_bytes()).hexdigest()
    if kind == "sha256-mismatch":
        register_served_model(monkeypatch, server, served, sha256="0" * 64)
        return {"name": "tiny_served"}, "expected sha256:" + "0" * 64, server
    register_served_model(monkeypatch, server, served, sha256=sha)
    if kind == "offline-no-cache":
        monkeypatch.setenv("NAPARI_PROMPTSEG_OFFLINE", "1")
        return {"name": "tiny_served"}, "offline mode is on", server
    server.stop()  # "no-network": nothing answers any more
    return {"name": "tiny_served"}, "downloading it failed", server


@pytest.mark.parametrize(
    "kind",
    [
        "unknown-name",
        "wrong-type",
        "truncated",
        "pickle-runs-code",
        "missing-file",
        "sha256-mismatch",
        "offline-no-cache",
        "no-network",
    ],
)
def test_failed_model_load_keeps_everything(viewer, qtbot, tiny_sam, tmp_path, monkeypatch, kind):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)
    embedding = session.embedding
    problems = watch_problems(widget)
    kwargs, needle, server = _bad_model(kind, tmp_path, monkeypatch)
    try:
        session.load_model(**kwargs)
        message = wait_problem(qtbot, problems, "cannot load the model")
    finally:
        if server is not None:
            server.stop()
    assert needle in message
    assert session.segmenter.name == "tiny" and session.embedding is embedding
    assert not (tmp_path / "ran").exists()
    assert not core_models.cache_dir().is_dir() or not any(
        p.suffix == ".pth" for p in core_models.cache_dir().iterdir()
    )
    guard.assert_unchanged()
    commit_one(qtbot, widget, (200, 350))  # the working model still works


def test_switching_model_mid_embedding(viewer, qtbot, tmp_path):
    slow = make_slow(build_tiny_sam(seed=0), seconds_per_block=0.5)
    widget = open_widget(viewer, qtbot, slow)
    session = widget.session
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)
    problems = watch_problems(widget)

    session.set_segmenter(PromptSegmenter(make_slow(build_tiny_sam(seed=1), 0.5), "tiny-b"))
    qtbot.wait(300)  # mid-embedding for tiny-b...
    assert session.embedding is None
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny-c.pth", seed=2)
    session.load_model(checkpoint=checkpoint)  # ...and another model is on its way
    qtbot.waitUntil(
        lambda: session.segmenter.model_id.startswith("vit_tiny@file:"), timeout=WAIT_MS
    )
    wait_embedded(qtbot, widget)
    qtbot.wait(1500)  # the cancelled tiny-b worker finishes and must be dropped
    rgb = slice_rgb(session.image_layer, session.current_slice)
    assert session.embedding.key == session.segmenter.key_for(rgb)
    assert session.embedding.key.model_id.startswith("vit_tiny@file:")
    assert problems == []
    guard.assert_unchanged()
    row = commit_one(qtbot, widget, (200, 350))
    assert row["model"] == "tiny-c.pth"
    assert np.count_nonzero(session.labels_layer.data == row["id"]) == row["area"]
