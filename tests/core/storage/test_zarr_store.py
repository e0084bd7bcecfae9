"""The zarr embedding store: exact round trips, atomic entries, concurrent writers, faults."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_promptseg.core import ExportError, PromptSegmenter
from napari_promptseg.core.sam.embedding import EmbeddingKey, ImageEmbedding
from napari_promptseg.core.storage import zarr_store
from napari_promptseg.core.storage.store import StoreError
from napari_promptseg.core.storage.zarr_store import ZarrEmbeddingStore

LOGGER = "napari_promptseg.core.storage.zarr_store"


@pytest.fixture
def store(tmp_path):
    return ZarrEmbeddingStore(tmp_path / "embeddings.zarr")


def fake_embedding(fingerprint="abc123", model_id="m", seed=0, channels=8) -> ImageEmbedding:
    rng = np.random.default_rng(seed)
    features = torch.from_numpy(rng.standard_normal((1, channels, 64, 64)).astype(np.float32))
    return ImageEmbedding(
        features=features,
        original_size=(300, 517),
        input_size=(595, 1024),
        key=EmbeddingKey(fingerprint, model_id),
    )


def chunk_files(entry: Path) -> list[Path]:
    return [p for p in entry.rglob("*") if p.is_file() and p.name != "zarr.json"]


def test_round_trip_is_exact_and_the_engine_reuses_it(tiny_sam, store, rgb_300x517):
    first = PromptSegmenter(tiny_sam, "tiny-test", store=store)
    embedding = first.embed(rgb_300x517)
    assert embedding.key in store and store.count == 1 and first.encoder_calls == 1
    loaded = store.load(embedding.key, device="cpu")
    assert torch.equal(loaded.features, embedding.features)
    assert loaded.features.dtype == embedding.features.dtype
    assert loaded.original_size == (300, 517) and loaded.input_size == embedding.input_size
    assert loaded.metadata["source"] == "store"
    # a new session (empty memory) on the same store: no encoder run, same masks
    again = PromptSegmenter(tiny_sam, "tiny-test", store=ZarrEmbeddingStore(store.root))
    reused = again.embed(rgb_300x517)
    assert again.encoder_calls == 0
    assert torch.equal(reused.features, embedding.features)
    assert store.nbytes >= embedding.features.numel() * 4


def test_float16_halves_the_arrays_and_restores_the_dtype(tmp_path):
    store = ZarrEmbeddingStore(tmp_path / "half.zarr", dtype="float16")
    embedding = fake_embedding()
    path = store.save(embedding)
    (chunk,) = chunk_files(path / "features")
    assert chunk.stat().st_size == embedding.features.numel() * 2
    loaded = store.load(embedding.key)
    assert loaded.features.dtype == torch.float32
    assert torch.allclose(loaded.features, embedding.features, atol=1e-2)


def test_the_layout_is_a_zarr_v3_hierarchy(store):
    import zarr

    embedding = fake_embedding()
    path = store.save(embedding)
    root = zarr.open_group(store.root, mode="r")
    assert root.attrs["napari_promptseg"]["kind"] == zarr_store.STORE_KIND
    model = root[path.parent.name]
    assert model.attrs["napari_promptseg"]["model"] == {"model_id": "m", "family": "sam"}
    entry = model[path.name]
    assert np.array_equal(entry["features"][...], embedding.features.numpy())
    assert entry.metadata.zarr_format == 3


# -- fields added by other model families ---------------------------------------------------


def test_sam2_maps_and_the_family_are_stored(store):
    base = fake_embedding()
    maps = (torch.rand(1, 4, 256, 256), torch.rand(1, 8, 128, 128))
    embedding = ImageEmbedding(
        features=base.features,
        original_size=base.original_size,
        input_size=(1024, 1024),
        key=EmbeddingKey("abc123", "m", family="sam2.1"),
        high_res_features=maps,
    )
    store.save(embedding)
    loaded = store.load(embedding.key)
    assert len(loaded.high_res_features) == 2 and loaded.input_size == (1024, 1024)
    assert all(torch.equal(a, b) for a, b in zip(loaded.high_res_features, maps, strict=True))
    assert loaded.nbytes == embedding.nbytes
    # the family is part of the address: the same fingerprint and model id under another
    # family is another entry
    other = EmbeddingKey("abc123", "m", family="sam")
    assert other not in store and store.load(other) is None
    # a SAM embedding has no extra maps and loads with none
    store.save(fake_embedding(fingerprint="plain"))
    assert store.load(EmbeddingKey("plain", "m")).high_res_features == ()


@dataclasses.dataclass(frozen=True)
class FutureKey(EmbeddingKey):
    resolution: int = 1024


@dataclasses.dataclass(eq=False)
class FutureEmbedding(ImageEmbedding):
    future_maps: tuple[torch.Tensor, ...] = ()


def test_fields_added_later_are_stored_generically(tmp_path):
    class FutureStore(ZarrEmbeddingStore):
        embedding_type = FutureEmbedding

    store = FutureStore(tmp_path / "future.zarr")
    base = fake_embedding()
    embedding = FutureEmbedding(
        features=base.features,
        original_size=base.original_size,
        input_size=base.input_size,
        key=FutureKey("abc123", "m", resolution=2048),
        future_maps=(torch.rand(1, 2, 8, 8),),
    )
    store.save(embedding)
    loaded = store.load(embedding.key)
    assert isinstance(loaded, FutureEmbedding)
    assert torch.equal(loaded.future_maps[0], embedding.future_maps[0])
    assert store.load(FutureKey("abc123", "m", resolution=1024)) is None
    # an entry with fields this version's ImageEmbedding lacks is not served to it
    plain = ZarrEmbeddingStore(store.root)
    plain_key = FutureKey("abc123", "m", resolution=2048)
    assert plain.load(plain_key) is None


# -- damaged entries --------------------------------------------------------------------------


def test_a_corrupted_entry_is_ignored_then_replaced(store, caplog):
    embedding = fake_embedding()
    path = store.save(embedding)
    (chunk,) = chunk_files(path / "features")
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.load(embedding.key) is None
    assert "checksum" in caplog.text
    store.save(embedding)  # replaces the damaged entry
    assert torch.equal(store.load(embedding.key).features, embedding.features)
    assert store.count == 1


@pytest.mark.parametrize("damage", ["truncate", "no-meta", "other-key"])
def test_unusable_entries_are_never_served(store, damage, caplog):
    embedding = fake_embedding()
    path = store.save(embedding)
    if damage == "truncate":
        (chunk,) = chunk_files(path / "features")
        chunk.write_bytes(chunk.read_bytes()[:50])
    elif damage == "no-meta":
        (path / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    else:  # an entry copied under another fingerprint
        shutil.copytree(path, path.parent / "other")
        path = path.parent / "other"
    key = EmbeddingKey(path.name, "m")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.load(key) is None
    assert "ignoring" in caplog.text


def test_refuses_keys_naming_other_paths_and_foreign_folders(tmp_path, store):
    with pytest.raises(StoreError, match="fingerprint"):
        store.path_for(EmbeddingKey("../x", "m"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "photo.png").write_bytes(b"x")
    with pytest.raises(StoreError, match="not empty"):
        ZarrEmbeddingStore(tmp_path / "busy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        ZarrEmbeddingStore(tmp_path / "file")


# -- interrupted writes, clearing -------------------------------------------------------------


def test_an_interrupted_save_leaves_no_entry_and_no_temporary(store, monkeypatch):
    def interrupted(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(zarr_store, "_fsync_tree", interrupted)
    embedding = fake_embedding()
    with pytest.raises(KeyboardInterrupt):
        store.save(embedding)
    assert embedding.key not in store and store.count == 0
    model_dir = store.path_for(embedding.key).parent
    assert sorted(p.name for p in model_dir.iterdir()) == ["zarr.json"]


def _die_while_writing(root: str) -> None:
    """Child process: start writing an entry and be killed after the first array."""
    store = ZarrEmbeddingStore(root)

    def killed(folder):
        os._exit(9)  # like SIGKILL: no cleanup runs

    zarr_store._fsync_tree = killed
    store.save(fake_embedding())


def test_a_writer_killed_mid_entry_leaves_nothing_readable(store):
    child = multiprocessing.get_context("fork").Process(
        target=_die_while_writing, args=(str(store.root),)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 9
    key = fake_embedding().key
    assert key not in store and store.load(key) is None and store.count == 0
    leftovers = [p.name for p in store.path_for(key).parent.iterdir() if p.name != "zarr.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".part-")
    store.save(fake_embedding())  # the next writer is not blocked by the left-over
    assert store.count == 1
    assert store.clear() == 1
    assert not store.path_for(key).parent.exists()  # temporaries went with the entries
    assert (store.root / "zarr.json").is_file()  # the root group stays


# -- concurrent writers -----------------------------------------------------------------------


def test_threads_racing_on_one_key_leave_one_valid_entry(store):
    embedding = fake_embedding()
    barrier = threading.Barrier(8)
    results, seen = [], []

    def write():
        barrier.wait()
        results.append(store.save(embedding))
        loaded = store.load(embedding.key)
        seen.append(loaded is not None and torch.equal(loaded.features, embedding.features))

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [store.path_for(embedding.key)] * 8
    assert all(seen) and store.count == 1
    folder = store.path_for(embedding.key).parent
    assert sorted(p.name for p in folder.iterdir()) == ["abc123", "zarr.json"]  # no temporaries


def _race(root: str, rounds: int, start, results) -> None:
    """Child process: save and load the same keys over and over; report every load."""
    store = ZarrEmbeddingStore(root)
    start.wait()
    ok = []
    for index in range(rounds):
        embedding = fake_embedding(fingerprint=f"key{index % 3}", seed=index % 3)
        store.save(embedding)
        loaded = store.load(embedding.key)
        ok.append(loaded is not None and torch.equal(loaded.features, embedding.features))
    results.put(ok)


def test_processes_racing_on_the_same_keys_never_see_a_partial_entry(store):
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=_race, args=(str(store.root), 12, start, results)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert [len(r) for r in reports] == [12] * 4 and all(all(r) for r in reports)
    assert store.count == 3
    model_dir = store.path_for(EmbeddingKey("key0", "m")).parent
    assert sorted(p.name for p in model_dir.iterdir()) == ["key0", "key1", "key2", "zarr.json"]


# -- read-only storage --------------------------------------------------------------------------


def test_a_read_only_store_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    # a read-only file system, for real (we run as root, so permissions would not stop us)
    readonly = ZarrEmbeddingStore("/proc/promptseg-embeddings.zarr", on_error="raise")
    with pytest.raises(ExportError, match=r"embedding store .* is not writable"):
        readonly.check_writable()
    with pytest.raises(ExportError, match="cannot write the embedding"):
        readonly.save(fake_embedding())
    warn = ZarrEmbeddingStore("/proc/promptseg-embeddings.zarr")
    assert warn.save(fake_embedding()) is None  # warns; the embedding stays in memory
    # and the error an existing but read-only mount gives
    store = ZarrEmbeddingStore(tmp_path / "ro.zarr", on_error="raise")

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "mkdir", refuse)
    with pytest.raises(ExportError, match="Read-only file system"):
        store.check_writable()
