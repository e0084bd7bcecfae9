"""The "Segment everything" panel driven as a user would: button → objects → one undo."""

from __future__ import annotations

import numpy as np
import pytest
from widgetkit import WAIT_MS, add_point_and_wait, open_widget, sample_image

from napari_promptseg._napari import objects
from napari_promptseg._qt.panels.everything import EverythingPanel
from napari_promptseg.core import PromptSegmenter, to_rgb_uint8
from napari_promptseg.core.workflows.everything.generator import (
    confidence_order,
    place_objects,
    segment_everything,
)
from napari_promptseg.testing import build_tiny_sam, make_slow


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _panel(widget) -> EverythingPanel:
    return next(p for p in widget.panels if isinstance(p, EverythingPanel))


def _keep_all(panel, points_per_side=4, crop_layers=0):
    # the tiny random SAM predicts IoU ≈ 0.1 and stability ≈ 0: keep every mask
    panel.points_per_side.setValue(points_per_side)
    panel.iou_threshold.setValue(0.0)
    panel.stability_threshold.setValue(0.0)
    panel.crop_layers.setValue(crop_layers)


def _wait_idle(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.running, timeout=4 * WAIT_MS)


def test_segment_everything_adds_objects_as_one_undo_step(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    add_point_and_wait(qtbot, widget, (80, 120))
    widget.commit_button.click()
    labels = session.labels_layer
    before = labels.data.copy()
    rows_before = objects.object_rows(labels)
    assert set(np.unique(before)) == {0, 1}

    panel = _panel(widget)
    _keep_all(panel)
    calls = session.segmenter.encoder_calls
    panel.run_button.click()
    assert panel.running and panel.cancel_button.isEnabled()
    _wait_idle(qtbot, panel)

    assert session.segmenter.encoder_calls == calls  # the session's embedding was reused
    after = labels.data.copy()
    np.testing.assert_array_equal(after[before != 0], before[before != 0])  # object 1 kept
    new_ids = set(np.unique(after)) - {0, 1}
    assert new_ids and min(new_ids) == 2
    # exactly the engine's result placed around the existing object
    result = segment_everything(
        PromptSegmenter(tiny_sam, "x"), to_rgb_uint8(sample_image()), panel.params()
    )
    placement = place_objects(before, result.masks, confidence_order(result.masks), first_id=2)
    expected = before.copy()
    expected[placement.rows, placement.cols] = placement.values
    np.testing.assert_array_equal(after, expected)

    rows = {row["id"]: row for row in objects.object_rows(labels)}
    assert set(rows) == {1} | new_ids
    for label_id in new_ids:
        assert rows[label_id]["area"] == (after == label_id).sum()
        assert rows[label_id]["prompts"] == "everything"
        assert rows[label_id]["model"] == "tiny"

    widget.undo_button.click()  # one undo removes every new object and its row
    np.testing.assert_array_equal(labels.data, before)
    assert objects.object_rows(labels) == rows_before


def test_cancel_midway_adds_nothing(viewer, qtbot):
    widget = open_widget(viewer, qtbot, make_slow(build_tiny_sam(), 0.4))
    panel = _panel(widget)
    _keep_all(panel, points_per_side=2, crop_layers=1)  # four crops to embed, slowly
    panel.run_button.click()
    qtbot.waitUntil(lambda: "step" in panel.status_label.text(), timeout=WAIT_MS)
    panel.cancel_button.click()
    _wait_idle(qtbot, panel)
    assert "cancelled" in panel.status_label.text()
    labels = widget.session.labels_layer
    assert labels is None or not labels.data.any()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_result_for_a_slice_no_longer_shown_is_dropped(viewer, qtbot):
    stack = np.stack([sample_image(), sample_image()[::-1]])
    widget = open_widget(viewer, qtbot, make_slow(build_tiny_sam(), 0.3), image=stack)
    session, panel = widget.session, _panel(widget)
    _keep_all(panel, points_per_side=2, crop_layers=1)
    panel.run_button.click()
    qtbot.waitUntil(lambda: "step" in panel.status_label.text(), timeout=WAIT_MS)
    viewer.dims.set_current_step(0, 1)  # the user moves on while it runs
    _wait_idle(qtbot, panel)
    assert "dropped" in panel.status_label.text()
    assert session.labels_layer is None or not session.labels_layer.data.any()

    # pressed while slice 1 is still being embedded: it waits, then runs on slice 1
    _keep_all(panel, points_per_side=3)
    panel.run_button.click()
    _wait_idle(qtbot, panel)
    data = session.labels_layer.data
    assert data.shape == stack.shape
    assert data[1].any() and not data[0].any()
    rows = objects.object_rows(session.labels_layer)
    assert rows and all(row["slice"] == "1" for row in rows)


def _decoder_checkpoint(tmp_path, tiny_sam):
    """The tiny SAM with a random instance decoder, in micro-sam's checkpoint format."""
    import torch

    from napari_promptseg.core.workflows.instances import InstanceDecoder

    torch.manual_seed(4)  # this seed's maps give a few dozen objects on the sample image
    decoder = InstanceDecoder(embed_dim=32, initial_features=4)
    with torch.no_grad():  # spread the sigmoids around micro-sam's 0.5 thresholds
        decoder.out_conv.weight.mul_(20.0)
    path = tmp_path / "tiny_with_decoder.pt"
    torch.save({"model_state": tiny_sam.state_dict(), "decoder_state": decoder.state_dict()}, path)
    return path


def test_ais_mode_is_the_default_with_a_decoder_and_adds_objects(viewer, qtbot, tiny_sam, tmp_path):
    from napari_promptseg.core.models import load_model
    from napari_promptseg.core.workflows.instances import InstanceSegmenter
    from napari_promptseg.core.workflows.instances.modes import instances_as_result

    path = _decoder_checkpoint(tmp_path, tiny_sam)
    segmenter = PromptSegmenter.from_model(
        load_model(checkpoint=path, model_type="vit_tiny", device="cpu")
    )
    widget = open_widget(viewer, qtbot, tiny_sam, segmenter=segmenter)
    session = widget.session
    panel = _panel(widget)
    modes = [panel.mode_box.itemData(i) for i in range(panel.mode_box.count())]
    assert modes == ["ais", "apg", "grid"] and panel.mode == "ais"
    assert not panel.center_threshold.isHidden() and panel.points_per_side.isHidden()
    assert panel.min_size.value() == 0  # micro-sam's AIS default; APG's is 25
    panel.set_mode("apg")
    assert panel.min_size.value() == 25
    panel.set_mode("ais")

    add_point_and_wait(qtbot, widget, (80, 120))
    widget.commit_button.click()
    labels = session.labels_layer
    before = labels.data.copy()
    calls = segmenter.encoder_calls
    panel.run_button.click()
    _wait_idle(qtbot, panel)
    assert segmenter.encoder_calls == calls  # the decoder ran on the session's embedding

    # exactly the engine's AIS, placed around the committed object
    engine = InstanceSegmenter.from_segmenter(segmenter, path)
    rgb = to_rgb_uint8(sample_image())
    embedding = segmenter.embed(rgb)
    ais = engine.ais(embedding, panel.instance_params())
    assert len(np.unique(ais)) > 3  # the random decoder finds objects
    result = instances_as_result(ais, engine.maps(embedding).foreground, embedding.key, "ais")
    placement = place_objects(before, result.masks, confidence_order(result.masks), first_id=2)
    expected = before.copy()
    expected[placement.rows, placement.cols] = placement.values
    np.testing.assert_array_equal(labels.data, expected)
    rows = {row["id"]: row for row in objects.object_rows(labels)}
    for label_id in set(np.unique(expected)) - {0, 1}:
        assert rows[label_id]["prompts"] == "ais"
        assert 0.0 <= rows[label_id]["foreground"] <= 1.0
    assert "added" in panel.status_label.text()

    widget.undo_button.click()  # one undo removes them all
    np.testing.assert_array_equal(labels.data, before)

    # a model without a decoder offers the grid only
    session.set_segmenter(PromptSegmenter(tiny_sam, "tiny-test", name="tiny"))
    assert [panel.mode_box.itemData(i) for i in range(panel.mode_box.count())] == ["grid"]
    assert not panel.points_per_side.isHidden() and panel.center_threshold.isHidden()


def test_apg_mask_options_reach_the_run(viewer, qtbot, tiny_sam, tmp_path):
    """APG's mask threshold ("auto": micro-sam's local Otsu) and box refinement, shown for
    APG only, give exactly the engine's APG with those parameters."""
    from napari_promptseg.core.models import load_model
    from napari_promptseg.core.workflows.instances import APGParams, InstanceSegmenter
    from napari_promptseg.core.workflows.instances.modes import instances_as_result

    path = _decoder_checkpoint(tmp_path, tiny_sam)
    segmenter = PromptSegmenter.from_model(
        load_model(checkpoint=path, model_type="vit_tiny", device="cpu")
    )
    widget = open_widget(viewer, qtbot, tiny_sam, segmenter=segmenter)
    panel = _panel(widget)
    options = panel.apg_options
    assert options.isHidden()  # AIS, the default, has no mask decoder step
    panel.set_mode("apg")
    assert not options.isHidden() and panel.instance_params() == APGParams()
    options.auto.setChecked(True)
    assert not options.threshold.isEnabled()
    options.refine.setChecked(True)
    params = panel.instance_params()
    assert params == APGParams(mask_threshold="auto", refine_with_box_prompts=True)
    options.auto.setChecked(False)
    options.threshold.setValue(1.5)
    assert panel.instance_params().mask_threshold == 1.5
    options.auto.setChecked(True)

    panel.run_button.click()
    _wait_idle(qtbot, panel)
    labels = widget.session.labels_layer
    engine = InstanceSegmenter.from_segmenter(segmenter, path)
    embedding = segmenter.embed(to_rgb_uint8(sample_image()))
    apg = engine.apg(embedding, params)
    assert len(np.unique(apg)) > 3
    assert (apg != engine.apg(embedding, APGParams())).any()  # the options changed masks
    result = instances_as_result(apg, engine.maps(embedding).foreground, embedding.key, "apg")
    empty = np.zeros_like(labels.data)
    placement = place_objects(empty, result.masks, confidence_order(result.masks), first_id=1)
    expected = empty.copy()
    expected[placement.rows, placement.cols] = placement.values
    np.testing.assert_array_equal(labels.data, expected)
    panel.set_mode("ais")
    assert options.isHidden()


def test_ais_on_the_whole_stack_adds_3d_objects_in_one_undo(viewer, qtbot, tiny_sam, tmp_path):
    """The scripted 3D session: a (z, y, x) stack, AIS on every plane, objects merged
    across z, exactly the engine's ``ais_stack``; one undo removes them all."""
    from napari_promptseg.core.models import load_model
    from napari_promptseg.core.workflows.instances import InstanceSegmenter
    from napari_promptseg.core.workflows.instances.stack_objects import stack_placement

    path = _decoder_checkpoint(tmp_path, tiny_sam)
    segmenter = PromptSegmenter.from_model(
        load_model(checkpoint=path, model_type="vit_tiny", device="cpu")
    )
    plane = sample_image()
    stack = np.stack([np.roll(plane, 3 * z, axis=1) for z in range(3)])
    widget = open_widget(viewer, qtbot, tiny_sam, segmenter=segmenter, image=stack)
    session = widget.session
    panel = _panel(widget)
    assert panel.mode == "ais"
    panel.whole_stack.setChecked(True)
    labels = session.ensure_labels_layer()
    before = labels.data.copy()
    panel.run_button.click()
    _wait_idle(qtbot, panel)

    engine = InstanceSegmenter.from_segmenter(segmenter, path)
    limits = viewer.layers["image"].contrast_limits
    rgb = [to_rgb_uint8(p, contrast_limits=tuple(limits)) for p in stack]
    expected = engine.ais_stack(rgb, panel.instance_params()).labels
    assert len(np.unique(expected)) > 3
    placement = stack_placement(before, expected, first_id=1)
    want = before.copy()
    for z, (rows, cols, values) in placement.planes.items():
        want[z, rows, cols] = values
    np.testing.assert_array_equal(labels.data, want)
    rows = objects.object_rows(labels)
    assert len(rows) == len(placement.rows)
    assert any("-" in str(row["slices"]) for row in rows)  # objects spanning planes
    assert {row["slice_axis"] for row in rows} == {0}
    assert "3D objects over 3 planes" in panel.status_label.text()

    widget.undo_button.click()
    np.testing.assert_array_equal(labels.data, before)
