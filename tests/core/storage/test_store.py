"""The on-disk embedding store: exact round trips, no stale or broken entry ever served."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from napari_promptseg.core import ExportError, Prompts, PromptSegmenter, to_rgb_uint8
from napari_promptseg.core.sam.embedding import EmbeddingKey
from napari_promptseg.core.storage.store import (
    STORE_ENV,
    EmbeddingStore,
    StoreError,
    default_store_dir,
)

STORE_LOGGER = "napari_promptseg.core.storage.store"


def count_encoder_runs(sam):
    """Count real image-encoder runs by hooking the patch embedding (its first layer)."""
    calls = []
    handle = sam.image_encoder.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


@pytest.fixture
def store(tmp_path):
    return EmbeddingStore(tmp_path / "store")


@pytest.fixture
def gray():
    return np.random.default_rng(3).integers(0, 4000, (60, 90)).astype(np.uint16)


def fresh(tiny_sam, store, model_id="tiny-test"):
    """A new engine with an empty memory cache: what a new napari session would have."""
    return PromptSegmenter(tiny_sam, model_id, store=EmbeddingStore(store.root, dtype=store.dtype))


def embed_counting(segmenter, rgb):
    calls, handle = count_encoder_runs(segmenter.sam)
    try:
        embedding = segmenter.embed(rgb)
    finally:
        handle.remove()
    return embedding, len(calls)


def test_round_trip_equals_the_original_tensor(tiny_sam, store, rgb_300x517):
    first = PromptSegmenter(tiny_sam, "tiny-test", store=store).embed(rgb_300x517)
    assert first.key in store and store.count == 1
    loaded = store.load(first.key, device="cpu")
    assert torch.equal(loaded.features, first.features)
    assert loaded.features.dtype == first.features.dtype
    assert loaded.original_size == (300, 517) and loaded.input_size == (594, 1024)
    assert loaded.key == first.key
    assert store.nbytes > first.nbytes  # 4 bytes per value, plus a small header


def test_fresh_engine_reuses_the_store_without_running_the_encoder(tiny_sam, store, rgb_300x517):
    original, runs = embed_counting(
        PromptSegmenter(tiny_sam, "tiny-test", store=store), rgb_300x517
    )
    assert runs == 1
    again = fresh(tiny_sam, store)
    reloaded, runs = embed_counting(again, rgb_300x517)
    assert runs == 0 and again.encoder_calls == 0
    prompts = Prompts.from_points([[120, 200]])
    np.testing.assert_array_equal(
        again.predict(reloaded, prompts).masks,
        PromptSegmenter(tiny_sam, "x").predict(original, prompts).masks,
    )


def test_changed_pixel_contrast_or_model_is_recomputed(tiny_sam, store, gray):
    PromptSegmenter(tiny_sam, "model-a", store=store).embed(to_rgb_uint8(gray))
    changed = gray.copy()
    changed[10, 10] = 0 if changed[10, 10] > 2000 else 3999
    cases = [
        ("model-a", to_rgb_uint8(changed)),  # one pixel
        ("model-a", to_rgb_uint8(gray, contrast_limits=(0, 2000))),  # other contrast
        ("model-b", to_rgb_uint8(gray)),  # other model, same pixels
    ]
    for model_id, rgb in cases:
        _, runs = embed_counting(fresh(tiny_sam, store, model_id), rgb)
        assert runs == 1, (model_id, "should not reuse a stale embedding")
    _, runs = embed_counting(fresh(tiny_sam, store, "model-a"), to_rgb_uint8(gray))
    assert runs == 0
    assert store.count == 4


def _entry_file(store):
    (path,) = list(store.entries())
    return path


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_corrupted_entry_is_recomputed_and_replaced(tiny_sam, store, rgb_300x517, caplog, damage):
    first = PromptSegmenter(tiny_sam, "tiny-test", store=store).embed(rgb_300x517)
    path = _entry_file(store)
    data = bytearray(path.read_bytes())
    if damage == "flip":  # inside the features, past the zip and npy headers
        for offset in range(len(data) // 2, len(data) // 2 + 64):
            data[offset] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"not an npz file at all" * 100)
    path.write_bytes(bytes(data))

    again = fresh(tiny_sam, store)
    with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
        assert again.store.load(first.key) is None
        embedding, runs = embed_counting(again, rgb_300x517)
    assert runs == 1
    assert torch.equal(embedding.features, first.features)
    assert any(str(path) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    # the recomputed entry replaced the broken one
    reloaded = fresh(tiny_sam, store).store.load(first.key)
    assert reloaded is not None and torch.equal(reloaded.features, first.features)


def _rewrite_entry(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        features, meta = data["features"], json.loads(str(data["meta"]))
    features = changes.pop("features", features)
    meta.update(changes)
    with open(path, "wb") as file:
        np.savez(file, features=features, meta=np.array(json.dumps(meta)))


@pytest.mark.parametrize(
    "changes",
    [
        {"format": 999},
        {"model_id": "someone-else"},
        {"fingerprint": "0" * 32},
        {"checksum": "0" * 32},
        {"shape": [1, 2, 3, 4]},
        {"original_size": [0, 5]},
        {"features": np.zeros((1, 32, 64, 64), np.float32)},  # valid file, wrong content
    ],
    ids=["version", "model", "fingerprint", "checksum", "shape", "size", "content"],
)
def test_mismatched_entry_is_never_served(tiny_sam, store, rgb_300x517, caplog, changes):
    first = PromptSegmenter(tiny_sam, "tiny-test", store=store).embed(rgb_300x517)
    _rewrite_entry(_entry_file(store), **changes)
    with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
        assert fresh(tiny_sam, store).store.load(first.key) is None
    assert "recomputed" in caplog.text


def test_interrupted_save_leaves_no_entry(tiny_sam, store, rgb_300x517, monkeypatch):
    embedding = PromptSegmenter(tiny_sam, "tiny-test").embed(rgb_300x517)

    def crash_midway(file, **arrays):
        file.write(b"PK\x03\x04 half an entry")
        raise KeyboardInterrupt  # the user pressed Ctrl+C during the write

    monkeypatch.setattr(np, "savez", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        store.save(embedding)
    assert embedding.key not in store
    assert store.count == 0
    folder = store.path_for(embedding.key).parent
    assert [p.name for p in folder.iterdir()] == ["model.json"]  # no temporary file left
    assert store.load(embedding.key) is None


def test_full_disk_warns_or_raises_and_leaves_nothing(
    tiny_sam, tmp_path, rgb_300x517, monkeypatch, caplog
):
    embedding = PromptSegmenter(tiny_sam, "tiny-test").embed(rgb_300x517)

    def disk_full(file, **arrays):
        file.write(b"PK\x03\x04")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    lenient = EmbeddingStore(tmp_path / "s")
    with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
        assert lenient.save(embedding) is None
    assert "No space left" in caplog.text
    strict = EmbeddingStore(tmp_path / "s", on_error="raise")
    with pytest.raises(ExportError, match="No space left"):
        strict.save(embedding)
    assert lenient.count == 0 and embedding.key not in lenient
    # an engine whose store cannot write still returns the embedding (kept in memory)
    segmenter = PromptSegmenter(tiny_sam, "tiny-test", store=lenient)
    assert torch.equal(segmenter.embed(rgb_300x517).features, embedding.features)


def test_left_over_temporary_file_is_not_an_entry(store, tiny_sam, rgb_300x517):
    embedding = PromptSegmenter(tiny_sam, "tiny-test").embed(rgb_300x517)
    path = store.path_for(embedding.key)
    path.parent.mkdir(parents=True)
    temp = path.parent / f".{path.name}.abc123.part"  # what a killed process leaves behind
    temp.write_bytes(b"PK\x03\x04 partial")
    assert store.count == 0 and embedding.key not in store
    assert store.load(embedding.key) is None
    store.clear()
    assert not temp.exists()


@pytest.mark.parametrize(
    "fingerprint", ["..", "../../etc/passwd", "a/b", "/abs", "x.npz", "", "a" * 200, "a\x00b"]
)
def test_keys_that_name_other_paths_are_refused(store, fingerprint):
    key = EmbeddingKey(fingerprint, "tiny-test")
    with pytest.raises(StoreError, match="refusing"):
        store.path_for(key)
    with pytest.raises(StoreError):
        store.load(key)
    assert key not in store


def test_model_ids_are_hashed_into_safe_folder_names(store, tiny_sam, rgb_300x517):
    nasty = "../../outside/..\\x:y"
    segmenter = PromptSegmenter(tiny_sam, nasty, store=store)
    embedding = segmenter.embed(rgb_300x517)
    path = store.path_for(embedding.key)
    assert path.parent.parent == store.root
    assert path.parent.name.startswith("model-") and ".." not in path.parent.name
    assert json.loads((path.parent / "model.json").read_text())["model_id"] == nasty
    assert not (store.root.parent / "outside").exists()


def test_symlink_out_of_the_root_is_refused(tmp_path, store, tiny_sam, rgb_300x517):
    key = PromptSegmenter(tiny_sam, "tiny-test").key_for(rgb_300x517)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    store.root.mkdir()
    os.symlink(outside, store.path_for(key).parent)
    with pytest.raises(StoreError, match="outside the store"):
        store.path_for(key)


def test_clear_removes_only_what_the_store_wrote(tiny_sam, store, rgb_300x517, gray):
    segmenter = PromptSegmenter(tiny_sam, "tiny-test", store=store)
    segmenter.embed(rgb_300x517)
    segmenter.embed(to_rgb_uint8(gray))
    mine = store.root / "notes.txt"
    mine.write_text("keep me")
    model_folder = next(store.entries()).parent
    also_mine = model_folder / "my-file.dat"
    also_mine.write_text("keep me too")
    assert store.count == 2
    assert store.clear() == 2
    assert store.count == 0 and store.nbytes == 0
    assert mine.read_text() == "keep me" and also_mine.read_text() == "keep me too"
    assert sorted(p.name for p in model_folder.iterdir()) == ["my-file.dat"]
    assert store.root.is_dir()


def test_default_location_and_environment_override(tmp_path, monkeypatch):
    monkeypatch.delenv(STORE_ENV, raising=False)
    default = default_store_dir()
    assert default.name == "embeddings" and "napari-promptseg" in str(default)
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env-store"))
    assert EmbeddingStore().root == tmp_path / "env-store"
    assert EmbeddingStore(tmp_path / "explicit").root == tmp_path / "explicit"


def test_bad_store_settings_are_named(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        EmbeddingStore(a_file)
    with pytest.raises(StoreError, match="dtype"):
        EmbeddingStore(tmp_path, dtype="int8")


def test_float16_halves_the_entry_and_changes_few_mask_pixels(tiny_sam, tmp_path, rgb_300x517):
    exact = EmbeddingStore(tmp_path / "f32")
    half = EmbeddingStore(tmp_path / "f16", dtype="float16")
    original = PromptSegmenter(tiny_sam, "tiny-test").embed(rgb_300x517)
    exact.save(original)
    half.save(original)
    assert half.nbytes < 0.55 * exact.nbytes
    from_half = half.load(original.key)
    from_exact = exact.load(original.key)
    assert from_half.features.dtype == torch.float32  # restored for the decoder
    assert from_half.metadata["stored_dtype"] == "float16"
    assert 0 < (from_half.features - original.features).abs().max() < 1e-2

    segmenter = PromptSegmenter(tiny_sam, "tiny-test")
    rng = np.random.default_rng(3)
    differing = total = 0
    for _ in range(10):
        prompts = Prompts.from_points([[rng.uniform(0, 300), rng.uniform(0, 517)]])
        reference = segmenter.predict(original, prompts, multimask=True)
        np.testing.assert_array_equal(
            segmenter.predict(from_exact, prompts, multimask=True).masks, reference.masks
        )
        masks = segmenter.predict(from_half, prompts, multimask=True).masks
        differing += int((masks != reference.masks).sum())
        total += masks.size
    # measured: about 3e-5 of the mask pixels flip (tiny model); float32 stays bit-exact
    assert differing / total < 1e-3
