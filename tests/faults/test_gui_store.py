"""Fault matrix, embedding store in napari: a corrupted entry on disk is never served; the
session recomputes the embedding, replaces the entry and carries on. (Store internals:
tests/core/test_store.py.)"""

from __future__ import annotations

import logging

import torch
from faultkit import commit_one, watch_problems
from widgetkit import open_widget, sample_image

from napari_promptseg.core import PromptSegmenter, to_rgb_uint8
from napari_promptseg.core.storage.store import EmbeddingStore


def test_corrupted_store_entry_is_recomputed(make_napari_viewer, qtbot, tiny_sam, tmp_path, caplog):
    store = EmbeddingStore(tmp_path / "store")
    first = PromptSegmenter(tiny_sam, "tiny-test", store=store).embed(to_rgb_uint8(sample_image()))
    (entry,) = list(store.entries())
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a crash mid-copy

    segmenter = PromptSegmenter(tiny_sam, "tiny-test", store=store, name="tiny")
    viewer = make_napari_viewer()
    with caplog.at_level(logging.WARNING, logger="napari_promptseg.core.storage.store"):
        widget = open_widget(viewer, qtbot, tiny_sam, segmenter=segmenter)
    problems = watch_problems(widget)
    session = widget.session
    assert segmenter.encoder_calls == 1  # recomputed, not served from the broken file
    assert torch.equal(session.embedding.features, first.features)
    assert any(str(entry) in r.getMessage() for r in caplog.records)
    reloaded = store.load(first.key)
    assert reloaded is not None and torch.equal(reloaded.features, first.features)
    row = commit_one(qtbot, widget)
    assert row["id"] == 1 and problems == []
