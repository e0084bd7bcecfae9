"""The fault matrix's own helpers: a committed object, reported problems, a labels guard,
a model served on loopback. The widget set-up itself is in ``tests/widgetkit.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from loopback import LoopbackServer
from registrykit import private_registry
from widgetkit import WAIT_MS, add_point_and_wait


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


def register_served_model(monkeypatch, server: LoopbackServer, path: Path, *, sha256: str):
    """Register a tiny test model served by ``server`` (in a private copy of the registry)."""
    from napari_promptseg.core import models
    from napari_promptseg.testing import TINY_MODEL_TYPE

    private_registry(monkeypatch)
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
