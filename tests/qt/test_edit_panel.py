"""Fixing an existing segmentation in the viewer: pick an object, refine it, commit in place.

The tiny test model's masks are meaningless: these tests check ids, dtype, neighbours,
rows and undo, not mask quality. Clicks go through napari's canvas (vispy mouse events),
as a user's do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from vispy.util import keys as vispy_keys
from widgetkit import WAIT_MS, open_widget, points_layer, sample_image

from napari_promptseg._napari import objects
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.testing import build_tiny_sam, make_slow

SHIFT = (vispy_keys.SHIFT,)
CONTROL = (vispy_keys.CONTROL,)


def cellpose_like(dtype=np.int32) -> np.ndarray:
    """Labels over the sample image's three discs, as a segmenter wrote them: ids 5, 9, 12."""
    rows, cols = np.mgrid[:300, :517]
    labels = np.zeros((300, 517), dtype)
    labels[(rows - 80) ** 2 + (cols - 120) ** 2 < 40**2] = 5
    labels[(rows - 200) ** 2 + (cols - 350) ** 2 < 60**2] = 9
    labels[(rows - 150) ** 2 + (cols - 450) ** 2 < 30**2] = 12
    return labels


def click(viewer, row, col, modifiers=()) -> None:
    """A left click at world (row, col) on the canvas, through napari's mouse handling."""
    canvas = viewer.window._qt_viewer.canvas
    view = canvas.view
    mapped = (view.transform * view.scene.transform).map([col, row])
    position = mapped[:2] / mapped[3]
    scene = canvas._scene_canvas
    scene.events.mouse_press(pos=position, button=1, modifiers=modifiers)
    scene.events.mouse_release(pos=position, button=1, modifiers=modifiers)
    assert np.allclose(viewer.cursor.position[-2:], (row, col), atol=0.5)


def press(viewer, key: str) -> None:
    """A key press through the canvas's key map (the active layer's bindings first)."""
    viewer.window._qt_viewer.canvas._key_map_handler.press_key(key)


def wait_for_mask(qtbot, session, points: int):
    def shown():
        prompts = session.decoding.result_prompts
        return session.result is not None and prompts is not None and len(prompts.points) == points

    qtbot.waitUntil(shown, timeout=WAIT_MS)
    return session.result


@pytest.fixture
def widget_with_cellpose(make_napari_viewer, qtbot, tiny_sam):
    viewer = make_napari_viewer(show=True)
    widget = open_widget(viewer, qtbot, tiny_sam)
    layer = viewer.add_labels(cellpose_like(), name="cellpose")
    widget.points_button.click()  # the user goes back to placing points
    return viewer, widget, layer


def test_fix_a_wrong_object_with_two_clicks_under_its_own_id(widget_with_cellpose, qtbot):
    """The issue's "Done when": a Cellpose layer, a wrong object, two clicks, commit, same id."""
    viewer, widget, layer = widget_with_cellpose
    session = widget.session
    original = np.array(layer.data, copy=True)

    click(viewer, 80, 120, SHIFT)  # pick object 5
    edit = session.editing.edit
    assert edit is not None and edit.object_id == 5 and edit.layer is layer
    assert len(points_layer(viewer).data) == 0  # the pick added no prompt
    assert session.labels_layer is layer and widget.labels_combo.currentData() is layer
    assert "editing object 5 of 'cellpose'" in widget.status_label.text()
    first = wait_for_mask(qtbot, session, points=0)  # decoded at once from mask and box
    assert session.decoding.result_prompts.mask_input is not None

    click(viewer, 85, 125)  # + click
    wait_for_mask(qtbot, session, points=1)
    click(viewer, 70, 100, CONTROL)  # - click
    result = wait_for_mask(qtbot, session, points=2)
    assert result is not first and list(session.decoding.result_prompts.labels) == [1, 0]

    press(viewer, "c")
    data = layer.data
    assert data.dtype == np.int32
    assert (data == 5).any() and data.max() == 12  # same id, no new one
    for neighbour in (9, 12):
        assert np.array_equal(data == neighbour, original == neighbour)
    row = next(r for r in objects.object_rows(layer) if int(r["id"]) == 5)
    assert row["edited"] is True and row["prompts"] == "1+ 1- box refined"
    assert row["area"] == int((data == 5).sum()) and row["model"] == "tiny"
    assert session.editing.edit is None and len(points_layer(viewer).data) == 0

    press(viewer, "Control-z")  # one undo step: the object as Cellpose drew it
    assert np.array_equal(layer.data, original)
    assert objects.object_rows(layer) == []


def test_delete_merge_split_from_the_panel_each_undo_in_one_step(widget_with_cellpose, qtbot):
    viewer, widget, layer = widget_with_cellpose
    layer.data = cellpose_like(np.uint8)
    layer.features = pd.DataFrame({"index": [5, 9, 12], "stain": ["a", "b", "c"]})
    panel = next(p for p in widget.panels if type(p).__name__ == "EditPanel")
    session = widget.session
    original = np.array(layer.data, copy=True)
    assert not panel.delete_button.isEnabled()

    click(viewer, 80, 120, SHIFT)
    assert panel.delete_button.isEnabled() and "object 5" in panel.state_label.text()
    panel.delete_button.click()
    assert not (layer.data == 5).any() and layer.data.dtype == np.uint8
    session.undo()
    assert np.array_equal(layer.data, original)

    click(viewer, 200, 350, SHIFT)  # 9, then merge 12 into it
    panel.merge_button.click()
    assert "merge" in panel.state_label.text()
    click(viewer, 150, 450, SHIFT)
    assert np.array_equal(layer.data == 9, (original == 9) | (original == 12))
    rows = {int(r["id"]): r for r in objects.object_rows(layer)}
    assert set(rows) == {5, 9} and rows[9]["stain"] == "b"
    session.undo()
    assert np.array_equal(layer.data, original)
    assert {int(r["id"]) for r in objects.object_rows(layer)} == {5, 9, 12}

    click(viewer, 200, 350, SHIFT)
    click(viewer, 200, 320)  # a part of object 9 (the tiny model decides which)
    wait_for_mask(qtbot, session, points=1)
    mask = session.result.masks[session.candidate]
    part = mask & (original == 9)
    assert part.any() and not np.array_equal(part, original == 9)  # the tiny model's, seed 0
    panel.split_button.click()
    assert np.array_equal(layer.data == 13, part) and layer.data.dtype == np.uint8
    assert np.array_equal(layer.data == 9, (original == 9) & ~part)
    rows = {int(r["id"]): r for r in objects.object_rows(layer)}
    assert rows[13]["edited"] is True and rows[9]["stain"] == "b"
    session.undo()
    assert np.array_equal(layer.data, original)
    assert {int(r["id"]) for r in objects.object_rows(layer)} == {5, 9, 12}


def test_bad_input_is_named_and_nothing_is_lost(widget_with_cellpose, qtbot):
    viewer, widget, layer = widget_with_cellpose
    session = widget.session
    original = np.array(layer.data, copy=True)

    click(viewer, 10, 10, SHIFT)  # background
    assert session.editing.edit is None
    assert "no object at (10, 10) in 'cellpose': that pixel is background" in (
        widget.status_label.text()
    )

    other = viewer.add_labels(np.ones((100, 100), np.uint16), name="small")
    layer.visible = False
    click(viewer, 50, 50, SHIFT)
    assert "the labels layer 'small' has shape (100, 100), the image (300, 517)" in (
        widget.status_label.text()
    )
    viewer.layers.remove(other)
    layer.visible = True

    click(viewer, 80, 120, SHIFT)
    assert session.editing.edit is not None
    problems = []
    session.problem.connect(problems.append)
    viewer.layers.remove(layer)  # deleted mid-edit
    assert session.editing.edit is None
    assert any("was deleted while object 5 was being edited" in p for p in problems)
    session.commit()  # commits a new object, if any, elsewhere: never into the deleted layer
    assert np.array_equal(layer.data, original)


def test_editing_while_the_embedding_is_still_running(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    slow = PromptSegmenter(make_slow(build_tiny_sam(seed=0), 0.3), "tiny-slow", name="slow")
    widget = open_widget(viewer, qtbot, None, add_image=False, segmenter=slow)
    viewer.add_image(sample_image(), name="image")
    layer = viewer.add_labels(cellpose_like(), name="cellpose")
    widget.points_button.click()
    session = widget.session
    qtbot.waitUntil(lambda: session.image_layer is not None, timeout=WAIT_MS)
    assert session.embedding is None

    click(viewer, 80, 120, SHIFT)
    assert session.editing.edit is not None
    assert "the image embedding is still being computed" in widget.status_label.text()
    assert session.commit() is None
    assert "stays picked" in widget.status_label.text()
    assert np.array_equal(layer.data, cellpose_like())

    wait_for_mask(qtbot, session, points=0)  # the mask shows once the embedding lands
    row = session.commit()
    assert row is not None and row["id"] == 5 and layer.data.max() == 12


def test_classes_go_into_rows_and_colour_objects(widget_with_cellpose, qtbot):
    viewer, widget, layer = widget_with_cellpose
    panel = next(p for p in widget.panels if type(p).__name__ == "ClassesPanel")
    session = widget.session
    assert panel.add_class("nucleus") and panel.add_class("cytoplasm", "#00ff00")
    assert session.state.object_class == "cytoplasm"
    press(viewer, "1")  # keys 1–9 pick a class
    assert session.state.object_class == "nucleus"

    click(viewer, 200, 350, SHIFT)  # picked: choosing a class gives it to the object
    press(viewer, "2")
    row = next(r for r in objects.object_rows(layer) if int(r["id"]) == 9)
    assert row["class"] == "cytoplasm"
    panel.colour_check.setChecked(True)
    colour = layer.colormap.map(np.array([9]))[0]
    assert np.allclose(colour[:3], [0, 1, 0])
    panel.colour_check.setChecked(False)
    assert "promptseg_colormap" not in layer.metadata
    session.clear()

    click(viewer, 80, 120)  # a new object with the class chosen
    wait_for_mask(qtbot, session, points=1)
    new = session.commit()
    assert new is not None and new["class"] == "cytoplasm"
    assert layer.metadata["promptseg_classes"]["classes"][1]["name"] == "cytoplasm"


def test_the_class_list_comes_back_in_the_next_session(make_napari_viewer, qtbot, tiny_sam):
    viewer = make_napari_viewer(show=True)
    widget = open_widget(viewer, qtbot, tiny_sam)
    panel = next(p for p in widget.panels if type(p).__name__ == "ClassesPanel")
    panel.add_class("mitochondrion")
    widget.close_session()
    again = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    panel = next(p for p in again.panels if type(p).__name__ == "ClassesPanel")
    assert panel.classes.names == ["mitochondrion"]


def test_edit_the_plane_in_view_of_a_scaled_stack(make_napari_viewer, qtbot, tiny_sam):
    """World clicks map through the layers' scale and translate; only the plane in view changes."""
    viewer = make_napari_viewer(show=True)
    transform = {"scale": (3.0, 0.5, 0.5), "translate": (0.0, 100.0, 20.0)}
    stack = np.stack([sample_image()] * 3)
    widget = open_widget(viewer, qtbot, tiny_sam, image=stack, **transform)
    labels = np.stack([cellpose_like(np.uint16)] * 3)
    layer = viewer.add_labels(labels.copy(), name="cellpose", **transform)
    widget.points_button.click()
    session = widget.session
    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(
        lambda: (
            session.current_slice is not None
            and session.current_slice.fixed == (1,)
            and session.embedding is not None
        ),
        timeout=WAIT_MS,
    )
    centre_of_9 = (100 + 200 * 0.5, 20 + 350 * 0.5)  # world (row, col) of data (200, 350)

    click(viewer, *centre_of_9, SHIFT)
    edit = session.editing.edit
    assert edit is not None and edit.object_id == 9 and edit.ref.fixed == (1,)
    wait_for_mask(qtbot, session, points=0)
    row = session.commit()
    assert row["id"] == 9 and row["slice"] == "1" and layer.data.dtype == np.uint16
    assert np.array_equal(layer.data[0], labels[0]) and np.array_equal(layer.data[2], labels[2])
    for other in (5, 12):
        assert np.array_equal(layer.data[1] == other, labels[1] == other)

    click(viewer, 100 + 150 * 0.5, 20 + 450 * 0.5, SHIFT)  # object 12 (9 is the tiny model's)
    assert session.editing.edit.object_id == 12
    viewer.dims.set_current_step(0, 2)  # moving off the plane drops the edit, writes nothing
    assert session.editing.edit is None
    assert np.array_equal(layer.data[2], labels[2])


def test_a_3d_object_is_deleted_and_split_through_all_planes_with_one_undo(
    make_napari_viewer, qtbot, tiny_sam
):
    viewer = make_napari_viewer(show=True)
    stack = np.stack([sample_image()] * 3)
    widget = open_widget(viewer, qtbot, tiny_sam, image=stack)
    labels = np.stack([cellpose_like(np.uint16)] * 3)
    labels[0][labels[0] == 12] = 0  # object 12 is on planes 1 and 2 only
    layer = viewer.add_labels(labels.copy(), name="cellpose")
    widget.points_button.click()
    panel = next(p for p in widget.panels if type(p).__name__ == "EditPanel")
    session = widget.session
    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(
        lambda: session.current_slice is not None and session.current_slice.fixed == (1,),
        timeout=WAIT_MS,
    )
    panel.scope.setCurrentIndex(1)  # "whole object"
    assert session.editing.whole_object

    click(viewer, 150, 450, SHIFT)
    assert "every plane" in panel.state_label.text()
    panel.delete_button.click()
    assert not (layer.data == 12).any()
    assert np.array_equal(layer.data[layer.data != 0], labels[(labels != 12) & (labels != 0)])
    session.undo()  # one step brings it back on both planes
    assert np.array_equal(layer.data, labels)

    click(viewer, 200, 350, SHIFT)
    click(viewer, 200, 320)  # a part of object 9 (the tiny model decides which)
    wait_for_mask(qtbot, session, points=1)
    part = session.result.masks[session.candidate] & (labels[1] == 9)
    panel.split_button.click()
    for z in range(3):  # the same footprint splits the object on every plane
        assert np.array_equal(layer.data[z] == 13, part)
        assert np.array_equal(layer.data[z] == 9, (labels[z] == 9) & ~part)
    session.undo()
    assert np.array_equal(layer.data, labels)

    panel.set_whole_object(False)  # the plane in view only, as before
    click(viewer, 80, 120, SHIFT)
    panel.delete_button.click()
    assert not (layer.data[1] == 5).any() and (layer.data[0] == 5).any()
    assert (layer.data[2] == 5).any()
