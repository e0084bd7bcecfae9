"""The "Finetune" panel: committed objects in, a new model out that is selected and decodes."""

from __future__ import annotations

import numpy as np
import pytest
from widgetkit import WAIT_MS, add_point_and_wait, open_widget, wait_embedded

from napari_promptseg._napari import objects
from napari_promptseg._qt.panels.finetune import FinetunePanel
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.models.my_models import read_my_models
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells
from napari_promptseg.testing import build_tiny_sam


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _panel(widget) -> FinetunePanel:
    return next(p for p in widget.panels if isinstance(p, FinetunePanel))


def _annotated_session(viewer, qtbot):
    """The widget on a synthetic cells image whose objects are in the labels layer, plus one
    committed through the session the way a user commits."""
    sample = synthetic_cells(3, (160, 200), kind="nuclei")
    image = (sample.image.astype(float) / max(int(sample.image.max()), 1) * 255).astype(np.uint8)
    segmenter = PromptSegmenter(build_tiny_sam(seed=0), "tiny-base", name="tiny")
    widget = open_widget(viewer, qtbot, None, image=image, segmenter=segmenter)
    session = widget.session
    layer = session.ensure_labels_layer()
    layer.data = sample.labels.astype(np.uint32)  # objects annotated earlier
    objects.set_rows(layer, [{"id": int(i)} for i in np.unique(sample.labels) if i])
    empty = np.argwhere(sample.labels == 0)[len(np.argwhere(sample.labels == 0)) // 2]
    add_point_and_wait(qtbot, widget, empty)
    assert session.commit() is not None  # never paints over the objects already there
    return widget, segmenter, sample


def test_committed_objects_finetune_into_a_model_that_is_selected_and_decodes(viewer, qtbot):
    widget, base, _ = _annotated_session(viewer, qtbot)
    session = widget.session
    panel = _panel(widget)
    panel.name.setText("panel-model")
    panel.steps.setValue(3)
    calls = base.encoder_calls

    panel.run_button.click()
    assert panel.running and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.running, timeout=4 * WAIT_MS)
    assert panel.saved is not None, panel.status_label.text()
    assert base.encoder_calls == calls  # trained on the session's cached embedding
    assert [m.name for m in read_my_models()] == ["panel-model"]
    assert "saved and in use" in panel.status_label.text()

    assert session.segmenter.name == "panel-model"
    assert session.segmenter.model_id.startswith("panel-model@")
    assert widget.model_combo.currentData() == "panel-model"  # the list shows it chosen
    wait_embedded(qtbot, widget)
    assert session.embedding.key.model_id == session.segmenter.model_id
    result = add_point_and_wait(qtbot, widget, [80, 100])
    assert result.key.model_id == session.segmenter.model_id  # decoded by the new model


def test_cancel_writes_nothing_and_keeps_the_model(viewer, qtbot):
    widget, base, _ = _annotated_session(viewer, qtbot)
    panel = _panel(widget)
    panel.name.setText("cancelled")
    panel.steps.setValue(10_000)
    panel.run_button.click()
    qtbot.waitUntil(lambda: "training" in panel.status_label.text(), timeout=WAIT_MS)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=WAIT_MS)
    assert "nothing was written" in panel.status_label.text()
    assert read_my_models() == [] and widget.session.segmenter is base


def test_too_few_objects_says_the_minimum(viewer, qtbot):
    segmenter = PromptSegmenter(build_tiny_sam(seed=0), "tiny-base", name="tiny")
    widget = open_widget(viewer, qtbot, None, segmenter=segmenter)
    layer = widget.session.ensure_labels_layer()
    data = np.zeros(layer.data.shape, np.uint32)
    data[10:40, 10:40] = 1
    layer.data = data
    panel = _panel(widget)
    panel.run_button.click()
    assert not panel.running
    assert "at least 10 annotated objects" in panel.status_label.text()
    assert "found 1" in panel.status_label.text()


def test_instance_decoder_target_gives_a_model_with_ais(viewer, qtbot, monkeypatch):
    from napari_promptseg._qt.panels.everything import EverythingPanel
    from napari_promptseg._qt.panels.finetune import INSTANCE_DECODER
    from napari_promptseg.core.models.checkpoint import has_decoder_state
    from napari_promptseg.core.workflows.finetune.instance_training import (
        InstanceTrainingSettings,
    )

    widget, base, _ = _annotated_session(viewer, qtbot)
    panel = _panel(widget)
    panel.name.setText("tiny-ais")
    panel.mode.setCurrentIndex(panel.mode.findData(INSTANCE_DECODER))
    # micro-sam's width (64) takes seconds per step on a CPU: a narrow decoder for the test
    monkeypatch.setattr(
        panel,
        "instance_settings",
        lambda: InstanceTrainingSettings(max_steps=2, eval_every=1, initial_features=4),
    )
    calls = base.encoder_calls
    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=8 * WAIT_MS)
    assert panel.saved is not None, panel.status_label.text()
    assert base.encoder_calls == calls  # the session's cached embedding, encoder frozen
    assert "AIS mean IoU" in panel.status_label.text() and "F1@0.5" in panel.status_label.text()
    (model,) = read_my_models()
    assert model.name == "tiny-ais" and has_decoder_state(model.path)
    assert model.metadata["target"] == "instance-decoder"
    assert widget.session.segmenter.name == "tiny-ais"
    everything = next(p for p in widget.panels if isinstance(p, EverythingPanel))
    qtbot.waitUntil(lambda: everything.mode_box.findData("ais") >= 0, timeout=WAIT_MS)
    assert everything.mode == "ais"  # the new decoder is offered, and chosen
