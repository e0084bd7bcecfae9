"""Fault matrix, prompts in napari: gone slices, thousands of points, degenerate boxes,
one-pixel scribbles. A point outside the image is in tests/qt/test_bad_input.py."""

from __future__ import annotations

import time

import numpy as np
import pytest
from faultkit import LabelsGuard, commit_one, watch_problems
from widgetkit import (
    WAIT_MS,
    add_point_and_wait,
    open_widget,
    points_layer,
    sample_image,
    wait_embedded,
)

from napari_promptseg._napari import layers as prompt_layers
from napari_promptseg.core import Prompts


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _stack(depth):
    return np.stack([sample_image(seed=z) for z in range(depth)])


def test_prompt_on_a_slice_that_no_longer_exists(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam, image=_stack(6))
    session = widget.session
    problems = watch_problems(widget)
    viewer.dims.set_current_step(0, 1)
    wait_embedded(qtbot, widget)
    commit_one(qtbot, widget, (1, 80, 120))
    guard = LabelsGuard(session.labels_layer)
    viewer.dims.set_current_step(0, 5)
    wait_embedded(qtbot, widget)
    add_point_and_wait(qtbot, widget, (5, 200, 350))  # a mask on plane 5, not committed

    viewer.layers["image"].data = _stack(3)  # plane 5 is gone
    # the labels and the point keep the viewer's z range at 6: the view stays on plane 5
    qtbot.waitUntil(
        lambda: "has no data at the current position of axis 0" in widget.status_label.text(),
        timeout=WAIT_MS,
    )
    assert session.embedding is None and session.result is None
    assert session.commit() is None
    assert "nothing to commit" in problems[-1]
    guard.assert_unchanged()

    viewer.dims.set_current_step(0, 2)
    wait_embedded(qtbot, widget)
    qtbot.wait(300)
    assert session.result is None  # the point on plane 5 prompts nothing on plane 2
    # a prompt on an existing plane cannot go into labels of the old depth either
    add_point_and_wait(qtbot, widget, (2, 80, 120))
    assert session.commit() is None
    assert "has shape (6, 300, 517)" in problems[-1]
    guard.assert_unchanged()


def test_uncommitted_point_left_on_another_plane(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam, image=_stack(3))
    session = widget.session
    viewer.dims.set_current_step(0, 0)
    wait_embedded(qtbot, widget)
    add_point_and_wait(qtbot, widget, (0, 80, 120))  # not committed
    viewer.dims.set_current_step(0, 1)
    wait_embedded(qtbot, widget)
    qtbot.wait(300)
    assert session.result is None
    add_point_and_wait(qtbot, widget, (1, 200, 350))
    expected = session.segmenter.predict(session.embedding, Prompts.from_points([[200, 350]]))
    np.testing.assert_array_equal(session.result.masks, expected.masks)


def test_position_outside_a_shorter_stack(viewer, qtbot, tiny_sam):
    viewer.add_image(_stack(6), name="deep")
    widget = open_widget(viewer, qtbot, tiny_sam, image=_stack(3))  # "image", 3 planes
    widget.image_combo.setCurrentIndex(widget.image_combo.findText("image"))
    session = widget.session
    assert session.image_layer.name == "image"
    viewer.dims.set_current_step(0, 1)
    wait_embedded(qtbot, widget)
    commit_one(qtbot, widget, (1, 80, 120))
    guard = LabelsGuard(session.labels_layer)
    viewer.dims.set_current_step(0, 5)  # exists in "deep" only
    qtbot.waitUntil(
        lambda: "no data at the current position of axis 0" in widget.status_label.text(),
        timeout=WAIT_MS,
    )
    assert session.embedding is None and session.current_slice is None
    points_layer(viewer).add(np.array([5.0, 80.0, 120.0]))
    qtbot.wait(300)
    assert session.result is None
    assert session.commit() is None
    guard.assert_unchanged()


def test_thousands_of_points_at_once(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)
    rng = np.random.default_rng(1)
    points = np.stack([rng.uniform(0, 299, 2000), rng.uniform(0, 516, 2000)], axis=1)
    points_layer(viewer).add(points)  # one event, one decode request
    qtbot.waitUntil(
        lambda: "too many prompt points (2000)" in widget.status_label.text(), timeout=30_000
    )
    assert session.result is None
    guard.assert_unchanged()
    session.clear()
    assert len(points_layer(viewer).data) == 0
    # within the limit, it decodes what the engine gives
    started = time.perf_counter()
    points_layer(viewer).add(points[:256])
    qtbot.waitUntil(lambda: session.result is not None, timeout=120_000)
    print(f"\n256 points decoded in {time.perf_counter() - started:.1f} s (tiny SAM)")
    expected = session.segmenter.predict(session.embedding, Prompts.from_points(points[:256]))
    np.testing.assert_array_equal(session.result.masks, expected.masks)
    guard.assert_unchanged()


@pytest.mark.parametrize(
    "box",
    [(100, 50, 100, 200), (10, 516.2, 90, 560)],
    ids=["zero-height", "a-sliver-inside-the-right-edge"],
)
def test_degenerate_box(viewer, qtbot, tiny_sam, box):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)
    boxes = prompt_layers.find_layer(viewer, "boxes")
    r0, c0, r1, c1 = box
    vertices = np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]], dtype=float)
    boxes.add_rectangles(vertices)
    qtbot.waitUntil(lambda: "prompt problem" in widget.status_label.text(), timeout=WAIT_MS)
    assert "zero area" in widget.status_label.text()
    assert session.result is None and session.commit() is None
    guard.assert_unchanged()


def test_one_pixel_scribble(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    scribbles = prompt_layers.find_layer(viewer, "scribbles")
    scribbles.add_paths(np.array([[150.0, 250.0], [150.0, 250.0]]))
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    expected = session.segmenter.predict(session.embedding, Prompts.from_points([[150, 250]]))
    np.testing.assert_array_equal(session.result.masks, expected.masks)
    row = session.commit()
    assert row is not None and row["prompts"] == "1 scribble+"
