"""Choosing a model in the dock: grouped list with size and measured speed, switching models
mid-session, a refused checkpoint, and status lines shown whole with a Copy button."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication
from widgetkit import WAIT_MS, add_point_and_wait, open_widget, points_layer

from napari_promptseg.core import PromptSegmenter


def _rows(combo):
    return [(combo.itemText(i).strip(), combo.itemData(i)) for i in range(combo.count())]


def test_model_list_is_grouped_with_size_and_speed_measured_here(
    make_napari_viewer, qtbot, tiny_sam
):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    combo = widget.model_combo
    rows = _rows(combo)
    headings = [text for text, data in rows if data is None]
    assert headings == [
        "Demo (offline)", "SAM", "MobileSAM", "SAM 2.1", "micro-sam microscopy models", "checkpoint file"
    ]  # fmt: skip
    model = combo.model()
    for index, (_, data) in enumerate(rows):  # headings cannot be chosen
        assert bool(model.item(index).flags() & Qt.ItemFlag.ItemIsSelectable) == (data is not None)
    vit_t = next(text for text, data in rows if data == "vit_t")
    assert vit_t == "vit_t  ·  39 MiB  ·  not measured yet"
    assert combo.currentData() == "vit_b"

    # the first embedding with a model records its speed here, and the list shows it
    widget.session.set_segmenter(PromptSegmenter(tiny_sam, "tiny-as-vit_t", name="vit_t"))
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (64, 80), np.uint8), name="img")
    qtbot.waitUntil(lambda: "s / image here (cpu)" in dict(
        (data, text) for text, data in _rows(combo))["vit_t"], timeout=WAIT_MS)  # fmt: skip
    assert combo.currentData() == "vit_b"  # refreshing kept the choice
    assert widget.select_model("sam2.1_hiera_t") and combo.currentData() == "sam2.1_hiera_t"
    assert not widget.select_model("no-such-model")


def test_switching_models_keeps_prompts_and_reembeds(
    make_napari_viewer, qtbot, tiny_sam, checkpoint
):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    first = add_point_and_wait(qtbot, widget, [120, 200])
    assert first.key.model_id == "tiny-test"
    session.load_model(checkpoint=checkpoint, model_type="vit_tiny")  # another model id
    qtbot.waitUntil(
        lambda: session.result is not None and session.result.key.model_id != "tiny-test",
        timeout=WAIT_MS,
    )
    assert len(points_layer(viewer).data) == 1  # the prompt survived the switch
    assert session.segmenter.name == checkpoint.name
    np.testing.assert_array_equal(points_layer(viewer).data[0], [120, 200])


def test_refused_checkpoint_names_both_sides_and_keeps_the_model(
    make_napari_viewer, qtbot, tiny_sam, checkpoint
):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    before = checkpoint.read_bytes()
    session.load_model(checkpoint=checkpoint, model_type="vit_t")
    qtbot.waitUntil(lambda: "cannot load the model" in widget.status_label.text(), timeout=WAIT_MS)
    text = widget.status_label.text()
    assert "does not fit model type 'vit_t'" in text and "not a MobileSAM vit_t one" in text
    assert session.segmenter.name == "tiny" and checkpoint.read_bytes() == before
    result = add_point_and_wait(qtbot, widget, [100, 100])  # the current model still works
    assert result.key.model_id == "tiny-test"


def test_long_status_line_is_shown_whole_and_can_be_copied(make_napari_viewer, qtbot, tiny_sam):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    message = (
        "vit_b is not downloaded yet (358 MiB). Press Load model to download it, or, offline, "
        "save https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth as "
        "sam_vit_b_01ec64.pth in /home/someone/.cache/napari-promptseg/models/and/a/long/folder"
    )
    widget.status_label.setText(message)
    label = widget.status_label
    # every wrapped line shows: the label grows to the height its text needs at its width
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()), timeout=5000)
    assert label.heightForWidth(label.width()) > label.fontMetrics().height() * 2  # wraps
    widget.status_line.copy_button.click()
    assert QApplication.clipboard().text() == message
