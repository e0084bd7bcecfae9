"""The "Image folder" panel driven as a user would: open, annotate, Next, reopen, prefetch."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from qtpy.QtCore import QThreadPool
from widgetkit import WAIT_MS, add_point_and_wait, open_widget, sample_image, wait_embedded

from napari_promptseg._qt.panels.folder import FolderPanel
from napari_promptseg.core import PromptSegmenter, to_rgb_uint8
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.testing import build_tiny_sam, make_slow

SHAPE = (120, 160)


def _image(seed: int, shape=SHAPE) -> np.ndarray:
    # the sample image's structure, cropped, with a different brightness per image
    return np.clip(sample_image()[: shape[0], : shape[1]].astype(int) + 7 * seed, 0, 255).astype(
        np.uint8
    )


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def opened(qtbot):
    """``opened(viewer, sam, folder, output=None)`` → (widget, panel) showing the first image.

    Afterwards the widgets close and their workers (slow prefetches too) are waited for, so
    no thread outlives the test.
    """
    widgets = []

    def open_folder(viewer, sam, folder, output=None):
        widget = open_widget(viewer, qtbot, sam, add_image=False)
        widgets.append(widget)
        panel = _panel(widget)
        assert panel.open_folder(folder, output)
        wait_embedded(qtbot, widget)
        return widget, panel

    yield open_folder
    for widget in widgets:
        widget.close_session()
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    iio.imwrite(images / "img_1.png", _image(1))
    iio.imwrite(images / "img_2.png", _image(2))
    tifffile.imwrite(images / "img_10.tif", _image(3))
    return images


def _panel(widget) -> FolderPanel:
    return next(p for p in widget.panels if isinstance(p, FolderPanel))


def _count_encoder_runs(sam) -> list:
    runs: list = []
    handle = sam.image_encoder.patch_embed.register_forward_hook(lambda *args: runs.append(1))
    return runs, handle


def _arrivals(session, runs=None) -> list:
    """(encoder runs, encoder calls, key) when each embedding reaches the session.

    Recorded at that moment because the prefetch of the image after starts right then.
    """
    seen: list = []
    session.embedding_ready.connect(
        lambda e: seen.append(
            (len(runs) if runs is not None else None, session.segmenter.encoder_calls, e.key)
        )
    )
    return seen


def test_annotate_next_saves_and_reopening_resumes(
    viewer, opened, make_napari_viewer, qtbot, tiny_sam, folder, tmp_path
):
    output = tmp_path / "results"
    widget, panel = opened(viewer, tiny_sam, folder, output)
    session = widget.session
    assert panel.index == 0 and panel.image_list.count() == 3
    assert session.image_layer is panel.image_layer
    np.testing.assert_array_equal(panel.image_layer.data, _image(1))
    assert session.labels_layer is panel.labels_layer and not panel.labels_layer.data.any()

    result = add_point_and_wait(qtbot, widget, (80, 120))
    row = session.commit()
    assert row is not None and row["id"] == 1
    panel.next_button.click()

    # files of image 1: the object's pixels and its row
    saved = tifffile.imread(output / "img_1_labels.tif")
    np.testing.assert_array_equal(saved == 1, result.masks[result.best])
    assert set(np.unique(saved)) == {0, 1}
    table = read_objects_csv(output / "img_1_labels_objects.csv")
    assert len(table) == 1 and table[0]["id"] == "1"
    assert float(table[0]["predicted_iou"]) == pytest.approx(row["predicted_iou"], abs=1e-6)
    assert table[0]["area"] == str(row["area"]) and table[0]["prompts"] == "1+"
    assert panel.image_list.item(0).text().startswith("✓")

    # image 2 is shown in the same image layer, with empty labels, and becomes the session's
    assert panel.index == 1
    np.testing.assert_array_equal(panel.image_layer.data, _image(2))
    images = [layer for layer in viewer.layers if layer.__class__.__name__ == "Image"]
    assert images == [panel.image_layer]
    assert session.labels_layer is panel.labels_layer and not panel.labels_layer.data.any()
    assert len(panel.labels_layer.features) == 0
    session.undo()  # undo/redo do not reach back into image 1
    session.redo()
    assert not panel.labels_layer.data.any()
    wait_embedded(qtbot, widget)
    assert session.embedding.key == session.segmenter.key_for(to_rgb_uint8(_image(2)))
    assert not (folder / "img_1_labels.tif").exists()  # results went to the output folder

    # reopened in a new window: resumes at the first image not done
    assert panel.close_folder()
    assert panel.folder is None and not panel.prefetching
    viewer2 = make_napari_viewer()
    widget2, panel2 = opened(viewer2, tiny_sam, folder, output)
    assert panel2.index == 1
    np.testing.assert_array_equal(panel2.image_layer.data, _image(2))
    assert panel2.image_list.item(0).text().startswith("✓")
    # going back loads the saved object and its row, ready to continue
    assert panel2.previous()
    np.testing.assert_array_equal(panel2.labels_layer.data, saved)
    assert panel2.labels_layer.features["id"].tolist() == [1]
    assert panel2.labels_layer.features["prompts"].tolist() == ["1+"]
    wait_embedded(qtbot, widget2)
    add_point_and_wait(qtbot, widget2, (30, 40))
    second = widget2.session.commit()
    assert second is not None and second["id"] == 2
    assert panel2.next()
    table = read_objects_csv(output / "img_1_labels_objects.csv")
    assert [r["id"] for r in table] == ["1", "2"]
    assert panel2.folder.first_not_done() == 1  # image 2 was only passed through


def test_next_image_embedding_is_prefetched(viewer, opened, qtbot, tiny_sam, folder):
    runs, handle = _count_encoder_runs(tiny_sam)
    try:
        widget, panel = opened(viewer, tiny_sam, folder)
        session = widget.session
        qtbot.waitUntil(lambda: panel.prefetched_index is not None, timeout=WAIT_MS)
        assert panel.prefetched_index == 1
        before, calls_before = len(runs), session.segmenter.encoder_calls
        assert before == 2  # image 1 by the session, image 2 by the prefetch

        seen = _arrivals(session, runs)
        panel.next()
        qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
        runs_then, calls_then, key = seen[0]
        assert runs_then == before, "the session should have found the prefetched embedding"
        assert calls_then == calls_before
        assert key == session.segmenter.key_for(to_rgb_uint8(_image(2)))
        # and image 3's embedding is on its way
        qtbot.waitUntil(lambda: len(runs) == before + 1, timeout=WAIT_MS)
    finally:
        handle.remove()


def test_stacks_prefetch_the_plane_in_view(viewer, opened, qtbot, tiny_sam, tmp_path):
    folder = tmp_path / "stacks"
    folder.mkdir()
    for i in range(2):
        stack = np.stack([_image(3 * i + z) for z in range(3)])
        tifffile.imwrite(folder / f"s{i}.tif", stack, photometric="minisblack")
    viewer.dims.ndisplay = 2
    widget, panel = opened(viewer, tiny_sam, folder)
    session = widget.session
    ref = session.current_slice
    assert ref is not None and len(ref.fixed) == 1
    qtbot.waitUntil(lambda: panel.prefetched_index == 1, timeout=WAIT_MS)
    seen = _arrivals(session)
    calls = session.segmenter.encoder_calls
    panel.next()
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    assert session.current_slice == ref
    assert seen[0][1] == calls
    plane = _image(3 + ref.fixed[0])
    assert seen[0][2] == session.segmenter.key_for(to_rgb_uint8(plane))


def test_moving_on_during_the_prefetch_waits_for_it(viewer, opened, qtbot, folder):
    slow = make_slow(build_tiny_sam(), seconds_per_block=0.4)
    widget, panel = opened(viewer, slow, folder)
    session = widget.session
    # image 1 by the session, and image 2 under way
    qtbot.waitUntil(lambda: session.segmenter.encoder_calls == 2, timeout=WAIT_MS)
    assert panel.prefetching
    seen = _arrivals(session)
    panel.next()
    assert session.embedding is None and panel.index == 1
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    _, calls, key = seen[0]
    assert calls == 2, "image 2 was embedded twice"
    assert key == session.segmenter.key_for(to_rgb_uint8(_image(2)))


def test_unreadable_and_other_size_images_are_skipped_with_a_message(
    viewer, opened, qtbot, tiny_sam, tmp_path
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    iio.imwrite(folder / "a1.png", _image(1))
    (folder / "a2.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    iio.imwrite(folder / "a3.png", _image(3))
    iio.imwrite(folder / "a4.png", _image(4, (50, 60)))
    widget, panel = opened(viewer, tiny_sam, folder)
    messages = []
    widget.session.problem.connect(messages.append)

    assert panel.next()
    assert panel.index == 2  # a2 skipped
    np.testing.assert_array_equal(panel.image_layer.data, _image(3))
    assert any(
        m.startswith("skipped: cannot read a2.png: damaged, or not a png image") for m in messages
    )
    assert panel.image_list.item(1).text().startswith("✗")
    assert "cannot read" in panel.image_list.item(1).toolTip()

    assert not panel.next()  # a4 has another size: skipped, and a3 stays
    assert panel.index == 2
    assert any(
        m.startswith("skipped: a4.png is 50x60; the images of this folder are 120x160")
        for m in messages
    )
    assert panel.folder.state(2).state == "done" and panel.folder.state(3).state == "skipped"
    assert "no readable image after" in panel.message_label.text()
    # the user keeps going: a3 is still annotated in the session
    wait_embedded(qtbot, widget)
    assert widget.session.image_layer is panel.image_layer


def test_a_failed_save_keeps_the_user_on_the_image(
    viewer, opened, qtbot, tiny_sam, folder, monkeypatch
):
    widget, panel = opened(viewer, tiny_sam, folder)
    add_point_and_wait(qtbot, widget, (80, 120))
    widget.session.commit()
    messages = []
    widget.session.problem.connect(messages.append)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", disk_full)
    assert not panel.next()
    assert panel.index == 0 and panel.labels_layer.data.max() == 1
    assert any("No space left" in m and "stay in the layer" in m for m in messages)
    monkeypatch.undo()
    assert panel.next() and panel.index == 1
    assert tifffile.imread(folder / "img_1_labels.tif").max() == 1


def test_model_change_cancels_the_prefetch(viewer, opened, qtbot, folder):
    slow = make_slow(build_tiny_sam(), seconds_per_block=0.4)
    widget, panel = opened(viewer, slow, folder)
    qtbot.waitUntil(lambda: panel.prefetching, timeout=WAIT_MS)
    worker = panel._prefetch.slot.worker
    widget.session.set_segmenter(PromptSegmenter(build_tiny_sam(seed=1), "other", name="other"))
    assert not panel.prefetching and worker.abort_requested
    assert panel.prefetched_index is None
    wait_embedded(qtbot, widget)
