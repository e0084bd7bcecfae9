"""Fault matrix, models (core, no Qt). Unknown names, wrong types, truncated files, unsafe
pickles and hash mismatches of downloads are in tests/core/models/test_models.py and
tests/core/test_download.py; this adds the cases around them (loopback server only)."""

from __future__ import annotations

import hashlib
import os
import pickle

import pytest
import torch
from faultkit import register_served_model
from loopback import LoopbackServer

from napari_promptseg.core import models
from napari_promptseg.core.errors import CheckpointNotAvailable, ModelError
from napari_promptseg.testing import build_tiny_sam, save_tiny_checkpoint


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    path = save_tiny_checkpoint(root / "tiny.pth")
    server = LoopbackServer(root)
    yield server, path
    server.stop()


def _cache_files():
    folder = models.cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelError, match=r"unknown model 'vit_q'; known models: vit_b, vit_l"):
        models.load_model("vit_q")


def test_unknown_model_type_for_a_file(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "tiny.pth")
    with pytest.raises(ModelError, match="unknown model type 'vit_z'"):
        models.load_model(checkpoint=path, model_type="vit_z")


@pytest.mark.parametrize("wrong", ["vit_b", "vit_l", "vit_h"])
def test_wrong_model_type_for_the_checkpoint(tmp_path, wrong):
    path = save_tiny_checkpoint(tmp_path / "tiny.pth")
    with pytest.raises(
        ModelError, match=rf"does not fit model type '{wrong}' \(looks like vit_tiny\)"
    ):
        models.load_model(checkpoint=path, model_type=wrong)


@pytest.mark.parametrize("keep", [0, 1, 64, 2000, -1], ids=["empty", "1B", "64B", "2kB", "-1B"])
def test_truncated_checkpoint_at_any_length(tmp_path, keep):
    whole = save_tiny_checkpoint(tmp_path / "tiny.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(whole[:keep])  # a negative keep drops bytes from the end
    with pytest.raises(ModelError, match="truncated or not a PyTorch checkpoint") as info:
        models.load_model(checkpoint=path, model_type="vit_tiny")
    assert str(path) in str(info.value)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as stream:  # a hand-made file with no tensors at all
        pickle.dump(_RunsCode(marker), stream, protocol=2)
    with pytest.raises(ModelError, match="refused as unsafe") as info:
        models.load_model(checkpoint=path, model_type="vit_tiny")
    assert "posix.system" in str(info.value) or "os.system" in str(info.value)
    assert not marker.exists()


def test_hash_mismatch_on_download_leaves_the_cache_empty(served, monkeypatch):
    server, path = served
    register_served_model(monkeypatch, server, path, sha256="0" * 64)
    with pytest.raises(ModelError, match=r"has hash sha256:[0-9a-f]{64}, expected sha256:0{64}"):
        models.load_model("tiny_served", progress=False)
    assert server.requests == ["/tiny.pth"]
    assert _cache_files() == []


def test_served_file_truncated_in_transit_is_not_cached(served, monkeypatch):
    server, path = served
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    register_served_model(monkeypatch, server, path, sha256=sha)
    path.write_bytes(path.read_bytes()[:5000])  # the server now sends half a file
    with pytest.raises(ModelError, match="expected sha256:" + sha):
        models.load_model("tiny_served", progress=False)
    assert _cache_files() == []


def test_no_network_and_no_cached_file(served, monkeypatch):
    server, path = served
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    register_served_model(monkeypatch, server, path, sha256=sha)
    server.stop()  # the network is gone (connection refused)
    with pytest.raises(CheckpointNotAvailable) as info:
        models.load_model("tiny_served", progress=False)
    message = str(info.value)
    assert "downloading it failed" in message
    assert f"{server.url}/tiny.pth" in message
    assert str(models.cache_dir() / "tiny_served.pth") in message
    assert _cache_files() == []


def test_offline_flag_never_connects(served, monkeypatch):
    server, path = served
    register_served_model(monkeypatch, server, path, sha256="a" * 64)
    with pytest.raises(CheckpointNotAvailable, match="offline mode is on"):
        models.load_model("tiny_served", offline=True, progress=False)
    assert server.requests == []


def test_switching_models_between_embeddings_keeps_keys_apart(rgb_300x517):
    """A second model never gets the first one's embedding (the napari side of switching
    mid-embedding is in test_gui_models.py)."""
    from napari_promptseg.core import EmbeddingCache, PromptSegmenter

    cache = EmbeddingCache()
    first = PromptSegmenter(build_tiny_sam(seed=0), "tiny-a", cache=cache)
    second = PromptSegmenter(build_tiny_sam(seed=1), "tiny-b", cache=cache)
    a = first.embed(rgb_300x517)
    b = second.embed(rgb_300x517)
    assert a.key != b.key and second.encoder_calls == 1
    assert not torch.equal(a.features, b.features)
