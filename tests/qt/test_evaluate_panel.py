"""The "Evaluate" panel: the same numbers and files as ``promptseg evaluate``; cancel; bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from widgetkit import WAIT_MS, open_widget, sample_image

from napari_promptseg._napari import objects
from napari_promptseg._qt.panels.evaluate import EvaluatePanel
from napari_promptseg._qt.panels.evaluate_models import CURRENT
from napari_promptseg.cli import main
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.testing import build_tiny_sam, make_slow

SECONDS = ("seconds", "seconds_per_object", "embedding_seconds")


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _panel(widget) -> EvaluatePanel:
    return next(p for p in widget.panels if isinstance(p, EvaluatePanel))


def _truth(image):
    labels, _ = ndimage.label(image > 150)  # the three bright discs: ids 1, 2, 3
    return labels.astype(np.uint16)


def _rows(path):
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if k not in SECONDS} for row in csv.DictReader(file)]


def _wait_done(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.running, timeout=4 * WAIT_MS)


def test_the_panel_gives_the_numbers_and_files_of_the_cli(viewer, qtbot, checkpoint, tmp_path):
    image = sample_image()
    truth = _truth(image)
    segmenter = PromptSegmenter.load(checkpoint=checkpoint, model_type="vit_tiny")
    widget = open_widget(viewer, qtbot, None, image=image, segmenter=segmenter)
    layer = viewer.add_labels(truth, name="truth")
    objects.set_rows(
        layer, [{"id": 1, "class": "a"}, {"id": 2, "class": "b"}, {"id": 3, "class": "a"}]
    )
    panel = _panel(widget)
    panel.set_ground_truth("truth")
    panel.clicks.setValue(3)
    calls = segmenter.encoder_calls

    panel.run_button.click()
    assert panel.running and panel.cancel_button.isEnabled()
    _wait_done(qtbot, panel)
    assert panel.report is not None, panel.status_label.text()
    assert segmenter.encoder_calls == calls  # the session's embedding was reused
    assert panel.results.isVisibleTo(panel) and not panel.results.plot.pixmap().isNull()
    assert [panel.results.cell(r, "class") for r in range(3)] == ["(all)", "a", "b"]
    assert panel.results.cell(0, "model") == "tiny.pth" and panel.results.cell(0, "objects") == "3"
    gui = panel.save_report(tmp_path / "gui.csv")
    assert [p.name for p in gui] == ["gui.csv", "gui_summary.csv", "gui.png"]

    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "truth.tif", truth)
    (tmp_path / "truth_objects.csv").write_text("id,class\n1,a\n2,b\n3,a\n")
    code = main([
        "evaluate", str(tmp_path / "image.tif"), str(tmp_path / "truth.tif"),
        "--checkpoint", str(checkpoint), "--model-type", "vit_tiny", "--clicks", "3",
        "--no-store", "-o", str(tmp_path / "cli.csv"),
    ])  # fmt: skip
    assert code == 0
    assert _rows(tmp_path / "gui.csv") == _rows(tmp_path / "cli.csv")
    assert _rows(tmp_path / "gui_summary.csv") == _rows(tmp_path / "cli_summary.csv")
    assert len(_rows(tmp_path / "gui.csv")) == 3


def test_cancel_stops_and_shows_nothing(viewer, qtbot):
    stack = np.stack([sample_image(), sample_image(seed=6), sample_image(seed=7)])
    truth = np.stack([_truth(plane) for plane in stack])
    slow = PromptSegmenter(make_slow(build_tiny_sam(seed=0), 0.3), "tiny-slow", name="slow")
    widget = open_widget(viewer, qtbot, None, image=stack, segmenter=slow)
    viewer.add_labels(truth, name="truth")
    panel = _panel(widget)
    panel.set_ground_truth("truth")
    panel.clicks.setValue(1)
    panel.run_button.click()
    qtbot.waitUntil(lambda: "embedding" in panel.status_label.text(), timeout=WAIT_MS)
    panel.cancel_button.click()
    _wait_done(qtbot, panel)
    assert panel.status_label.text() == "evaluation cancelled"
    assert panel.report is None and not panel.results.isVisibleTo(panel)
    assert panel.run_button.isEnabled()


def test_bad_input_is_named_and_nothing_runs(viewer, qtbot, tiny_sam):
    image = sample_image()
    widget = open_widget(viewer, qtbot, tiny_sam, image=image)
    panel = _panel(widget)
    panel.run_button.click()
    assert not panel.running and "pick a labels layer" in panel.status_label.text()

    viewer.add_labels(np.zeros((300, 516), np.uint16), name="narrow")
    panel.set_ground_truth("narrow")
    panel.run_button.click()
    assert not panel.running and "shape (300, 516)" in panel.status_label.text()

    viewer.add_labels(np.zeros(image.shape, np.uint16), name="empty")
    panel.set_ground_truth("empty")
    panel.run_button.click()
    assert not panel.running and "holds no object" in panel.status_label.text()

    viewer.add_labels(_truth(image), name="truth")
    panel.set_ground_truth("truth")
    panel.models.set_checked(CURRENT, checked=False)
    panel.run_button.click()
    assert not panel.running and "tick at least one model" in panel.status_label.text()
    assert panel.truth.count() == 3  # the layer list follows the viewer's labels layers
    viewer.layers.remove("narrow")
    assert panel.truth.count() == 2 and panel.truth.currentText() == "truth"
