"""Writer round trip, confidence review, and a screenshot of the widget at work."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from widgetkit import add_point_and_wait, open_widget

from napari_promptseg._napari import objects
from napari_promptseg.core.storage.export import read_objects_csv


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=True)


def _commit_two(qtbot, widget):
    add_point_and_wait(qtbot, widget, (80, 120))
    widget.session.commit()
    add_point_and_wait(qtbot, widget, (200, 350))
    widget.session.commit()
    return widget.session.labels_layer


def test_writer_round_trip(viewer, qtbot, tiny_sam, tmp_path):
    widget = open_widget(viewer, qtbot, tiny_sam)
    labels = _commit_two(qtbot, widget)
    path = tmp_path / "objects.tif"
    written = labels.save(str(path), plugin="napari-promptseg")
    assert sorted(written) == sorted([str(path), str(tmp_path / "objects_objects.csv")])
    read = tifffile.imread(path)
    assert read.dtype == np.uint16
    np.testing.assert_array_equal(read, labels.data)
    rows = read_objects_csv(tmp_path / "objects_objects.csv")
    assert [int(r["id"]) for r in rows] == [1, 2]
    for row, (_, feature) in zip(rows, labels.features.iterrows(), strict=True):
        assert float(row["predicted_iou"]) == pytest.approx(feature["predicted_iou"])
        assert int(row["area"]) == int((read == int(row["id"])).sum())


def test_writer_skips_rows_of_undone_objects(viewer, qtbot, tiny_sam, tmp_path):
    from napari_promptseg._writer import write_labels

    widget = open_widget(viewer, qtbot, tiny_sam)
    labels = _commit_two(qtbot, widget)
    widget.session.undo()
    write_labels(str(tmp_path / "l.tif"), labels.data, {"features": labels.features})
    assert [r["id"] for r in read_objects_csv(tmp_path / "l_objects.csv")] == ["1"]
    widget.session.redo()  # the pixels come back, and so does the row
    assert list(labels.features["id"]) == [1, 2]


def test_confidence_colours_and_review_list(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    labels = _commit_two(qtbot, widget)
    widget.review_threshold.setValue(1.0)  # every object is "under" 1.0
    assert widget.review_list.count() == 2
    scores = [float(r["predicted_iou"]) for r in objects.object_rows(labels)]
    first_text = widget.review_list.item(0).text()
    assert f"{min(scores):.2f}" in first_text  # least confident first
    widget.confidence_check.setChecked(True)
    colormap = labels.colormap
    for row in objects.object_rows(labels):
        np.testing.assert_allclose(
            colormap.map(int(row["id"]))[:3],
            objects.confidence_color(float(row["predicted_iou"]))[:3],
            atol=1e-6,
        )
    item = widget.review_list.item(0)
    widget.review_list.itemClicked.emit(item)
    assert labels.selected_label == int(item.data(0x0100)["id"])
    widget.confidence_check.setChecked(False)
    assert labels.colormap is not colormap


def test_screenshot_of_the_widget_at_work(viewer, qtbot, tiny_sam, tmp_path):
    widget = open_widget(viewer, qtbot, tiny_sam)
    _commit_two(qtbot, widget)
    add_point_and_wait(qtbot, widget, (150, 450))
    qtbot.wait(200)
    path = tmp_path / "widget.png"
    shot = viewer.screenshot(path=str(path), canvas_only=False)
    assert path.stat().st_size > 10_000
    assert shot.std() > 10, "the screenshot looks blank"
    # the dock widget is part of the window shot: its width is beyond the canvas
    canvas = viewer.screenshot(canvas_only=True)
    assert shot.shape[1] > canvas.shape[1]
