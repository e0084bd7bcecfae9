"""The npz embedding store with model families: SAM 2.1's high-resolution maps, format 2."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from napari_promptseg.core.sam.embedding import EmbeddingCache, EmbeddingKey, ImageEmbedding
from napari_promptseg.core.storage.store import FORMAT_VERSION, EmbeddingStore


def _sam2_like(fingerprint: str = "img0", family: str = "sam2.1") -> ImageEmbedding:
    generator = torch.Generator().manual_seed(0)
    return ImageEmbedding(
        features=torch.randn(1, 256, 64, 64, generator=generator),
        original_size=(300, 517),
        input_size=(1024, 1024),
        key=EmbeddingKey(fingerprint, "sam2.1_hiera_t@abc", family),
        high_res_features=(
            torch.randn(1, 32, 256, 256, generator=generator),
            torch.randn(1, 64, 128, 128, generator=generator),
        ),
    )


def test_high_res_maps_round_trip_bit_exact(tmp_path):
    store = EmbeddingStore(tmp_path)
    embedding = _sam2_like()
    store.save(embedding)
    loaded = store.load(embedding.key)
    assert loaded is not None
    assert torch.equal(loaded.features, embedding.features)
    assert len(loaded.high_res_features) == 2
    for ours, original in zip(loaded.high_res_features, embedding.high_res_features, strict=True):
        assert torch.equal(ours, original)
    assert (loaded.input_size, loaded.original_size) == ((1024, 1024), (300, 517))
    assert loaded.key.family == "sam2.1"


def test_float16_store_halves_the_high_res_maps_too(tmp_path):
    store = EmbeddingStore(tmp_path, dtype="float16")
    embedding = _sam2_like()
    path = store.save(embedding)
    loaded = store.load(embedding.key)
    assert loaded is not None and loaded.high_res_features[0].dtype == torch.float32
    torch.testing.assert_close(
        loaded.high_res_features[1], embedding.high_res_features[1], rtol=1e-3, atol=1e-3
    )
    assert path.stat().st_size < embedding.nbytes * 0.6


def test_entry_of_another_family_is_recomputed(tmp_path, caplog):
    store = EmbeddingStore(tmp_path)
    embedding = _sam2_like()
    store.save(embedding)
    other = EmbeddingKey(embedding.key.fingerprint, embedding.key.model_id, "sam")
    with caplog.at_level(logging.WARNING):
        assert store.load(other) is None
    assert "model family 'sam2.1', not 'sam'" in caplog.text


@pytest.mark.parametrize("damage", ["drop a map", "corrupt a map"])
def test_damaged_high_res_map_is_never_served(tmp_path, caplog, damage):
    store = EmbeddingStore(tmp_path)
    embedding = _sam2_like()
    path = store.save(embedding)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    if damage == "drop a map":
        del arrays["high_res_1"]
    else:
        arrays["high_res_0"] = arrays["high_res_0"].copy()
        arrays["high_res_0"][0, 0, 0, 0] += 1
    np.savez(path, **arrays)
    with caplog.at_level(logging.WARNING):
        assert store.load(embedding.key) is None
    assert "recomputed" in caplog.text


@pytest.mark.parametrize("old", [1, 2])
def test_older_entries_are_recomputed_not_mixed(tmp_path, caplog, old):
    """1: no family or high-res maps; 2: SAM 2.1 maps with the "no memory" embedding added."""
    store = EmbeddingStore(tmp_path)
    embedding = _sam2_like(family="sam")
    path = store.save(embedding)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"]))
    assert meta["format"] == FORMAT_VERSION == 3
    meta["format"] = old
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with caplog.at_level(logging.WARNING):
        assert store.load(embedding.key) is None
    assert f"format version {old}, expected 3" in caplog.text


def test_cache_budget_counts_the_high_res_maps():
    embedding = _sam2_like()
    assert embedding.nbytes == 4 * (256 * 64 * 64 + 32 * 256 * 256 + 64 * 128 * 128)  # 16 MiB
    cache = EmbeddingCache(max_bytes=40 << 20)  # room for two SAM 2.1 embeddings, not three
    for index in range(3):
        cache.put(_sam2_like(f"img{index}"))
    assert len(cache) == 2 and cache.nbytes == 2 * embedding.nbytes
