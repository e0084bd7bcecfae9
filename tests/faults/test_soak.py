"""Soak: 500 prompt → commit cycles in one headless napari session with the tiny SAM.

Every commit must succeed (prompts go on free pixels and the candidate with free pixels is
chosen, so nothing is overwritten), every id must be unique and present at the end, the
objects table must hold exactly those ids, memory must level off and napari's undo history
must stay bounded. Run with ``-s`` to see the figures:

    QT_QPA_PLATFORM=xcb xvfb-run -a python -m pytest tests/faults/test_soak.py -s
"""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
from widgetkit import WAIT_MS, open_widget, points_layer, wait_embedded

from napari_promptseg._napari import objects
from napari_promptseg._qt.panels.autosave import AutosavePanel
from napari_promptseg.core.storage.autosave import load_autosave

CYCLES = 500
PLANES = 150  # identical planes: moving on is a cache hit, not a new embedding
PLANE = (128, 160)
RSS_GROWTH_LIMIT_MB = 300  # generous: what matters is that it levels off


def _plane_image() -> np.ndarray:
    rng = np.random.default_rng(11)
    rows, cols = np.mgrid[: PLANE[0], : PLANE[1]]
    image = 30 + 30 * rng.random(PLANE)
    for r, c, radius in [(30, 40, 18), (90, 110, 25), (40, 130, 12)]:
        image[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] += 150
    return image.astype(np.uint8)


@pytest.mark.slow
def test_500_prompt_commit_cycles(make_napari_viewer, qtbot, tiny_sam, autosave_dir):
    stack = np.broadcast_to(_plane_image(), (PLANES, *PLANE)).copy()
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="soak")
    viewer.dims.set_current_step(0, 0)
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    wait_embedded(qtbot, widget)
    session = widget.session
    encoder_calls = session.segmenter.encoder_calls
    rng = np.random.default_rng(0)
    process = psutil.Process()
    committed: list[int] = []
    rss: dict[int, float] = {}
    plane, misses, retries = 0, 0, 0
    started = time.perf_counter()

    while len(committed) < CYCLES:
        labels = session.labels_layer
        free = np.argwhere(labels.data[plane] == 0) if labels is not None else None
        if misses >= 2 or (free is not None and len(free) == 0):
            plane, misses = plane + 1, 0  # this plane is full enough: the next one
            assert plane < PLANES, f"ran out of planes after {len(committed)} commits"
            viewer.dims.set_current_step(0, plane)
            wait_embedded(qtbot, widget)
            continue
        if free is None:
            row, col = rng.integers(0, PLANE[0]), rng.integers(0, PLANE[1])
        else:
            row, col = free[rng.integers(len(free))]
        before = session.result
        points_layer(viewer).add(np.array([plane, row, col], dtype=float))
        qtbot.waitUntil(
            lambda before=before: session.result is not None and session.result is not before,
            timeout=WAIT_MS,
        )
        masks = session.result.masks
        taken = labels.data[plane] != 0 if labels is not None else np.zeros(PLANE, bool)
        gains = (masks & ~taken).sum(axis=(1, 2))
        if gains.max() == 0:  # every candidate lies on earlier objects: try elsewhere
            misses, retries = misses + 1, retries + 1
            session.clear()
            continue
        session.select_candidate(int(np.argmax(gains)))
        row_dict = session.commit()
        assert row_dict is not None, f"commit {len(committed) + 1} failed"
        committed.append(int(row_dict["id"]))
        misses = 0
        if len(committed) in (100, CYCLES):
            rss[len(committed)] = process.memory_info().rss / 2**20

    elapsed = time.perf_counter() - started
    labels = session.labels_layer
    present = set(np.unique(labels.data).tolist()) - {0}
    rows = objects.object_rows(labels)
    history = labels._undo_history
    panel = next(p for p in widget.panels if isinstance(p, AutosavePanel))
    qtbot.waitUntil(lambda: not panel.saver.dirty and not panel.saver.busy, timeout=WAIT_MS)
    saved, saved_rows = load_autosave(autosave_dir / "soak.autosave.tif")
    print(
        f"\nsoak: {len(committed)} commits on {plane + 1} planes in {elapsed:.1f} s "
        f"({1000 * elapsed / len(committed):.0f} ms per cycle, {retries} prompts retried); "
        f"RSS {rss[100]:.0f} MiB at commit 100, {rss[CYCLES]:.0f} MiB at commit {CYCLES} "
        f"(+{rss[CYCLES] - rss[100]:.0f} MiB); undo history {len(history)}/{history.maxlen}; "
        f"encoder runs {session.segmenter.encoder_calls - encoder_calls}"
    )
    assert len(set(committed)) == len(committed) == CYCLES
    assert committed == list(range(1, CYCLES + 1))
    assert present == set(committed)
    assert [int(r["id"]) for r in rows] == committed
    assert all(int((labels.data == r["id"]).sum()) == int(r["area"]) for r in rows[::25])
    assert history.maxlen is not None and len(history) <= history.maxlen
    assert rss[CYCLES] - rss[100] < RSS_GROWTH_LIMIT_MB
    assert session.segmenter.encoder_calls - encoder_calls == 0  # planes are identical
    np.testing.assert_array_equal(saved, labels.data)
    assert [int(r["id"]) for r in saved_rows] == committed
