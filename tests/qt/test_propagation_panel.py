"""The "Propagate through slices" panel driven as a user would, on a stack of a moving disc.

The tiny random SAM embeds every plane for real; its masks are meaningless, so decoding is
replaced by a table (plane → the disc on that plane and a chosen predicted IoU): what is
tested is the mechanics: stopping, one id over several slices, per-slice scores in the
features row, one undo step, cancel, and never painting over another object.
"""

from __future__ import annotations

import numpy as np
import pytest
from widgetkit import WAIT_MS, wait_embedded

from napari_promptseg._napari import objects
from napari_promptseg._qt.panels.propagation import PropagationPanel
from napari_promptseg._qt.widget import PromptSegWidget
from napari_promptseg.core import DecodeResult, PromptSegmenter, to_rgb_uint8
from napari_promptseg.testing import build_tiny_sam, make_slow

H, W = 64, 80


def disc(center_row, center_col, radius=12):
    rows, cols = np.mgrid[:H, :W]
    return (rows - center_row) ** 2 + (cols - center_col) ** 2 < radius**2


class TableSegmenter(PromptSegmenter):
    """Real embeddings (tiny SAM); decoding returns the plane's true disc with a set IoU."""

    def __init__(self, sam, planes, masks, ious):
        super().__init__(sam, "tiny-table", name="tiny")
        self.table = {
            self.key_for(to_rgb_uint8(plane)).fingerprint: (mask, iou)
            for plane, mask, iou in zip(planes, masks, ious, strict=True)
        }
        self.decoded = 0

    def predict(self, embedding, prompts, multimask=None):
        mask, iou = self.table[embedding.key.fingerprint]
        self.decoded += 1
        return DecodeResult(
            masks=mask[None].copy(),
            iou=np.array([iou], dtype=np.float32),
            stability=np.array([0.97], dtype=np.float32),
            low_res_logits=np.zeros((1, 256, 256), dtype=np.float32),
            best=0,
            key=embedding.key,
        )


def moving_disc(n=6):
    truth = np.stack([disc(32, 22 + 4 * i) for i in range(n)])
    return np.where(truth, 220, 30).astype(np.uint8), truth


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def open_on(viewer, qtbot, segmenter, stack, step: dict[int, int]):
    viewer.add_image(stack, name="stack")
    for axis, position in step.items():
        viewer.dims.set_current_step(axis, position)
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    widget.session.set_segmenter(segmenter)
    wait_embedded(qtbot, widget)
    segmenter.decoded = 0  # the embedding worker's warm-up decodes are not propagation's
    panel = next(p for p in widget.panels if isinstance(p, PropagationPanel))
    return widget, panel


def commit(session, mask, iou=0.96):
    """Commit ``mask`` on the slice shown, as the Commit button does with SAM's mask."""
    labels = session.ensure_labels_layer()
    row = objects.commit_mask(
        labels,
        session.current_slice,
        mask,
        overwrite=False,
        predicted_iou=iou,
        stability=0.98,
        prompts="1+",
        candidate=0,
        model="tiny",
    )
    session.objects_changed.emit()
    return row


def run(qtbot, panel) -> str:
    with qtbot.waitSignal(panel.done, timeout=WAIT_MS) as blocker:
        assert panel.propagate() is not None
    return blocker.args[0]


def row_of(labels, object_id):
    return next(r for r in objects.object_rows(labels) if int(r["id"]) == object_id)


def test_propagates_one_id_stops_at_low_iou_and_undoes_in_one_step(viewer, qtbot, tiny_sam):
    stack, truth = moving_disc()
    ious = [0.91, 0.93, 0.99, 0.90, 0.50, 0.95]  # plane 4 is under the 0.7 default
    segmenter = TableSegmenter(tiny_sam, stack, truth, ious)
    widget, panel = open_on(viewer, qtbot, segmenter, stack, {0: 2})
    session = widget.session
    assert panel.axis_combo.count() == 1 and panel.axis() == 0
    before = commit(session, truth[2])
    assert panel.object_label.text() == "object 1"
    labels = session.labels_layer
    snapshot = labels.data.copy()

    message = run(qtbot, panel)

    assert "3 slice(s) written" in message and "predicted IoU 0.50 < 0.70 at plane 4" in message
    for index in range(6):
        expected = truth[index] if index <= 3 else np.zeros((H, W), bool)
        np.testing.assert_array_equal(labels.data[index] == 1, expected)
    assert set(np.unique(labels.data)) == {0, 1}
    assert segmenter.decoded == 4  # 3, 4 (rejected), 1, 0: nothing past the stop
    rows = objects.object_rows(labels)
    assert len(rows) == 1  # one row per object
    row = rows[0]
    assert row["slices"] == "0-3"
    assert row["slice_ious"] == "0:0.910 1:0.930 2:0.960 3:0.900"
    assert row["predicted_iou"] == pytest.approx(0.90)  # the lowest slice
    assert row["area"] == int(truth[:4].sum())
    assert row["slice"] == before["slice"] == "2"
    assert int(row["slice_axis"]) == 0
    assert (row["bbox_col0"], row["bbox_col1"]) == (11, 46)  # union over slices

    session.undo()  # the whole propagation is one step
    np.testing.assert_array_equal(labels.data, snapshot)
    assert objects.object_rows(labels) == [before]  # the row as before, no slice columns
    session.redo()
    np.testing.assert_array_equal(labels.data[0] == 1, truth[0])
    assert row_of(labels, 1)["slices"] == "0-3"
    assert row_of(labels, 1)["predicted_iou"] == pytest.approx(0.90)


def test_never_paints_over_another_object_unless_overwrite(viewer, qtbot, tiny_sam):
    stack, truth = moving_disc(4)
    segmenter = TableSegmenter(tiny_sam, stack, truth, [0.9] * 4)
    widget, panel = open_on(viewer, qtbot, segmenter, stack, {0: 2})
    session = widget.session
    square = np.zeros((H, W), bool)
    square[20:44, 30:40] = True  # overlaps the disc of plane 3
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: session.current_slice.fixed == (3,), timeout=WAIT_MS)
    commit(session, square)
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(lambda: session.current_slice.fixed == (2,), timeout=WAIT_MS)
    commit(session, truth[2])
    labels = session.labels_layer
    assert panel.object_id() == 2  # the last committed

    run(qtbot, panel)
    plane3 = labels.data[3]
    np.testing.assert_array_equal(plane3 == 1, square)  # object 1 untouched
    np.testing.assert_array_equal(plane3 == 2, truth[3] & ~square)
    np.testing.assert_array_equal(labels.data[1] == 2, truth[1])

    session.undo()
    np.testing.assert_array_equal(labels.data[3] == 1, square)
    assert not (labels.data[3] == 2).any()
    session.overwrite = True
    run(qtbot, panel)
    np.testing.assert_array_equal(labels.data[3] == 2, truth[3])
    np.testing.assert_array_equal(labels.data[3] == 1, square & ~truth[3])


def test_cancel_midway_leaves_labels_and_row_untouched(viewer, qtbot):
    stack, truth = moving_disc(6)
    slow = make_slow(build_tiny_sam(seed=0), seconds_per_block=0.4)
    segmenter = TableSegmenter(slow, stack, truth, [0.9] * 6)
    widget, panel = open_on(viewer, qtbot, segmenter, stack, {0: 0})
    session = widget.session
    row = commit(session, truth[0])
    labels = session.labels_layer
    snapshot = labels.data.copy()

    with qtbot.waitSignal(panel.done, timeout=WAIT_MS) as blocker:
        panel.propagate()
        assert not panel.propagate_button.isEnabled() and panel.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: segmenter.decoded >= 1, timeout=WAIT_MS)
        panel.cancel_button.click()
    assert "cancelled" in blocker.args[0]
    assert segmenter.decoded < 5  # stopped before the end of the stack
    np.testing.assert_array_equal(labels.data, snapshot)
    assert row_of(labels, 1)["predicted_iou"] == row["predicted_iou"]
    assert "slice_ious" not in objects.object_rows(labels)[0]
    assert panel.propagate_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.worker is None


def test_4d_propagates_along_the_chosen_axis_for_the_selected_label(viewer, qtbot, tiny_sam):
    # (t, z, y, x): the disc moves with t and grows a little with z
    n_t, n_z = 3, 4
    truth = np.stack(
        [np.stack([disc(32, 22 + 5 * t, 10 + z) for z in range(n_z)]) for t in range(n_t)]
    )
    stack = np.where(truth, 200, 25).astype(np.uint8)
    stack[:, :, 0, 0] = np.arange(n_t * n_z).reshape(n_t, n_z)  # every plane distinct
    segmenter = TableSegmenter(
        tiny_sam, stack.reshape(-1, H, W), truth.reshape(-1, H, W), [0.9] * (n_t * n_z)
    )
    widget, panel = open_on(viewer, qtbot, segmenter, stack, {0: 1, 1: 2})
    session = widget.session
    assert [panel.axis_combo.itemData(i) for i in range(panel.axis_combo.count())] == [0, 1]
    viewer.dims.last_used = 1  # as when the user moves the z slider
    assert panel.axis() == 1  # the default follows the slider used last
    viewer.dims.last_used = 0
    assert panel.axis() == 0
    corner = np.zeros((H, W), bool)
    corner[50:60, 60:75] = True
    commit(session, corner)  # object 1, elsewhere on this plane
    commit(session, truth[1, 2])  # object 2
    labels = session.labels_layer
    labels.selected_label = 1
    panel.object_combo.setCurrentText("label selected in the labels layer")
    assert panel.object_id() == 1
    labels.selected_label = 2
    assert panel.object_id() == 2
    panel.axis_combo.setCurrentIndex(panel.axis_combo.findData(0))  # along t
    panel.axis_combo.activated.emit(panel.axis_combo.currentIndex())  # a user's pick...
    viewer.dims.last_used = 1
    assert panel.axis() == 0  # ...sticks

    assert "2 slice(s) written along axis 0" in run(qtbot, panel)
    painted = np.argwhere((labels.data == 2).any(axis=(2, 3)))
    assert [tuple(p) for p in painted] == [(0, 2), (1, 2), (2, 2)]  # z stays 2
    np.testing.assert_array_equal(labels.data[2, 2] == 2, truth[2, 2])
    assert (labels.data == 1).sum() == corner.sum()  # object 1 not propagated
    row = row_of(labels, 2)
    assert row["slices"] == "0-2" and int(row["slice_axis"]) == 0
    assert row["slice"] == "1,2"


def test_problems_are_reported_and_nothing_starts(viewer, qtbot, tiny_sam):
    stack, truth = moving_disc(4)
    segmenter = TableSegmenter(tiny_sam, stack, truth, [0.9] * 4)
    widget, panel = open_on(viewer, qtbot, segmenter, stack, {0: 1})
    session = widget.session
    problems = []
    session.problem.connect(problems.append)
    assert panel.propagate() is None
    assert "commit an object first" in problems[-1]
    commit(session, truth[1])
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: session.current_slice.fixed == (3,), timeout=WAIT_MS)
    assert panel.propagate() is None
    assert "object 1 has no pixels on the slice shown (slice 3)" in problems[-1]
    panel.object_combo.setCurrentText("label selected in the labels layer")
    session.labels_layer.selected_label = 0
    assert panel.propagate() is None
    assert "select a label" in problems[-1]
    assert panel.worker is None and not (session.labels_layer.data[[0, 2, 3]] != 0).any()


def test_a_2d_image_has_nothing_to_propagate(viewer, qtbot, tiny_sam):
    image = np.where(disc(32, 40), 200, 20).astype(np.uint8)
    segmenter = TableSegmenter(tiny_sam, [image], [disc(32, 40)], [0.9])
    widget, panel = open_on(viewer, qtbot, segmenter, image, {})
    assert panel.axis_combo.count() == 0 and not panel.propagate_button.isEnabled()
    commit(widget.session, disc(32, 40))
    problems = []
    widget.session.problem.connect(problems.append)
    assert panel.propagate() is None
    assert "single 2D image" in problems[-1]


def test_propagating_again_merges_scores_and_undo_walks_back(viewer, qtbot, tiny_sam):
    stack, truth = moving_disc(6)
    ious = [0.8, 0.81, 0.82, 0.83, 0.84, 0.85]
    segmenter = TableSegmenter(tiny_sam, stack, truth, ious)
    widget, panel = open_on(viewer, qtbot, segmenter, stack, {0: 2})
    session = widget.session
    original = commit(session, truth[2], iou=0.95)
    labels = session.labels_layer
    panel.direction_combo.setCurrentIndex(panel.direction_combo.findData("forward"))
    panel.max_spin.setValue(1)
    assert "max steps (1) reached" in run(qtbot, panel)
    first = row_of(labels, 1)
    assert (first["slices"], first["slice_ious"]) == ("2-3", "2:0.950 3:0.830")

    viewer.dims.set_current_step(0, 3)  # continue from the end
    qtbot.waitUntil(lambda: session.current_slice.fixed == (3,), timeout=WAIT_MS)
    run(qtbot, panel)
    second = row_of(labels, 1)
    assert (second["slices"], second["slice_ious"]) == ("2-4", "2:0.950 3:0.830 4:0.840")
    assert second["predicted_iou"] == pytest.approx(0.83)

    session.undo()
    assert not (labels.data[4] == 1).any() and (labels.data[3] == 1).any()
    assert row_of(labels, 1) == first
    session.undo()
    assert not (labels.data[3] == 1).any() and (labels.data[2] == 1).any()
    assert objects.object_rows(labels) == [original]
    session.redo()
    session.redo()
    assert row_of(labels, 1) == second


def test_a_label_painted_by_hand_gets_a_row_that_undo_removes(viewer, qtbot, tiny_sam):
    stack, truth = moving_disc(4)
    segmenter = TableSegmenter(tiny_sam, stack, truth, [0.9, 0.8, 0.9, 0.85])
    widget, panel = open_on(viewer, qtbot, segmenter, stack, {0: 1})
    session = widget.session
    labels = session.ensure_labels_layer()
    rows, cols = np.nonzero(truth[1])
    labels.data_setitem((np.full(len(rows), 1), rows, cols), 7)  # the paint brush, label 7
    labels.selected_label = 7
    panel.object_combo.setCurrentText("label selected in the labels layer")

    run(qtbot, panel)
    row = row_of(labels, 7)
    assert row["slices"] == "0-3" and row["slice_ious"] == "0:0.900 2:0.900 3:0.850"
    assert row["predicted_iou"] == pytest.approx(0.85)  # the painted slice has no score
    assert row["prompts"] == "painted propagated" and row["slice"] == "1"
    assert row["area"] == int(truth.sum())
    session.undo()
    assert objects.object_rows(labels) == []
    np.testing.assert_array_equal(labels.data[1] == 7, truth[1])  # the painting stays
    session.redo()
    assert row_of(labels, 7)["slices"] == "0-3"
