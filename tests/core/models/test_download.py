"""Downloading, caching and verifying checkpoints, against a local HTTP server."""

from __future__ import annotations

import builtins
import hashlib
import os
import socket
from pathlib import Path

import pytest
import torch
from loopback import LoopbackServer
from registrykit import private_registry

from napari_promptseg.core import models
from napari_promptseg.core.errors import Cancelled, CheckpointNotAvailable, ModelError
from napari_promptseg.core.models import download
from napari_promptseg.testing import (
    TINY_MODEL_TYPE,
    build_tiny_sam,
    save_tiny_checkpoint,
)


@pytest.fixture
def served(tmp_path):
    """Serve a tiny-SAM checkpoint; yields (server, file path, sha256 hex)."""
    root = tmp_path / "www"
    root.mkdir()
    path = save_tiny_checkpoint(root / "tiny.pth")
    server = LoopbackServer(root)
    yield server, path, hashlib.sha256(path.read_bytes()).hexdigest()
    server.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, set through the environment variable."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(download.CACHE_ENV, str(folder))
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.delenv(download.OFFLINE_ENV, raising=False)
    return folder


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so test models do not leak into other tests."""
    private_registry(monkeypatch)
    return models.MODELS


def _register(served, *, hash_hex=None, size=True, name="tiny_test", filename="tiny_test.pth"):
    server, path, sha = served
    return models.register_model(
        models.ModelSpec(
            name=name,
            model_type=TINY_MODEL_TYPE,
            url=f"{server.url}/tiny.pth",
            hash=f"sha256:{hash_hex or sha}",
            filename=filename,
            size_bytes=path.stat().st_size if size else None,
            description="tiny test model",
            source="tests",
        )
    )


def _closed_port_url() -> str:
    with socket.socket() as sock:  # bind then release: nothing listens there afterwards
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tiny.pth"


def test_download_verifies_and_loads(served, cache, registry):
    spec = _register(served)
    assert not models.is_cached("tiny_test")

    path = models.fetch_checkpoint("tiny_test", progress=False)

    assert path == cache / "tiny_test.pth" == models.checkpoint_path("tiny_test")
    assert path.read_bytes() == served[1].read_bytes()
    assert models.is_cached("tiny_test")
    # only the checkpoint and its verification record: no temporary files left behind
    assert sorted(p.name for p in cache.iterdir()) == [
        "tiny_test.pth",
        "tiny_test.pth.verified.json",
    ]

    loaded = models.load_model("tiny_test", progress=False)
    assert loaded.model_type == TINY_MODEL_TYPE
    assert loaded.checkpoint == path
    assert loaded.model_id == f"tiny_test@{served[2][:16]}"
    assert loaded.device == torch.device("cpu")
    assert not loaded.sam.training
    expected = build_tiny_sam(seed=0).state_dict()
    actual = loaded.sam.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert spec.name in [row["name"] for row in models.list_models()]


def test_progress_callback_gets_exact_bytes(served, cache, registry):
    _register(served)
    calls = []
    models.fetch_checkpoint("tiny_test", progress=lambda done, total: calls.append((done, total)))
    size = served[1].stat().st_size
    assert calls[-1] == (size, size)
    done = [d for d, _ in calls]
    assert done == sorted(done) and all(total == size for _, total in calls)


def test_tqdm_progress_bar(served, cache, registry, capsys):
    _register(served)
    models.fetch_checkpoint("tiny_test", progress=True)
    assert "%" in capsys.readouterr().err  # tqdm draws on stderr


def test_cancel_from_callback_leaves_nothing(served, cache, registry):
    _register(served)

    def cancel(done, total):
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        models.fetch_checkpoint("tiny_test", progress=cancel)
    assert not any(cache.iterdir())


def test_wrong_hash_leaves_nothing_in_cache(served, cache, registry):
    _register(served, hash_hex="0" * 64)
    with pytest.raises(ModelError) as info:
        models.fetch_checkpoint("tiny_test", progress=False)
    message = str(info.value)
    assert "sha256:" + "0" * 64 in message  # expected
    assert "sha256:" + served[2] in message  # actual
    assert f"{served[0].url}/tiny.pth" in message
    assert not isinstance(info.value, CheckpointNotAvailable)
    assert list(cache.iterdir()) == []  # not even a temporary file
    assert not models.is_cached("tiny_test")


def test_server_down_says_what_to_put_where(served, cache, registry, monkeypatch):
    spec = _register(served)
    url = _closed_port_url()
    with pytest.raises(CheckpointNotAvailable) as info:
        models.fetch_checkpoint("tiny_test", progress=False, url=url)
    message = str(info.value)
    assert url in message
    assert spec.filename in message
    assert str(cache) in message
    assert download.CACHE_ENV in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_http_error_is_not_available(served, cache, registry):
    _register(served)
    url = f"{served[0].url}/missing.pth"
    with pytest.raises(CheckpointNotAvailable, match="HTTP 404") as info:
        models.fetch_checkpoint("tiny_test", progress=False, url=url)
    assert url in str(info.value)


def test_offline_without_file_never_touches_network(served, cache, registry):
    spec = _register(served)
    with pytest.raises(CheckpointNotAvailable, match="offline") as info:
        models.load_model("tiny_test", offline=True)
    assert spec.url in str(info.value) and str(cache / spec.filename) in str(info.value)
    assert served[0].requests == []


def test_offline_env_var(served, cache, registry, monkeypatch):
    _register(served)
    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    with pytest.raises(CheckpointNotAvailable):
        models.fetch_checkpoint("tiny_test", progress=False)
    assert served[0].requests == []


def test_offline_with_file_dropped_in_folder(served, cache, registry):
    spec = _register(served)
    served[0].stop()  # no network at all
    cache.mkdir()
    (cache / spec.filename).write_bytes(served[1].read_bytes())

    loaded = models.load_model("tiny_test", offline=True)

    assert loaded.checkpoint == cache / spec.filename
    assert (cache / (spec.filename + download.SIDECAR_SUFFIX)).exists()


def test_cached_file_is_hashed_once(served, cache, registry, monkeypatch):
    _register(served)
    models.fetch_checkpoint("tiny_test", progress=False)
    served[0].stop()
    hashed = []
    real_file_hash = download.file_hash
    monkeypatch.setattr(
        download, "file_hash", lambda *a, **k: hashed.append(a) or real_file_hash(*a, **k)
    )
    for _ in range(3):
        models.fetch_checkpoint("tiny_test", progress=False)
    assert hashed == []  # the download's verification was remembered

    path = cache / "tiny_test.pth"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    models.fetch_checkpoint("tiny_test", progress=False)
    assert len(hashed) == 1  # touched: checked again, then remembered again
    models.fetch_checkpoint("tiny_test", progress=False)
    assert len(hashed) == 1


def test_corrupt_cached_file_offline_and_online(served, cache, registry):
    spec = _register(served)
    path = models.fetch_checkpoint("tiny_test", progress=False)
    good = path.read_bytes()
    path.write_bytes(b"\0" * len(good))  # same size, different content, new mtime

    with pytest.raises(CheckpointNotAvailable) as info:
        models.fetch_checkpoint("tiny_test", offline=True)
    assert spec.hash in str(info.value) and str(path) in str(info.value)

    models.fetch_checkpoint("tiny_test", progress=False)  # online: downloaded again
    assert path.read_bytes() == good


def test_truncated_cached_file_is_not_cached(served, cache, registry):
    spec = _register(served)
    cache.mkdir()
    (cache / spec.filename).write_bytes(served[1].read_bytes()[:100])
    assert not models.is_cached("tiny_test")
    with pytest.raises(CheckpointNotAvailable, match="100 bytes"):
        models.fetch_checkpoint("tiny_test", offline=True)


def test_mirror_env_var(served, cache, registry, monkeypatch):
    server, path, sha = served
    models.register_model(
        models.ModelSpec(
            name="mirrored",
            model_type=TINY_MODEL_TYPE,
            url="https://example.invalid/tiny.pth",  # never contacted
            hash=f"sha256:{sha}",
            filename="tiny.pth",  # the mirror serves files under their cache file name
            size_bytes=None,
            description="",
            source="tests",
        )
    )
    monkeypatch.setenv(download.MIRROR_ENV, server.url + "/")
    assert models.fetch_checkpoint("mirrored", progress=False).read_bytes() == path.read_bytes()
    assert server.requests == ["/tiny.pth"]


def test_non_http_url_refused(served, cache, registry):
    _register(served)
    with pytest.raises(ModelError, match="http"):
        models.fetch_checkpoint("tiny_test", url="file:///etc/passwd")


def test_unknown_name_lists_known_models():
    with pytest.raises(ModelError) as info:
        models.fetch_checkpoint("vit_x")
    assert "vit_x" in str(info.value)
    for name in ("vit_b", "vit_l", "vit_h", "vit_b_lm", "vit_b_em_organelles"):
        assert name in str(info.value)


def test_xxh128_needs_xxhash(served, cache, registry, monkeypatch):
    server = served[0]
    models.register_model(
        models.ModelSpec(
            name="xx",
            model_type=TINY_MODEL_TYPE,
            url=f"{server.url}/tiny.pth",
            hash="xxh128:" + "0" * 32,
            filename="xx.pth",
            size_bytes=None,
            description="",
            source="tests",
        )
    )
    import pooch  # noqa: F401  (pooch probes for xxhash once, at import: not while blocked)

    real_import = builtins.__import__

    def no_xxhash(name, *args, **kwargs):
        if name == "xxhash":
            raise ImportError("no xxhash")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_xxhash)
    with pytest.raises(ModelError, match="pip install xxhash"):
        models.fetch_checkpoint("xx", progress=False)
    assert server.requests == []  # refused before downloading what cannot be verified


def test_xxh128_verification(served, cache, registry):
    xxhash = pytest.importorskip("xxhash")
    server, path, _ = served
    digest = xxhash.xxh128(path.read_bytes()).hexdigest()
    models.register_model(
        models.ModelSpec(
            name="xx",
            model_type=TINY_MODEL_TYPE,
            url=f"{server.url}/tiny.pth",
            hash=f"xxh128:{digest}",
            filename="xx.pth",
            size_bytes=None,
            description="",
            source="tests",
        )
    )
    assert models.fetch_checkpoint("xx", progress=False).read_bytes() == path.read_bytes()


def test_default_cache_dir_is_per_user(monkeypatch):
    import platformdirs

    monkeypatch.delenv(download.CACHE_ENV, raising=False)
    expected = Path(platformdirs.user_cache_dir("napari-promptseg", appauthor=False)) / "models"
    assert models.cache_dir() == expected
    monkeypatch.setenv(download.CACHE_ENV, "~/somewhere")
    assert models.cache_dir() == Path("~/somewhere").expanduser()


def test_registry_entries_are_well_formed():
    filenames = [spec.filename for spec in models.MODELS.values()]
    assert len(set(filenames)) == len(filenames)
    assert models.DEFAULT_MODEL == "vit_b"
    for name, spec in models.MODELS.items():
        assert spec.name == name
        assert spec.model_type in models.BUILDERS
        if spec.folder is None:  # downloaded
            assert spec.url.startswith("https://")
        else:  # shipped in the package: no URL, and the file is there with its pinned size
            shipped = spec.folder / spec.filename
            assert spec.url == "" and shipped.stat().st_size == spec.size_bytes
            assert spec.hash == "sha256:" + hashlib.sha256(shipped.read_bytes()).hexdigest()
        algorithm, digest = download.split_hash(spec.hash)
        assert (algorithm, len(digest)) in (("sha256", 64), ("xxh128", 32))
        assert spec.description and spec.source
    # the official checkpoints' published sha256 and sizes
    assert models.MODELS["vit_b"].hash.endswith(
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"
    )
    assert models.MODELS["vit_h"].size_bytes == 2_564_550_879


def test_register_model_validates(registry):
    good = models.MODELS["vit_b"]
    fields = {k: getattr(good, k) for k in good.__dataclass_fields__}
    with pytest.raises(ModelError, match="already registered"):
        models.register_model(good)
    with pytest.raises(ModelError, match="unknown model type"):
        models.register_model(models.ModelSpec(**{**fields, "name": "a", "model_type": "vit_z"}))
    with pytest.raises(ModelError, match="hash"):
        models.register_model(models.ModelSpec(**{**fields, "name": "a", "hash": "abc"}))
    with pytest.raises(ModelError, match="file name"):
        models.register_model(models.ModelSpec(**{**fields, "name": "a", "filename": "../x.pth"}))
    with pytest.raises(ModelError, match="used by"):
        models.register_model(models.ModelSpec(**{**fields, "name": "a"}))
