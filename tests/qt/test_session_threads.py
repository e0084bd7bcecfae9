"""The embedding runs off the GUI thread, and results for something no longer shown are dropped."""

from __future__ import annotations

import time

import numpy as np
import pytest
from qtpy.QtCore import QTimer
from widgetkit import WAIT_MS, open_widget, points_layer, sample_image, wait_embedded

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.testing import build_tiny_sam, make_slow


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=True)


def test_gui_keeps_running_while_the_embedding_computes(viewer, qtbot):
    from napari_promptseg._qt.widget import PromptSegWidget

    slow = make_slow(build_tiny_sam(), seconds_per_block=1.0)  # about 2 s of "compute"
    viewer.add_image(sample_image(), name="image")
    widget = PromptSegWidget(viewer)  # built before the clock starts: we time the embedding
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    qtbot.wait(200)
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    started = time.perf_counter()
    widget.session.set_segmenter(PromptSegmenter(slow, "slow", name="slow"))
    assert widget.session.embedding is None  # set_segmenter returned before the embedding
    wait_embedded(qtbot, widget)
    timer.stop()
    elapsed = time.perf_counter() - started
    assert elapsed > 1.5, "the slowed encoder should take about 2 s"
    assert len(gaps) > 50, "the timer should have fired all along"
    assert max(gaps) < 1.0, f"GUI stalled for {max(gaps):.2f} s"


def test_embedding_for_an_image_no_longer_selected_is_dropped(viewer, qtbot):
    slow = make_slow(build_tiny_sam(), seconds_per_block=0.5)
    first = viewer.add_image(sample_image(), name="first")
    second = viewer.add_image(sample_image()[::-1].copy(), name="second")
    widget = open_widget(viewer, qtbot, slow, add_image=False)
    session = widget.session
    widget.image_combo.setCurrentIndex(widget.image_combo.findText("first"))
    assert session.image_layer is first
    # switch while "first" is still embedding
    widget.image_combo.setCurrentIndex(widget.image_combo.findText("second"))
    assert session.image_layer is second
    wait_embedded(qtbot, widget)
    qtbot.wait(1500)  # let any late worker for "first" finish
    assert session.embedding is not None
    expected_key = session.segmenter.key_for(np.repeat(sample_image()[::-1, :, None], 3, axis=2))
    assert session.embedding.key == expected_key


def test_model_switch_reembeds_and_drops_old_results(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    old_key = session.embedding.key
    points_layer(viewer).add(np.array([80.0, 120.0]))
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    other = build_tiny_sam(seed=1)
    session.set_segmenter(PromptSegmenter(other, "tiny-other", name="other"))
    assert session.result is None  # the mask of the old model is gone at once
    wait_embedded(qtbot, widget)
    assert session.embedding.key != old_key
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    assert session.result.key.model_id == "tiny-other"


def test_rapid_prompt_changes_end_with_the_latest(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    layer = points_layer(viewer)
    for row in range(40, 240, 10):  # 20 changes faster than decoding
        layer.add(np.array([float(row), 200.0]))
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    qtbot.wait(500)
    engine = PromptSegmenter(tiny_sam, "x")
    from napari_promptseg.core import Prompts, to_rgb_uint8

    expected = engine.segment(
        to_rgb_uint8(sample_image()),
        Prompts.from_points([[float(r), 200.0] for r in range(40, 240, 10)]),
    )
    np.testing.assert_array_equal(session.result.masks, expected.masks)


class _SlowDecodes(PromptSegmenter):
    """Each decode takes 0.4 s: the warm-up after the embedding lasts a few seconds."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.decodes: list[float] = []

    def predict(self, embedding, prompts, multimask=None):
        self.decodes.append(time.perf_counter())
        time.sleep(0.4)
        return super().predict(embedding, prompts, multimask=multimask)


def test_closing_stops_the_decoder_warm_up_and_waits_for_it(viewer, qtbot, tiny_sam):
    from napari_promptseg._qt.widget import PromptSegWidget

    viewer.add_image(sample_image(), name="image")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    segmenter = _SlowDecodes(tiny_sam, "slow-decodes", name="slow decodes")
    widget.session.set_segmenter(segmenter)
    qtbot.waitUntil(lambda: len(segmenter.decodes) >= 1, timeout=WAIT_MS)  # warm-up runs
    started = time.perf_counter()
    widget.session.close()
    closed = time.perf_counter()
    assert closed - started < 2.0, "close waits for one decode, not the whole warm-up"
    count = len(segmenter.decodes)
    time.sleep(1.0)
    assert len(segmenter.decodes) == count, "no decode may start after the session closed"
    assert all(t < closed for t in segmenter.decodes)


def test_closing_napari_s_window_stops_the_warm_up_without_closing_the_widget(
    make_napari_viewer, qtbot, tiny_sam
):
    """napari closes its window without a closeEvent for docked widgets: the session's
    background work stops when the window is destroyed."""
    from napari_promptseg._qt.widget import PromptSegWidget

    viewer = make_napari_viewer(show=True)
    viewer.add_image(sample_image(), name="image")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    qtbot.waitUntil(lambda: widget._watching_window, timeout=WAIT_MS)
    segmenter = _SlowDecodes(tiny_sam, "slow-decodes", name="slow decodes")
    widget.session.set_segmenter(segmenter)
    qtbot.waitUntil(lambda: len(segmenter.decodes) >= 1, timeout=WAIT_MS)  # warm-up runs
    embedder = widget.session.embedder
    widget.window().destroyed.emit()  # what Qt emits when napari's closed window is freed
    assert embedder._stop.is_set()
    stopped = time.perf_counter()
    count = len(segmenter.decodes)
    time.sleep(1.0)
    assert len(segmenter.decodes) == count, "no decode may start once the window is gone"
    assert all(t < stopped for t in segmenter.decodes)
