"""The dock widget driven as a user would: prompts → mask + confidence → commit → undo."""

from __future__ import annotations

import numpy as np
import pytest
from widgetkit import (
    WAIT_MS,
    add_point_and_wait,
    open_widget,
    points_layer,
    sample_image,
    wait_embedded,
)

from napari_promptseg._napari import layers as prompt_layers
from napari_promptseg.core import Prompts, PromptSegmenter, to_rgb_uint8


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_widget_opens_from_the_manifest(viewer):
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-promptseg", "Prompt segmentation")
    assert widget.__class__.__name__ == "PromptSegWidget"
    # napari hands plugins a proxy of the viewer: check the link by what the widget sees
    viewer.add_image(sample_image(), name="cells")
    assert widget.image_combo.currentText() == "cells"


def test_point_gives_preview_and_score_equal_to_engine(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam, scale=(2.0, 0.5), translate=(10, -3))
    result = add_point_and_wait(qtbot, widget, (120.0, 200.0))
    preview = prompt_layers.find_layer(viewer, "preview")
    assert preview.data.any()
    np.testing.assert_array_equal(preview.data.astype(bool), result.masks[result.best])
    # the same mask the engine gives for that (row, col) on the raw image: coordinates survive
    # the layer's scale and translate
    expected = PromptSegmenter(tiny_sam, "x").segment(
        to_rgb_uint8(sample_image()), Prompts.from_points([[120, 200]])
    )
    np.testing.assert_array_equal(result.masks, expected.masks)
    np.testing.assert_array_equal(result.iou, expected.iou)
    assert f"predicted IoU {result.iou[result.best]:.3f}" in widget.score_label.text()
    assert len(result.masks) == 3  # a lone point is ambiguous: three candidates shown
    assert all(button.isEnabled() for button in widget.candidate_buttons)
    assert "★" in widget.candidate_buttons[result.best].text()


def test_commit_adds_object_with_features_and_undo_restores(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    result = add_point_and_wait(qtbot, widget, (80, 120))
    widget.commit_button.click()
    labels = session.labels_layer
    assert labels is not None and labels.data.shape == (300, 517)
    assert set(np.unique(labels.data)) == {0, 1}
    np.testing.assert_array_equal(labels.data == 1, result.masks[result.best])
    row = labels.features.iloc[0]
    assert row["index"] == 1 and row["id"] == 1
    assert row["predicted_iou"] == pytest.approx(float(result.iou[result.best]), abs=1e-6)
    assert row["area"] == int(result.masks[result.best].sum())
    assert row["prompts"] == "1+"
    # prompts and preview are cleared after a commit
    assert len(points_layer(viewer).data) == 0
    assert session.result is None
    assert not prompt_layers.find_layer(viewer, "preview").data.any()

    widget.undo_button.click()
    assert not labels.data.any()
    assert len(labels.features) == 0


def test_second_commit_never_changes_the_first(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    add_point_and_wait(qtbot, widget, (80, 120))
    session.commit()
    labels = session.labels_layer
    first = labels.data == 1
    result = add_point_and_wait(qtbot, widget, (90, 130))  # overlaps the first object
    assert (result.mask & first).any(), "test needs overlapping masks"
    session.commit()
    np.testing.assert_array_equal(labels.data == 1, first)
    assert ((labels.data == 2) == (result.mask & ~first)).all()
    # one undo removes exactly the second object
    session.undo()
    np.testing.assert_array_equal(labels.data == 1, first)
    assert not (labels.data == 2).any()
    assert list(labels.features["id"]) == [1]


def test_overwrite_replaces_only_when_asked(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    add_point_and_wait(qtbot, widget, (80, 120))
    session.commit()
    labels = session.labels_layer
    result = add_point_and_wait(qtbot, widget, (90, 130))
    widget.overwrite_check.setChecked(True)
    session.commit()
    np.testing.assert_array_equal(labels.data == 2, result.mask)


def test_box_scribble_and_negative_point(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    engine = PromptSegmenter(tiny_sam, "x")
    rgb = to_rgb_uint8(sample_image())

    boxes = prompt_layers.find_layer(viewer, "boxes")
    boxes.add_rectangles(np.array([[40, 60], [40, 200], [150, 200], [150, 60]], dtype=float))
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    expected = engine.segment(rgb, Prompts(box=[40, 60, 150, 200]))
    np.testing.assert_array_equal(session.result.masks, expected.masks)
    assert len(session.result.masks) == 1

    add_point_and_wait(qtbot, widget, (100, 100), label="negative")
    expected = engine.segment(rgb, Prompts(points=[[100, 100]], labels=[0], box=[40, 60, 150, 200]))
    np.testing.assert_array_equal(session.result.masks, expected.masks)
    assert prompt_layers.read_prompts(viewer, session.current_slice).labels.tolist() == [0]

    session.clear()
    assert session.result is None and len(boxes.data) == 0 and len(points_layer(viewer).data) == 0

    scribbles = prompt_layers.find_layer(viewer, "scribbles")
    stroke = np.array([[200, 300], [210, 330], [220, 360]], dtype=float)
    scribbles.add_paths(stroke)
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    from napari_promptseg.core import Scribble

    expected = engine.segment(rgb, Prompts(scribbles=(Scribble(stroke),)))
    np.testing.assert_array_equal(session.result.masks, expected.masks)


def test_candidate_switching_changes_preview_and_commit(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    result = add_point_and_wait(qtbot, widget, (200, 350))
    other = (result.best + 1) % 3
    widget.candidate_buttons[other].click()
    assert session.candidate == other
    preview = prompt_layers.find_layer(viewer, "preview")
    np.testing.assert_array_equal(preview.data.astype(bool), result.masks[other])
    assert f"{result.iou[other]:.3f}" in widget.score_label.text()
    session.next_candidate()
    assert session.candidate == (other + 1) % 3
    session.select_candidate(other)
    session.commit()
    row = session.labels_layer.features.iloc[0]
    assert row["candidate"] == other
    assert row["predicted_iou"] == pytest.approx(float(result.iou[other]), abs=1e-6)


def test_keyboard_shortcuts(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    layer = points_layer(viewer)
    viewer.layers.selection.active = layer
    add_point_and_wait(qtbot, widget, (80, 120))
    press_key(viewer, "n")
    assert session.next_label == 0
    press_key(viewer, "n")
    assert session.next_label == 1
    press_key(viewer, "c")
    assert session.labels_layer is not None and session.labels_layer.data.max() == 1
    add_point_and_wait(qtbot, widget, (200, 350))
    press_key(viewer, "x")
    assert session.result is None and len(layer.data) == 0


def press_key(viewer, key: str) -> None:
    """Send a key press through napari's key handling, as the canvas does."""
    viewer.window._qt_viewer.canvas._key_map_handler.press_key(key)
    viewer.window._qt_viewer.canvas._key_map_handler.release_key(key)


def test_prompts_placed_before_the_embedding_decode_when_it_arrives(viewer, qtbot, tiny_sam):
    from napari_promptseg.testing import build_tiny_sam, make_slow

    slow = make_slow(build_tiny_sam(), seconds_per_block=0.4)
    viewer.add_image(sample_image(), name="image")
    widget = open_widget(viewer, qtbot, slow, add_image=False)
    session = widget.session
    assert session.embedding is None
    points_layer(viewer).add(np.array([80.0, 120.0]))
    assert session.result is None
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    assert session.result.mask.shape == (300, 517)
    wait_embedded(qtbot, widget)


def test_stack_commit_lands_on_the_plane_in_view(viewer, qtbot, tiny_sam):
    from napari_promptseg.core.workflows.stack import planes_of

    rng = np.random.default_rng(2)
    stack = rng.integers(0, 4000, (4, 90, 120)).astype(np.uint16)
    viewer.add_image(stack, name="stack")
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    session = widget.session
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(
        lambda: session.embedding is not None and session.current_slice.fixed == (2,),
        timeout=WAIT_MS,
    )
    result = add_point_and_wait(qtbot, widget, (2.0, 40.0, 60.0))
    # the plane SAM saw is plane 2 at the layer's contrast limits (napari's default: stack range)
    expected = PromptSegmenter(tiny_sam, "x").segment(
        planes_of(stack).rgb((2,)), Prompts.from_points([[40, 60]])
    )
    np.testing.assert_array_equal(result.masks, expected.masks)
    session.commit()
    labels = session.labels_layer
    assert labels.data.shape == (4, 90, 120)
    assert labels.data[2].any() and not labels.data[[0, 1, 3]].any()
    assert labels.features.iloc[0]["slice"] == "2"
    # moving to another plane drops the preview and re-embeds; going back uses the cache
    calls = session.segmenter.encoder_calls
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(
        lambda: session.embedding is not None and session.current_slice.fixed == (3,),
        timeout=WAIT_MS,
    )
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(
        lambda: session.embedding is not None and session.current_slice.fixed == (2,),
        timeout=WAIT_MS,
    )
    assert session.segmenter.encoder_calls == calls + 1
