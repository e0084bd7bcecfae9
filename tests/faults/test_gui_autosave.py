"""Recovery: commits are autosaved in the background; after a crash a new viewer restores
the same labels and objects table. Autosave failures are reported once and cost nothing."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import tifffile
from faultkit import commit_one, wait_problem, watch_problems
from widgetkit import WAIT_MS, open_widget, sample_image

from napari_promptseg._napari import objects
from napari_promptseg._qt.panels.autosave import AutosavePanel
from napari_promptseg.core.storage.autosave import find_autosaves, load_autosave


def autosave_panel(widget) -> AutosavePanel:
    return next(p for p in widget.panels if isinstance(p, AutosavePanel))


def wait_saved(qtbot, panel) -> None:
    """Until every change is written (throttled writes included)."""
    qtbot.waitUntil(lambda: not panel.saver.dirty and not panel.saver.busy, timeout=WAIT_MS)


def test_crash_then_restore_in_a_new_viewer(make_napari_viewer, qtbot, tiny_sam, autosave_dir):
    first_viewer = make_napari_viewer()
    widget = open_widget(first_viewer, qtbot, tiny_sam)
    panel = autosave_panel(widget)
    assert panel.saver.enabled and panel.saver.folder == autosave_dir
    for point in [(80, 120), (200, 350), (150, 450)]:
        commit_one(qtbot, widget, point)
    widget.session.undo()  # the autosave follows undo too
    commit_one(qtbot, widget, (250, 60))
    wait_saved(qtbot, panel)
    labels = widget.session.labels_layer
    expected = labels.data.copy()
    expected_rows = objects.object_rows(labels)
    assert [r["id"] for r in expected_rows] == [1, 2, 3]
    assert "autosaved" in panel.status_label.text()

    # the crash: this session never saves again, nothing is closed or exported
    panel.saver.enabled = False
    panel._timer.stop()

    viewer = make_napari_viewer()
    restored_widget = open_widget(viewer, qtbot, tiny_sam)  # the same image, opened again
    restored_panel = autosave_panel(restored_widget)
    assert "latest autosave: image" in restored_panel.status_label.text()
    layer = restored_panel.restore()
    np.testing.assert_array_equal(layer.data, expected)
    assert layer.data.dtype == expected.dtype
    assert objects.object_rows(layer) == expected_rows
    assert list(layer.features["index"]) == [1, 2, 3]
    assert layer.name == "image objects (restored)"
    # work goes on in the restored layer, with fresh ids
    assert restored_widget.session.labels_layer is layer
    row = commit_one(qtbot, restored_widget, (40, 40))
    assert row["id"] == 4
    np.testing.assert_array_equal(layer.data[expected > 0], expected[expected > 0])


def test_new_session_keeps_the_crashed_sessions_autosave(
    make_napari_viewer, qtbot, tiny_sam, autosave_dir, monkeypatch
):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam)
    for point in [(80, 120), (200, 350)]:
        commit_one(qtbot, widget, point)
    wait_saved(qtbot, autosave_panel(widget))
    crashed = widget.session.labels_layer.data.copy()
    autosave_panel(widget).saver.enabled = False

    again = open_widget(make_napari_viewer(), qtbot, tiny_sam)
    commit_one(qtbot, again, (150, 450))  # before restoring: must not destroy the old one
    panel = autosave_panel(again)
    wait_saved(qtbot, panel)
    names = {f.path.name: f.previous for f in find_autosaves(autosave_dir)}
    assert names == {"image.autosave.tif": False, "image.autosave.previous.tif": True}
    previous = autosave_dir / "image.autosave.previous.tif"
    np.testing.assert_array_equal(load_autosave(previous)[0], crashed)

    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(previous), ""))
    count = len(again.viewer.layers)
    panel.restore_button.click()  # "Restore last autosave…" with the file chosen
    assert len(again.viewer.layers) == count + 1
    np.testing.assert_array_equal(again.viewer.layers[-1].data, crashed)


def test_hand_painting_is_autosaved(make_napari_viewer, qtbot, tiny_sam, autosave_dir):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam)
    commit_one(qtbot, widget)
    panel = autosave_panel(widget)
    wait_saved(qtbot, panel)
    labels = widget.session.labels_layer
    labels.brush_size = 9
    labels.paint((280, 500), 42)
    qtbot.waitUntil(lambda: panel.saver.dirty or panel.saver.busy, timeout=WAIT_MS)
    wait_saved(qtbot, panel)
    saved, _ = load_autosave(autosave_dir / "image.autosave.tif")
    np.testing.assert_array_equal(saved, labels.data)
    assert (saved == 42).any()


def test_disk_full_is_reported_once_and_loses_nothing(
    make_napari_viewer, qtbot, tiny_sam, autosave_dir, monkeypatch
):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam)
    problems = watch_problems(widget)
    commit_one(qtbot, widget)
    panel = autosave_panel(widget)
    wait_saved(qtbot, panel)
    path = autosave_dir / "image.autosave.tif"
    before = path.read_bytes()
    real = tifffile.imwrite

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tifffile, "imwrite", full)
    commit_one(qtbot, widget, (200, 350))
    message = wait_problem(qtbot, problems, "autosave failed")
    assert "No space left on device" in message and "still in the labels layer" in message
    commit_one(qtbot, widget, (150, 450))
    qtbot.wait(2500)  # a retry fails the same way: not reported again
    assert sum("autosave failed" in p for p in problems) == 1
    assert path.read_bytes() == before  # the last good autosave is intact
    assert [r["id"] for r in objects.object_rows(widget.session.labels_layer)] == [1, 2, 3]

    monkeypatch.setattr(tifffile, "imwrite", real)  # space again
    wait_saved(qtbot, panel)
    np.testing.assert_array_equal(load_autosave(path)[0], widget.session.labels_layer.data)


def test_autosave_off_writes_nothing(make_napari_viewer, qtbot, tiny_sam, autosave_dir):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam)
    panel = autosave_panel(widget)
    panel.enabled_check.setChecked(False)
    commit_one(qtbot, widget)
    qtbot.wait(300)
    assert find_autosaves(autosave_dir) == []
    assert "off" in panel.status_label.text()
    panel.enabled_check.setChecked(True)  # what changed while off is saved now
    wait_saved(qtbot, panel)
    assert [f.path.name for f in find_autosaves(autosave_dir)] == ["image.autosave.tif"]


@pytest.mark.parametrize("content", [None, b"II*\x00 not really a tif"], ids=["none", "corrupt"])
def test_restore_without_a_usable_autosave(
    make_napari_viewer, qtbot, tiny_sam, autosave_dir, content
):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, qtbot, tiny_sam, image=sample_image(seed=3))
    problems = watch_problems(widget)
    if content is not None:
        (autosave_dir / "image.autosave.tif").write_bytes(content)
    count = len(viewer.layers)
    assert autosave_panel(widget).restore() is None
    if content is None:
        assert f"no autosave to restore in {autosave_dir}" in problems[-1]
    else:
        assert (
            f"{autosave_dir / 'image.autosave.tif'} is not a napari-promptseg autosave"
            in (problems[-1])
        )
    assert len(viewer.layers) == count


def test_closing_the_widget_writes_what_is_pending(
    make_napari_viewer, qtbot, tiny_sam, autosave_dir
):
    widget = open_widget(make_napari_viewer(), qtbot, tiny_sam)
    panel = autosave_panel(widget)
    panel.saver.min_gap_s = 3600  # throttled: the second commit waits
    commit_one(qtbot, widget)
    qtbot.waitUntil(lambda: not panel.saver.busy, timeout=WAIT_MS)
    commit_one(qtbot, widget, (200, 350))
    assert panel.saver.dirty
    data = widget.session.labels_layer.data.copy()
    panel.close()  # what the widget does with its panels when it closes
    np.testing.assert_array_equal(load_autosave(autosave_dir / "image.autosave.tif")[0], data)
