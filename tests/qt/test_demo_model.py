"""The shipped demo model in the napari window, as ``make run`` opens it: chosen from the model
list, AIS finds the nuclei, a click picks one, and the pick commits like any object."""

from __future__ import annotations

import numpy as np
import pytest
from widgetkit import WAIT_MS, add_point_and_wait

from napari_promptseg._napari import objects
from napari_promptseg._qt.panels.everything import EverythingPanel
from napari_promptseg._qt.widget import PromptSegWidget
from napari_promptseg.core.workflows.evaluation.clicks import most_interior_pixel
from napari_promptseg.core.workflows.finetune.instance_validation import match_instances
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells

pytestmark = pytest.mark.slow


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_demo_model_segments_and_answers_clicks_in_napari(viewer, qtbot):
    sample = synthetic_cells(7_000_003, (280, 350), kind="nuclei")  # held out, not square
    viewer.add_image(sample.image, name="image")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    session = widget.session
    assert widget.select_model("demo")  # listed, available offline
    session.load_model("demo", device="cpu")
    qtbot.waitUntil(lambda: session.segmenter is not None, timeout=4 * WAIT_MS)
    qtbot.waitUntil(lambda: session.embedding is not None, timeout=4 * WAIT_MS)
    assert session.segmenter.name == "demo"

    # a click on a nucleus: the mask is that nucleus (as AIS drew it), with its score
    ids = [int(i) for i in np.unique(sample.labels) if i]
    target = max(ids, key=lambda i: int((sample.labels == i).sum()))
    truth = sample.labels == target
    result = add_point_and_wait(qtbot, widget, most_interior_pixel(truth))
    iou = (result.mask & truth).sum() / (result.mask | truth).sum()
    assert iou > 0.6 and result.masks.shape[0] == 3 and 0.5 < result.iou[0] <= 1.0
    # its score is the decoder's foreground probability, and the Mask section says so
    assert f"mean foreground {result.iou[result.best]:.3f}" in widget.score_label.text()
    assert session.commit() is not None
    labels = session.labels_layer
    assert (labels.data == 1).sum() == result.mask.sum()

    # segment everything: AIS is offered first and chosen; the nuclei are found
    panel = next(p for p in widget.panels if isinstance(p, EverythingPanel))
    assert panel.mode == "ais"
    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=4 * WAIT_MS)
    found = labels.data.copy()
    best, matched, count = match_instances(sample.labels, found)
    assert 2 * matched / (len(best) + count) > 0.6, (matched, len(best), count)
    rows = {row["id"]: row for row in objects.object_rows(labels)}
    assert rows[1]["model"] == "demo" and len(rows) == count


def test_segment_everything_on_a_plane_larger_than_one_embedding(viewer, qtbot):
    """A 400 x 2400 plane is tiled by the session (no whole-plane embedding); AIS runs by
    micro-sam's tiles in the panel's worker and finds the nuclei across the tile borders."""
    sample = synthetic_cells(7_000_012, (400, 2400), kind="nuclei")  # held out
    viewer.add_image(sample.image, name="wide")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    session = widget.session
    session.load_model("demo", device="cpu")
    qtbot.waitUntil(lambda: session.tiled is not None, timeout=4 * WAIT_MS)
    assert session.embedding is None  # too large for one embedding
    panel = next(p for p in widget.panels if isinstance(p, EverythingPanel))
    assert panel.mode == "ais"
    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=4 * WAIT_MS)
    assert "added" in panel.status_label.text(), panel.status_label.text()
    found = session.labels_layer.data.copy()
    best, matched, count = match_instances(sample.labels, found)
    assert 2 * matched / (len(best) + count) > 0.6, (matched, len(best), count)
