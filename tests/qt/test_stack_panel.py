"""Precomputing every slice (StackPanel) and keeping embeddings on disk (StorePanel)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from widgetkit import WAIT_MS, open_widget

from napari_promptseg._qt.panels.stack import StackPanel
from napari_promptseg._qt.panels.store import StorePanel
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.storage.store import EmbeddingStore
from napari_promptseg.testing import build_tiny_sam, make_slow


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    # the default store folder must never be the user's real one in tests
    monkeypatch.setenv("NAPARI_PROMPTSEG_STORE", str(tmp_path / "default-store"))


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def make_stack(shape=(5, 64, 80)) -> np.ndarray:
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[: shape[1], : shape[2]]
    stack = rng.integers(20, 60, shape).astype(np.uint8)
    for z in range(shape[0]):
        r, c = 20 + 5 * z, 30 + 3 * z
        stack[z][(rows - r) ** 2 + (cols - c) ** 2 < 15**2] += 150
    return stack


def find_panel(widget, kind):
    (panel,) = [p for p in widget.panels if isinstance(p, kind)]
    return panel


def count_encoder_runs(sam):
    calls = []
    handle = sam.image_encoder.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def show_slice(qtbot, viewer, session, z: int) -> None:
    viewer.dims.set_current_step(0, z)
    qtbot.waitUntil(
        lambda: (
            session.current_slice is not None
            and session.current_slice.fixed == (z,)
            and session.embedding is not None
        ),
        timeout=WAIT_MS,
    )


def test_precompute_then_browsing_the_stack_runs_no_encoder(viewer, qtbot, tiny_sam):
    stack = make_stack()
    widget = open_widget(viewer, qtbot, tiny_sam, image=stack)
    session, panel = widget.session, find_panel(widget, StackPanel)
    start = session.current_slice.fixed[0]
    qtbot.waitUntil(lambda: panel.cached_count == (1, 5), timeout=WAIT_MS)

    qtbot.mouseClick(panel.precompute_button, Qt.LeftButton)
    assert panel.running and panel.cancel_button.isEnabled()
    assert not panel.precompute_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.running, timeout=WAIT_MS)

    assert (panel.summary.total, panel.summary.computed, panel.summary.reused) == (5, 4, 1)
    assert len(session.cache) == 5
    qtbot.waitUntil(lambda: panel.cached_count == (5, 5), timeout=WAIT_MS)
    assert panel.cached_label.text() == "5 / 5 slices embedded"
    assert panel.precompute_button.isEnabled() and not panel.cancel_button.isEnabled()

    calls, handle = count_encoder_runs(tiny_sam)
    try:
        for z in [*range(5), start]:
            show_slice(qtbot, viewer, session, z)
            expected = session.segmenter.key_for(np.repeat(stack[z][:, :, None], 3, axis=2))
            assert session.embedding.key == expected
    finally:
        handle.remove()
    assert calls == [], "every slice should come from the precomputed embeddings"


def test_cancel_stops_midway_and_keeps_what_is_done(viewer, qtbot):
    slow = make_slow(build_tiny_sam(), seconds_per_block=0.5)  # about 1 s per slice
    widget = open_widget(viewer, qtbot, slow, image=make_stack())
    session, panel = widget.session, find_panel(widget, StackPanel)
    messages = []
    session.status.connect(messages.append)
    calls, handle = count_encoder_runs(slow)
    try:
        qtbot.mouseClick(panel.precompute_button, Qt.LeftButton)
        # the encoder has started on the second slice it computes: cancel in the middle
        qtbot.waitUntil(lambda: panel.computed >= 2, timeout=WAIT_MS)
        qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
        qtbot.waitUntil(lambda: not panel.running, timeout=WAIT_MS)
        runs_at_stop = len(calls)
        qtbot.wait(1500)  # long enough for another slice, were it still running
        assert len(calls) == runs_at_stop == 2
    finally:
        handle.remove()
    assert panel.summary is None  # it did not run to the end
    assert any("precompute cancelled" in m for m in messages)
    # the slice shown + the one finished before Cancel; the interrupted one is not cached
    qtbot.waitUntil(lambda: panel.cached_count == (2, 5), timeout=WAIT_MS)
    assert len(session.cache) == 2
    assert panel.precompute_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel._progress is None  # the napari progress bar was closed


def test_store_panel_gives_every_model_the_store_and_clears_it(viewer, qtbot, tiny_sam, tmp_path):
    widget = open_widget(viewer, qtbot, tiny_sam, image=make_stack((3, 64, 80)))
    session, panel = widget.session, find_panel(widget, StorePanel)
    assert not panel.enabled_check.isChecked() and session.segmenter.store is None
    assert panel.folder == tmp_path / "default-store"  # $NAPARI_PROMPTSEG_STORE
    folder = tmp_path / "embeddings"
    panel.set_folder(folder)
    panel.enabled_check.click()
    store = session.segmenter.store
    assert isinstance(store, EmbeddingStore) and store.root == folder

    # a model change keeps the store, and the new model's embedding is written to it
    session.set_segmenter(PromptSegmenter(tiny_sam, "tiny-other", name="other"))
    assert session.segmenter.store is store
    qtbot.waitUntil(lambda: session.embedding is not None and store.count == 1, timeout=WAIT_MS)
    panel.update_size()
    assert panel.size_label.text().startswith("1 embeddings")

    # precompute fills the store; a "new session" (empty memory) reloads without encoding
    stack_panel = find_panel(widget, StackPanel)
    stack_panel.precompute()
    qtbot.waitUntil(lambda: not stack_panel.running, timeout=WAIT_MS)
    assert store.count == 3
    session.cache.clear()
    calls, handle = count_encoder_runs(tiny_sam)
    try:
        for z in range(3):
            show_slice(qtbot, viewer, session, z)
    finally:
        handle.remove()
    assert calls == []
    assert session.embedding.metadata.get("source") == "store"

    assert panel.clear() == 3
    assert store.count == 0 and panel.size_label.text().startswith("0 embeddings")
    panel.enabled_check.click()
    assert session.segmenter.store is None


def test_store_panel_shows_a_store_the_engine_came_with(viewer, qtbot, tiny_sam, tmp_path):
    widget = open_widget(viewer, qtbot, tiny_sam)
    panel = find_panel(widget, StorePanel)
    own = EmbeddingStore(tmp_path / "own")
    widget.session.set_segmenter(PromptSegmenter(tiny_sam, "tiny-test", store=own))
    assert panel.enabled_check.isChecked() and panel.store is own
    assert panel.folder_label.text() == str(own.root)


def test_slices_embedded_by_the_cli_are_found_in_napari(viewer, qtbot, tmp_path):
    """``promptseg embed`` overnight, then napari with default contrast: no waiting."""
    import tifffile

    from napari_promptseg.cli import main
    from napari_promptseg.core.models.loading import load_model
    from napari_promptseg.testing import save_tiny_checkpoint

    stack = (make_stack((3, 64, 80)).astype(np.uint16) * 13) + 500  # not uint8: limits matter
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    store = tmp_path / "store"
    assert main(["embed", str(path), "--checkpoint", str(checkpoint), "--model-type",
                 "vit_tiny", "--store", str(store)]) == 0  # fmt: skip

    engine = PromptSegmenter.from_model(load_model(checkpoint=checkpoint, model_type="vit_tiny"))
    calls, handle = count_encoder_runs(engine.sam)
    try:
        widget = open_widget(viewer, qtbot, engine.sam, add_image=False)
        session = widget.session
        store_panel = find_panel(widget, StorePanel)
        store_panel.set_folder(store)
        store_panel.enabled_check.click()
        session.set_segmenter(engine)
        viewer.add_image(tifffile.imread(path), name="stack")  # napari's default contrast
        for z in range(3):
            show_slice(qtbot, viewer, session, z)
            assert session.embedding.metadata.get("source") == "store"
        stack_panel = find_panel(widget, StackPanel)
        qtbot.waitUntil(lambda: stack_panel.cached_count == (3, 3), timeout=WAIT_MS)
    finally:
        handle.remove()
    assert calls == []
