from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_promptseg.core import (
    Cancelled,
    EmbeddingCache,
    ImageError,
    PromptSegmenter,
    to_rgb_uint8,
)
from napari_promptseg.core.sam.embedding import EmbeddingKey, ImageEmbedding


def count_encoder_runs(sam):
    """Count real image-encoder runs by hooking the patch embedding (its first layer)."""
    calls = []
    handle = sam.image_encoder.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_cache_hit_never_runs_the_encoder(segmenter, rgb_300x517):
    calls, handle = count_encoder_runs(segmenter.sam)
    try:
        first = segmenter.embed(rgb_300x517)
        second = segmenter.embed(rgb_300x517.copy())
    finally:
        handle.remove()
    assert second is first
    assert len(calls) == 1
    assert segmenter.encoder_calls == 1
    assert segmenter.cache.hits == 1


def test_key_changes_with_pixels_limits_and_model(tiny_sam):
    gray = np.random.default_rng(3).integers(0, 4000, (40, 60)).astype(np.uint16)
    a = PromptSegmenter(tiny_sam, "model-a")
    b = PromptSegmenter(tiny_sam, "model-b", cache=a.cache)
    keys = {
        a.key_for(to_rgb_uint8(gray)),
        a.key_for(to_rgb_uint8(gray, contrast_limits=(0, 2000))),
        b.key_for(to_rgb_uint8(gray)),
    }
    changed = gray.copy()
    changed[0, 0] = 3999 if changed[0, 0] < 3000 else 0
    keys.add(a.key_for(to_rgb_uint8(changed)))
    assert len(keys) == 4
    calls, handle = count_encoder_runs(tiny_sam)
    try:
        a.embed(to_rgb_uint8(gray))
        b.embed(to_rgb_uint8(gray))  # same pixels, other model: computed again
        a.embed(to_rgb_uint8(changed))  # one pixel changed: computed again
        a.embed(to_rgb_uint8(gray))  # back to the first: cached
    finally:
        handle.remove()
    assert len(calls) == 3


def _fake_embedding(index: int, nbytes: int = 4096) -> ImageEmbedding:
    return ImageEmbedding(
        features=torch.zeros(nbytes // 4),
        original_size=(1, 1),
        input_size=(1, 1),
        key=EmbeddingKey(f"img{index}", "m"),
    )


def test_lru_respects_byte_budget_and_recency():
    cache = EmbeddingCache(max_bytes=3 * 4096)
    for i in range(3):
        cache.put(_fake_embedding(i))
    assert cache.get(EmbeddingKey("img0", "m")) is not None  # 0 is now most recent
    cache.put(_fake_embedding(3))
    assert EmbeddingKey("img1", "m") not in cache  # least recently used went first
    assert EmbeddingKey("img0", "m") in cache
    assert cache.nbytes <= 3 * 4096
    assert len(cache) == 3


def test_single_embedding_larger_than_budget_is_still_kept():
    cache = EmbeddingCache(max_bytes=10)
    cache.put(_fake_embedding(0))
    assert len(cache) == 1


def test_progress_reports_every_block_and_cancel_stops(segmenter, rgb_300x517):
    seen = []
    segmenter.embed(rgb_300x517, progress=lambda done, total: seen.append((done, total)))
    total = len(segmenter.sam.image_encoder.blocks) + 2
    assert seen == [(i, total) for i in range(1, total + 1)]

    other = np.ascontiguousarray(rgb_300x517[::-1])
    with pytest.raises(Cancelled):
        segmenter.embed(other, should_cancel=lambda: True)
    assert segmenter.key_for(other) not in segmenter.cache


def test_embedding_records_geometry(segmenter, rgb_300x517):
    embedding = segmenter.embed(rgb_300x517)
    assert embedding.original_size == (300, 517)
    assert embedding.input_size == (594, 1024)
    assert tuple(embedding.features.shape) == (1, 32, 64, 64)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_encoder_input_is_checked(segmenter, bad):
    with pytest.raises(ImageError):
        segmenter.embed(bad)
