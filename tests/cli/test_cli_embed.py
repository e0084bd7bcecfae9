"""``promptseg embed``: images, stacks and folders into the store, end to end."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.models.loading import load_model
from napari_promptseg.core.storage.store import STORE_ENV, EmbeddingStore
from napari_promptseg.core.workflows.stack import cached_planes, planes_of


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    # the default store folder must never be the user's real one in tests
    monkeypatch.setenv("NAPARI_PROMPTSEG_STORE", str(tmp_path / "default-store"))


def embed(path, checkpoint, store, *extra):
    return main(["embed", str(path), "--checkpoint", str(checkpoint), "--model-type", "vit_tiny",
                 "--store", str(store), *map(str, extra)])  # fmt: skip


def stored_engine(checkpoint, store):
    """A new engine for the same checkpoint, as napari would build it, reading the store."""
    model = load_model(checkpoint=checkpoint, model_type="vit_tiny")
    return PromptSegmenter.from_model(model, store=EmbeddingStore(store))


def test_embed_an_image_then_nothing_to_do(tmp_path, checkpoint, capsys):
    image = np.random.default_rng(0).integers(0, 4000, (90, 120)).astype(np.uint16)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image)
    store = tmp_path / "store"
    assert embed(path, checkpoint, store) == 0
    out = capsys.readouterr().out
    assert "cells.tif: 1 plane(s), 1 computed, 0 already stored" in out
    assert "1 embedding(s) computed, 0 already stored" in out
    assert EmbeddingStore(store).count == 1

    assert embed(path, checkpoint, store) == 0
    assert "0 embedding(s) computed, 1 already stored" in capsys.readouterr().out
    # napari with default contrast (the image's min/max) finds it without encoding
    engine = stored_engine(checkpoint, store)
    assert all(cached for _, cached in cached_planes(engine, planes_of(image)))


def test_embed_every_plane_of_a_stack_with_limits_and_float16(tmp_path, checkpoint, capsys):
    stack = np.random.default_rng(1).integers(0, 4000, (4, 40, 50)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    store = tmp_path / "store"
    code = embed(path, checkpoint, store, "--contrast-limits", 100, 3000, "--dtype", "float16")
    assert code == 0
    assert "stack.tif: 4 plane(s), 4 computed" in capsys.readouterr().out
    entries = list(EmbeddingStore(store).entries())
    assert len(entries) == 4
    with np.load(entries[0]) as data:
        assert data["features"].dtype == np.float16
    engine = stored_engine(checkpoint, store)
    planes = planes_of(stack, contrast_limits=(100, 3000))
    calls = []
    handle = engine.sam.image_encoder.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    try:
        for _, rgb in planes:
            engine.embed(rgb)
    finally:
        handle.remove()
    assert calls == []
    # other limits are other pixels: not in the store
    assert not any(cached for _, cached in cached_planes(engine, planes_of(stack)))


def test_embed_a_folder_skips_unreadable_files(tmp_path, checkpoint, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    tifffile.imwrite(folder / "a.tif", rng.integers(0, 255, (30, 40), dtype=np.uint8))
    tifffile.imwrite(folder / "c.tif", rng.integers(0, 255, (2, 30, 40), dtype=np.uint8))
    (folder / "b.tif").write_bytes(b"this is not a tif")
    (folder / ".hidden").write_text("ignored")
    (folder / "sub").mkdir()
    store = tmp_path / "store"
    assert embed(folder, checkpoint, store) == 1  # some files were skipped
    captured = capsys.readouterr()
    assert "skipped b.tif: cannot read image" in captured.err
    assert "1 file(s) skipped: b.tif" in captured.err
    assert "a.tif: 1 plane(s), 1 computed" in captured.out
    assert "c.tif: 2 plane(s), 2 computed" in captured.out
    assert "3 embedding(s) computed" in captured.out
    assert EmbeddingStore(store).count == 3


def test_store_from_the_environment(tmp_path, checkpoint, monkeypatch, capsys):
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.zeros((20, 20), np.uint8))
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env-store"))
    code = main(["embed", str(path), "--checkpoint", str(checkpoint), "--model-type", "vit_tiny"])
    assert code == 0
    assert EmbeddingStore(tmp_path / "env-store").count == 1


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "does not exist"),
        ("empty-folder", "holds no files"),
        ("bad-image", "cannot read image"),
        ("store-is-a-file", "is a file"),
    ],
)
def test_bad_input_is_named_and_nothing_written(tmp_path, checkpoint, capsys, setup, message):
    store = tmp_path / "store"
    path = tmp_path / "missing.tif"
    if setup == "empty-folder":
        path = tmp_path / "empty"
        path.mkdir()
    elif setup == "bad-image":
        path = tmp_path / "bad.tif"
        path.write_bytes(b"garbage")
    elif setup == "store-is-a-file":
        path = tmp_path / "ok.tif"
        tifffile.imwrite(path, np.zeros((20, 20), np.uint8))
        store.write_text("a file")
    assert embed(path, checkpoint, store) == 2
    assert message in capsys.readouterr().err
    assert not store.is_dir()
