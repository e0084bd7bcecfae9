"""napari reads the shared zarr store: planes a Dask cluster embedded open with no encoder run,
and the store panel takes a *.zarr folder as the zarr store."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from widgetkit import open_widget, sample_image

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.models.loading import load_model
from napari_promptseg.core.storage.zarr_store import ZarrEmbeddingStore
from napari_promptseg.core.workflows.distributed.recipe import ModelRecipe
from napari_promptseg.core.workflows.distributed.runner import run_items
from napari_promptseg.core.workflows.distributed.sources import ImageSource
from napari_promptseg.core.workflows.distributed.tasks import EmbedTask, embed_task

pytestmark = pytest.mark.slow  # starts a 2-worker cluster for the module


def test_a_plane_the_cluster_embedded_opens_with_no_encoder_run(
    make_napari_viewer, qtbot, dask_client, checkpoint, tmp_path
):
    image = sample_image()
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image)
    store = ZarrEmbeddingStore(tmp_path / "shared.zarr")
    recipe = ModelRecipe.create(checkpoint=checkpoint, model_type="vit_tiny", store=store)
    source = ImageSource.create(path).resolved()  # napari's default contrast for the file
    (outcome,) = run_items(embed_task, [EmbedTask(source)], recipe=recipe, client=dask_client)
    assert outcome.computed == 1

    model = load_model(checkpoint=checkpoint, model_type="vit_tiny")
    segmenter = PromptSegmenter.from_model(model, store=ZarrEmbeddingStore(store.root))
    viewer = make_napari_viewer()
    widget = open_widget(viewer, qtbot, model.sam, image=image, segmenter=segmenter)
    assert segmenter.encoder_calls == 0
    assert widget.session.embedding.metadata["source"] == "store"
    # the store panel shows the engine's zarr store as it is
    store_panel = _store_panel(widget)
    assert isinstance(store_panel.store, ZarrEmbeddingStore)
    assert store_panel.enabled_check.isChecked()


def test_the_store_panel_takes_a_zarr_folder(make_napari_viewer, qtbot, tiny_sam, tmp_path):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    store_panel = _store_panel(widget)
    store_panel.set_enabled(True)
    store_panel.set_folder(tmp_path / "team.zarr")
    assert isinstance(store_panel.store, ZarrEmbeddingStore)
    assert widget.session.segmenter.store is store_panel.store
    viewer.add_image(sample_image(), name="image")
    qtbot.waitUntil(lambda: widget.session.embedding is not None, timeout=30_000)
    qtbot.waitUntil(lambda: store_panel.store.count == 1, timeout=30_000)
    store_panel.update_size()
    assert store_panel.size_label.text().startswith("1 embeddings")


def _store_panel(widget):
    from napari_promptseg._qt.panels.store import StorePanel

    (panel,) = widget.findChildren(StorePanel)
    return panel


def test_a_large_plane_the_cluster_embedded_by_tiles_opens_with_no_encoder_run(
    make_napari_viewer, qtbot, dask_client, checkpoint, tmp_path
):
    from widgetkit import WAIT_MS, points_layer

    from napari_promptseg.cli import main

    rng = np.random.default_rng(9)
    image = (rng.random((2100, 700)) * 120).astype(np.uint8)
    image[1000:1100, 300:420] += 120  # an object across the first two tiles' overlap
    path = tmp_path / "slide.tif"
    tifffile.imwrite(path, image)
    store = tmp_path / "shared.zarr"
    address = dask_client.scheduler.address
    args = ["embed", path, "--checkpoint", checkpoint, "--model-type", "vit_tiny", "--store", store]
    assert main([str(a) for a in [*args, "--scheduler", address]]) == 0

    model = load_model(checkpoint=checkpoint, model_type="vit_tiny")
    segmenter = PromptSegmenter.from_model(model, store=ZarrEmbeddingStore(store))
    viewer = make_napari_viewer()
    widget = open_widget(viewer, qtbot, model.sam, add_image=False, segmenter=segmenter)
    session = widget.session
    viewer.add_image(image, name="slide")
    qtbot.waitUntil(lambda: session.tiled is not None, timeout=WAIT_MS)  # a large plane: tiles
    points_layer(viewer).add(np.array([1050.0, 360.0]))
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    assert session.result.masks.shape[1:] == (2100, 700)
    assert segmenter.encoder_calls == 0  # every tile the prompt needed came from the store
    assert len(session.result.tiles) >= 1
