"""Helpers for the fault matrix: images, a widget with the tiny SAM, a loopback server.

Named ``faultkit`` (not ``helpers``) so it never shadows ``tests/napari/helpers.py`` when
both folders run in one pytest session.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from pathlib import Path

import numpy as np

WAIT_MS = 30_000


def sample_image(shape=(300, 517), seed=5) -> np.ndarray:
    """A non-square uint8 image with three bright discs."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = 40 + 20 * rng.random(shape)
    for r, c, radius in [(80, 120, 40), (200, 350, 60), (150, 450, 30)]:
        image[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] += 150
    return image.astype(np.uint8)


def open_widget(
    viewer, qtbot, sam, *, image=None, add_image=True, model_id="tiny-test", segmenter=None, **kw
):
    """The dock widget on ``viewer`` using ``sam`` (or ``segmenter``); waits for the embedding
    if an image is added."""
    from napari_promptseg._napari.widget import PromptSegWidget
    from napari_promptseg.core import PromptSegmenter

    if add_image:
        viewer.add_image(sample_image() if image is None else image, name="image", **kw)
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    widget.session.set_segmenter(segmenter or PromptSegmenter(sam, model_id, name="tiny"))
    if add_image:
        wait_embedded(qtbot, widget)
    return widget


def wait_embedded(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.session.embedding is not None, timeout=WAIT_MS)


def points_layer(viewer):
    from napari_promptseg._napari import layers as prompt_layers

    return prompt_layers.find_layer(viewer, "points")


def add_point_and_wait(qtbot, widget, point, label="positive"):
    """Add a point (data coordinates, any ndim) and wait for a new mask."""
    session = widget.session
    layer = points_layer(widget.viewer)
    before = session.result
    defaults = layer.feature_defaults
    defaults["label"] = label
    layer.feature_defaults = defaults
    layer.add(np.asarray(point, dtype=float))
    qtbot.waitUntil(
        lambda: session.result is not None and session.result is not before, timeout=WAIT_MS
    )
    return session.result


def commit_one(qtbot, widget, point=(80, 120)) -> dict:
    """Place a point, wait for its mask, commit it; returns the objects row."""
    add_point_and_wait(qtbot, widget, point)
    row = widget.session.commit()
    assert row is not None, "the set-up commit failed"
    return row


def watch_problems(widget) -> list[str]:
    """Messages the session reports as problems (napari shows them as warnings)."""
    problems: list[str] = []
    widget.session.problem.connect(problems.append)
    return problems


def wait_problem(qtbot, problems, needle: str) -> str:
    """Wait until a reported problem contains ``needle``; returns it."""
    qtbot.waitUntil(lambda: any(needle in p for p in problems), timeout=WAIT_MS)
    return next(p for p in problems if needle in p)


class LabelsGuard:
    """Remembers a labels layer's pixels and objects table, to assert they did not change."""

    def __init__(self, layer) -> None:
        from napari_promptseg._napari import objects

        self.layer = layer
        self.data = np.array(layer.data, copy=True)
        self.rows = objects.object_rows(layer)

    def assert_unchanged(self) -> None:
        from napari_promptseg._napari import objects

        np.testing.assert_array_equal(self.layer.data, self.data)
        assert objects.object_rows(self.layer) == self.rows


class LoopbackServer:
    """Serve files from ``root`` on 127.0.0.1 (the tests' only network)."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.httpd.shutdown()
            self.httpd.server_close()


def register_served_model(monkeypatch, server: LoopbackServer, path: Path, *, sha256: str):
    """Register a tiny test model served by ``server`` (in a private copy of the registry)."""
    from napari_promptseg.core import models
    from napari_promptseg.testing import TINY_MODEL_TYPE

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    return models.register_model(
        models.ModelSpec(
            name="tiny_served",
            model_type=TINY_MODEL_TYPE,
            url=f"{server.url}/{path.name}",
            hash=f"sha256:{sha256}",
            filename="tiny_served.pth",
            size_bytes=None,
            description="tiny test model on a loopback server",
            source="tests",
        )
    )
