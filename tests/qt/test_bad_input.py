"""Bad input in the napari window: a clear message, no traceback, labels intact."""

from __future__ import annotations

import numpy as np
import pytest
from widgetkit import WAIT_MS, add_point_and_wait, open_widget, points_layer

from napari_promptseg._napari import layers as prompt_layers
from napari_promptseg.testing import save_tiny_checkpoint


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def problems(qtbot):
    """Collect the messages a session reports as problems (shown as napari warnings)."""
    return []


def watch(widget, problems):
    widget.session.problem.connect(problems.append)
    return problems


def test_commit_without_a_mask_says_so(viewer, qtbot, tiny_sam, problems):
    widget = open_widget(viewer, qtbot, tiny_sam)
    watch(widget, problems)
    assert widget.session.commit() is None
    assert problems and "nothing to commit" in problems[-1]
    assert widget.session.labels_layer is None


def test_prompt_outside_the_image(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    points_layer(viewer).add(np.array([-40.0, 900.0]))
    qtbot.waitUntil(lambda: "outside" in widget.status_label.text(), timeout=WAIT_MS)
    assert "300x517" in widget.status_label.text()
    assert widget.session.result is None


def test_deleting_the_image_layer_mid_session_keeps_labels(viewer, qtbot, tiny_sam, problems):
    widget = open_widget(viewer, qtbot, tiny_sam)
    watch(widget, problems)
    add_point_and_wait(qtbot, widget, (80, 120))
    widget.session.commit()
    labels = widget.session.labels_layer
    saved = labels.data.copy()
    add_point_and_wait(qtbot, widget, (200, 350))
    viewer.layers.remove(viewer.layers["image"])
    assert widget.session.image_layer is None
    assert widget.session.result is None
    assert "removed" in widget.status_label.text()
    assert widget.session.commit() is None
    np.testing.assert_array_equal(labels.data, saved)


def test_deleting_a_prompt_layer_recreates_it_on_demand(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    add_point_and_wait(qtbot, widget, (80, 120))
    viewer.layers.remove(points_layer(viewer))
    qtbot.waitUntil(lambda: widget.session.result is None, timeout=WAIT_MS)
    widget.points_button.click()
    assert points_layer(viewer) is not None
    add_point_and_wait(qtbot, widget, (80, 120))


def test_labels_layer_of_another_shape_is_refused(viewer, qtbot, tiny_sam, problems):
    widget = open_widget(viewer, qtbot, tiny_sam)
    watch(widget, problems)
    other = viewer.add_labels(np.zeros((10, 10), np.uint16), name="small")
    other.data[2, 2] = 7
    widget.labels_combo.setCurrentIndex(widget.labels_combo.findText("small"))
    assert widget.session.labels_layer is other
    add_point_and_wait(qtbot, widget, (80, 120))
    assert widget.session.commit() is None
    assert "shape" in problems[-1]
    assert other.data[2, 2] == 7 and other.data.sum() == 7


def test_full_labels_dtype_is_refused(viewer, qtbot, tiny_sam, problems):
    widget = open_widget(viewer, qtbot, tiny_sam)
    watch(widget, problems)
    full = viewer.add_labels(np.zeros((300, 517), np.uint8), name="full")
    full.data[0, 0] = 255
    widget.labels_combo.setCurrentIndex(widget.labels_combo.findText("full"))
    add_point_and_wait(qtbot, widget, (150, 250))
    assert widget.session.commit() is None
    assert "uint8" in problems[-1]
    assert int(full.data.sum()) == 255


def test_mask_wholly_on_existing_objects(viewer, qtbot, tiny_sam, problems):
    widget = open_widget(viewer, qtbot, tiny_sam)
    watch(widget, problems)
    covered = viewer.add_labels(np.full((300, 517), 9, np.uint16), name="covered")
    widget.labels_combo.setCurrentIndex(widget.labels_combo.findText("covered"))
    add_point_and_wait(qtbot, widget, (150, 250))
    assert widget.session.commit() is None
    assert "existing objects" in problems[-1]
    assert (covered.data == 9).all()


def test_model_that_fails_to_load(viewer, qtbot, tiny_sam, problems, tmp_path):
    widget = open_widget(viewer, qtbot, tiny_sam)
    watch(widget, problems)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(save_tiny_checkpoint(tmp_path / "ok.pth").read_bytes()[:3000])
    widget.session.load_model(checkpoint=broken, model_type="vit_tiny")
    qtbot.waitUntil(lambda: bool(problems), timeout=WAIT_MS)
    assert "truncated" in problems[-1]
    assert widget.session.segmenter.name == "tiny"  # the working model stays


def test_offline_without_weights_names_file_and_folder(
    viewer, qtbot, tiny_sam, problems, monkeypatch
):
    monkeypatch.setenv("NAPARI_PROMPTSEG_OFFLINE", "1")
    widget = open_widget(viewer, qtbot, tiny_sam)
    watch(widget, problems)
    widget.session.load_model("vit_b")
    qtbot.waitUntil(lambda: bool(problems), timeout=WAIT_MS)
    from napari_promptseg.core.models import cache_dir

    message = problems[-1]
    assert "sam_vit_b_01ec64.pth" in message
    assert "https://dl.fbaipublicfiles.com" in message
    assert str(cache_dir()) in message


def test_3d_display_asks_for_2d(viewer, qtbot, tiny_sam):
    stack = np.stack([np.full((40, 50), i * 20, np.uint8) for i in range(4)])
    viewer.add_image(stack, name="stack")
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    widget.image_combo.setCurrentIndex(widget.image_combo.findText("stack"))
    viewer.dims.ndisplay = 3
    assert "2D" in widget.status_label.text()
    viewer.dims.ndisplay = 2
    qtbot.waitUntil(lambda: widget.session.embedding is not None, timeout=WAIT_MS)


def test_all_nan_image_reports_problem(viewer, qtbot, tiny_sam, problems):
    viewer.add_image(np.full((30, 40), np.nan, np.float32), name="nan", contrast_limits=(0, 1))
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    watch(widget, problems)
    widget.session.refresh()
    qtbot.waitUntil(lambda: bool(problems), timeout=WAIT_MS)
    assert "no finite values" in problems[-1]
    assert prompt_layers.find_layer(viewer, "points") is not None
