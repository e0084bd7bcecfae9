"""The "Track with memory (SAM 2.1)" panel driven as a user would, and its napari layer side.

The scripted session runs a random-weight SAM 2.1 hiera_t (built once for the module) on a
4-frame non-square stack: its masks are meaningless, so what is asserted are the mechanics:
ids, which frames are written and which are left alone, one undo step with the lineage,
file contents. The layer-side tests below it need no model and no viewer.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import tifffile
from familykit import sam2_reference, save_sam2
from napari.layers import Labels
from widgetkit import WAIT_MS, add_point_and_wait, open_widget, points_layer, wait_embedded

from napari_promptseg._napari import lineage_store
from napari_promptseg._napari.slices import SliceRef
from napari_promptseg._napari.tracking import TrackTarget, is_hand_made, write_masks
from napari_promptseg._qt.panels.tracking import TrackingPanel
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.models import load_model
from napari_promptseg.core.workflows.tracking.ctc import read_ctc
from napari_promptseg.core.workflows.tracking.edits import split_track

T, H, W = 4, 72, 104
SECTION = "Track with memory (SAM 2.1)"


def _stack() -> np.ndarray:
    """A bright disc drifting right over a noisy background: (T, H, W) uint8."""
    rng = np.random.default_rng(2)
    rows, cols = np.mgrid[:H, :W]
    frames = rng.integers(0, 50, (T, H, W)).astype(np.uint8)
    for t in range(T):
        frames[t][(rows - 36) ** 2 + (cols - 30 - 8 * t) ** 2 < 14**2] = 210
    return frames


@pytest.fixture(scope="module")
def sam2_segmenter(tmp_path_factory):
    path = save_sam2(sam2_reference(seed=1), tmp_path_factory.mktemp("sam2") / "sam2.1.pt")
    return PromptSegmenter.from_model(load_model(checkpoint=path, device="cpu"))


def _open(viewer, qtbot, sam, segmenter=None):
    """The dock on the stack, at frame 0 (napari opens a stack at its middle frame)."""
    viewer.add_image(_stack(), name="stack")
    viewer.dims.set_current_step(0, 0)
    widget = open_widget(viewer, qtbot, sam, add_image=False, segmenter=segmenter)
    wait_embedded(qtbot, widget)
    return widget


def _screenshot(qtbot, viewer, widget, panel) -> None:
    """The window at 1280 px with the panel's section open and scrolled into view."""
    viewer.window._qt_window.resize(1280, 1000)
    widget.tabs.set_all_expanded(False)
    widget.tabs.show_section(SECTION)
    widget.splitter.setSizes([220, 780])
    qtbot.wait(300)
    widget.tabs.currentWidget().ensureWidgetVisible(panel.tracks.summary_label)
    qtbot.wait(200)
    viewer.screenshot("/tmp/tracking_panel.png", canvas_only=False)


def _panel(widget) -> TrackingPanel:
    return next(p for p in widget.panels if isinstance(p, TrackingPanel))


def _run(qtbot, panel, start) -> str:
    with qtbot.waitSignal(panel.done, timeout=120_000) as blocker:
        assert start() is not None
    return blocker.args[0]


def _go(qtbot, viewer, session, frame: int) -> None:
    viewer.dims.set_current_step(0, frame)
    qtbot.waitUntil(lambda: session.current_slice.fixed == (frame,), timeout=WAIT_MS)


def _box(t0, t1, r0, r1, c0, c1) -> tuple[np.ndarray, ...]:
    """Index arrays of a block of frames t0..t1-1, rows r0..r1-1, cols c0..c1-1."""
    return tuple(a.ravel() for a in np.mgrid[t0:t1, r0:r1, c0:c1])


@pytest.mark.gui
@pytest.mark.slow
def test_scripted_session_track_correct_divide_undo_export(
    make_napari_viewer, qtbot, sam2_segmenter, tmp_path, monkeypatch
):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot, None, sam2_segmenter)
    session, panel = widget.session, _panel(widget)
    encoded = []  # embeddings computed from here on (frame 0 is already)
    put = session.cache.put
    monkeypatch.setattr(session.cache, "put", lambda e: (encoded.append(e.key), put(e))[1])
    widget.tabs.show_section(SECTION)
    assert panel.axis() == 0 and panel.status_label.text() == ""  # SAM 2.1: no warning

    # frame 0: a positive click, committed with the widget's button
    add_point_and_wait(qtbot, widget, (0, 36, 30))
    widget.commit_button.click()
    labels = session.labels_layer
    assert labels is not None and set(np.unique(labels.data[0])) == {0, 1}
    committed = labels.data[0].copy()

    panel.lost_check.setChecked(False)  # random weights: visit every frame whatever the score
    message = _run(qtbot, panel, panel.propagate)
    run = panel.last_run
    assert sorted(run.masks[1]) == [0, 1, 2, 3]
    assert "object 1: 4 frame(s) (0–3)" in panel.stops_label.text()
    assert "forward: reached the end of the stack" in panel.stops_label.text()
    np.testing.assert_array_equal(labels.data[0], committed)  # the user's frame is kept
    assert "kept hand-made 0" in message
    for t in (1, 2, 3):  # each frame holds exactly the tracked mask (nothing else there)
        np.testing.assert_array_equal(labels.data[t] == 1, run.masks[1][t].mask)
    if any(run.masks[1][t].mask.any() for t in (1, 2, 3)):
        assert "object 1: wrote" in message and "one Ctrl+Z" in message
    _screenshot(qtbot, viewer, widget, panel)

    # frame 2 edited by hand (the paint brush): a re-propagation must leave it alone
    with labels.block_history():
        labels.data_setitem(_box(2, 3, 0, H, 0, W), 0)
        labels.data_setitem(_box(2, 3, 50, 62, 70, 90), 1)
    hand = labels.data[2].copy()
    assert is_hand_made(labels, SliceRef((2, None, None), (1, 2)), 1)

    # frame 1: a correction click, then re-propagate forward from it
    _go(qtbot, viewer, session, 1)
    add_point_and_wait(qtbot, widget, (1, 36, 38))
    panel.direction_combo.setCurrentIndex(panel.direction_combo.findData("forward"))
    message = _run(qtbot, panel, panel.correct)
    run = panel.last_run
    assert sorted(run.masks[1]) == [1, 2, 3]
    np.testing.assert_array_equal(labels.data[1] == 1, run.masks[1][1].mask)  # the correction
    np.testing.assert_array_equal(labels.data[2], hand)  # untouched
    np.testing.assert_array_equal(labels.data[3] == 1, run.masks[1][3].mask)  # re-tracked
    np.testing.assert_array_equal(labels.data[0], committed)
    assert "kept hand-made 2" in message
    assert len(points_layer(viewer).data) == 0  # the correction's prompts are used up
    (tracker,) = panel._trackers.values()  # one tracker: memory and embeddings reused
    assert tracker.prompted_frames(1) == [0, 1]
    assert len(encoded) == len(set(encoded)) == T - 1  # frames 1-3, each encoded once

    # a division: object 7 painted by hand, one piece on frames 0-1, two on frames 2-3
    with labels.block_history():
        labels.data_setitem(_box(0, 2, 4, 16, 4, 30), 7)
        labels.data_setitem(_box(2, 4, 4, 16, 4, 14), 7)
        labels.data_setitem(_box(2, 4, 4, 16, 20, 30), 7)
    session.notify_objects_changed()
    before = labels.data.copy()
    box = panel.tracks
    proposals = box.propose()
    row = next(i for i, d in enumerate(proposals) if d.parent == 7)
    assert proposals[row].frame == 2
    assert box.accept(row)
    lineage = box.lineage()
    daughters = lineage.children_of(7)
    assert len(daughters) == 2 and min(daughters) > 7
    assert [lineage.tracks[d].first for d in daughters] == [2, 2]
    assert lineage.tracks[7].last == 1
    assert labels.metadata[lineage_store.LINEAGE_KEY]["rows"] == lineage.to_rows()
    tracks = next(layer for layer in viewer.layers if layer.name.endswith("tracks"))
    assert {k: list(v) for k, v in tracks.graph.items()} == {d: [7] for d in daughters}

    for bad in (lambda: box.mark_division(1, 0, (0, 0)), lambda: box.merge(7, 7)):
        assert not bad()  # reported in the panel, nothing changed
        assert box.status_label.text().startswith("cannot edit tracks: ")
    np.testing.assert_array_equal(labels.data[:2], before[:2])

    session.undo()  # one step: pixels and lineage
    np.testing.assert_array_equal(labels.data, before)
    assert box.lineage().children_of(7) == [] and not tracks.graph
    session.redo()
    assert box.lineage().children_of(7) == daughters

    # exports: CTC (tifffile + res_track.txt) and GEFF (geff's reader)
    assert box.export_ctc(tmp_path / "ctc")
    masks = [tifffile.imread(tmp_path / "ctc" / f"mask{t:03d}.tif") for t in range(T)]
    assert all(m.dtype == np.uint16 for m in masks)
    lines = (tmp_path / "ctc" / "res_track.txt").read_text().split("\n")
    for d in daughters:
        assert f"{d} 2 3 7" in lines
    assert "7 0 1 0" in lines
    read_labels, read_lineage = read_ctc(tmp_path / "ctc")
    np.testing.assert_array_equal(read_labels, labels.data)
    assert read_lineage == box.lineage()
    assert not box.export_ctc(tmp_path / "ctc")  # not empty: refused, reported
    assert "not empty" in box.status_label.text()

    import geff

    assert box.export_geff(tmp_path / "tracks.geff")
    graph, metadata = geff.read(str(tmp_path / "tracks.geff"))
    nodes = dict(graph.nodes(data=True))
    assert sum(1 for p in nodes.values() if p["track_id"] == 7) == 2
    parents = {
        nodes[b]["track_id"]: nodes[a]["track_id"]
        for a, b in graph.edges()
        if nodes[a]["track_id"] != nodes[b]["track_id"]
    }
    assert {d: parents[d] for d in daughters} == {d: 7 for d in daughters}
    assert [axis.name for axis in metadata.axes] == ["t", "y", "x"]

    # Cancel after the first frame tracked: the frames done are written, no more
    slow = tracker._track_frame
    monkeypatch.setattr(tracker, "_track_frame", lambda *a: (time.sleep(0.5), slow(*a))[1])
    after = labels.data.copy()
    with qtbot.waitSignal(panel.done, timeout=120_000) as blocker:
        worker = panel.propagate()
        worker.yielded.connect(lambda step: step.result is not None and panel.cancel())
    assert blocker.args[0].startswith("cancelled: wrote the frames done")
    done = sorted(panel.last_run.masks[1])  # the frame in progress at Cancel is finished
    assert panel.last_run.cancelled and done in ([1], [1, 2])
    assert f"forward: cancelled before frame {done[-1] + 1}" in panel.stops_label.text()
    np.testing.assert_array_equal(labels.data[3], after[3])
    assert panel.propagate_button.isEnabled() and panel.worker is None

    # every object on this frame, one frame forward: one tracker, each object its own id
    monkeypatch.setattr(tracker, "_track_frame", slow)
    on_frame = sorted(int(i) for i in np.unique(labels.data[1]) if i)
    panel.object_combo.setCurrentText("all objects on this frame")
    assert panel.object_ids() == on_frame and len(on_frame) == 2  # objects 1 and 7
    panel.max_spin.setValue(1)
    after = labels.data.copy()
    message = _run(qtbot, panel, panel.propagate)
    assert sorted(panel.last_run.masks) == on_frame and len(panel._trackers) == 1
    assert all(sorted(per) == [1, 2] for per in panel.last_run.masks.values())
    assert "object 7: " in message
    np.testing.assert_array_equal(labels.data[[0, 3]], after[[0, 3]])


@pytest.mark.gui
def test_a_model_without_memory_gets_a_clear_message(make_napari_viewer, qtbot, tiny_sam):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot, tiny_sam)
    session, panel = widget.session, _panel(widget)
    assert "needs a model with video memory (SAM 2.1)" in panel.status_label.text()
    assert "Propagate through slices" in panel.status_label.text()
    add_point_and_wait(qtbot, widget, (0, 36, 30))
    widget.commit_button.click()
    problems = []
    session.problem.connect(problems.append)
    assert panel.propagate() is None and panel.correct() is None
    assert "SAM 2.1" in problems[-1] and "Propagate through slices" in problems[-1]
    assert panel.worker is None and (session.labels_layer.data[1:] == 0).all()


# -- the layer side, without a viewer or a model -----------------------------------------


def _layer() -> Labels:
    return Labels(np.zeros((T, H, W), np.uint32))


TARGET = TrackTarget(SliceRef((0, None, None), (1, 2)), 0)


def _disc(t: int) -> np.ndarray:
    rows, cols = np.mgrid[:H, :W]
    return (rows - 36) ** 2 + (cols - 30 - 8 * t) ** 2 < 12**2


def test_rewrites_its_own_frames_keeps_hand_made_and_spares_other_objects():
    layer = _layer()
    layer.data_setitem(_box(0, 1, 30, 40, 20, 40), 1)  # committed on frame 0
    layer.data_setitem(_box(3, 4, 30, 40, 50, 60), 2)  # another object on frame 3
    before = layer.data.copy()
    masks = {1: {t: _disc(t) for t in range(T)}}
    report = write_masks(layer, TARGET, masks, overwrite=False)
    assert report.written == {1: [1, 2, 3]} and report.hand_made == {1: [0]}
    np.testing.assert_array_equal(layer.data[0], before[0])
    np.testing.assert_array_equal(layer.data[3] == 2, before[3] == 2)  # never painted over
    np.testing.assert_array_equal(layer.data[3] == 1, _disc(3) & (before[3] == 0))

    shifted = {1: {t: np.roll(_disc(t), 3, axis=1) for t in range(T)}}
    layer.data_setitem(_box(2, 3, 0, 5, 0, 5), 1)  # frame 2 touched by hand
    report = write_masks(layer, TARGET, shifted, overwrite=False)
    assert report.written == {1: [1, 3]} and report.hand_made == {1: [0, 2]}
    np.testing.assert_array_equal(layer.data[1] == 1, shifted[1][1])  # old pixels gone
    report = write_masks(layer, TARGET, shifted, overwrite=True, replace_hand_made=True)
    assert report.written == {1: [0, 1, 2, 3]}
    np.testing.assert_array_equal(layer.data[3] == 1, shifted[1][3])  # overwrite: over 2 too

    layer.undo()  # each write is one step
    np.testing.assert_array_equal(layer.data[0], before[0])
    layer.undo()
    layer.undo()
    np.testing.assert_array_equal(layer.data[1] == 1, _disc(1))
    assert not is_hand_made(layer, SliceRef((1, None, None), (1, 2)), 1)  # still propagation's


def test_track_edits_are_one_undo_step_with_the_lineage():
    layer = _layer()
    for t in range(T):
        layer.data_setitem(TARGET.ref_at(t).full_indices(*np.nonzero(_disc(t))), 1)
    lineage = lineage_store.lineage_of(layer, 0)
    edit = split_track(lineage_store.stack(layer, 0), lineage, 1, 2, 5)
    lineage_store.apply_edit(layer, 0, edit)
    assert set(lineage_store.lineage_of(layer, 0).tracks) == {1, 5}
    # a division of existing tracks changes no pixel: its marker alone is the undo step
    layer.data_setitem(_box(2, 4, 0, 5, 0, 5), 6)
    lineage = lineage_store.lineage_of(layer, 0)
    lineage_store.apply_edit(
        layer,
        0,
        edit._replace(labels=layer.data.copy(), frames=(), lineage=lineage.divide(1, [5, 6])),
    )
    assert lineage_store.lineage_of(layer, 0).children_of(1) == [5, 6]
    layer.undo()
    assert lineage_store.lineage_of(layer, 0).children_of(1) == []
    assert set(lineage_store.lineage_of(layer, 0).tracks) == {1, 5, 6}
    layer.undo()  # the paint of 6 (not ours)
    layer.undo()  # the split
    assert set(lineage_store.lineage_of(layer, 0).tracks) == {1}
    layer.redo()
    layer.redo()
    layer.redo()
    assert lineage_store.lineage_of(layer, 0).children_of(1) == [5, 6]
