"""Choosing the embedding store from a folder: the npz store or the zarr store.

Both keep working side by side and nothing is migrated: entries are cheap to recompute
and the two layouts differ. The npz store (:class:`~.store.EmbeddingStore`) stays the
default for one person on one machine; the zarr store (:class:`~.zarr_store.ZarrEmbeddingStore`)
is for stores shared by many writers (a Dask cluster, several commands, a team).
:func:`copy_entries` copies one store's entries into another where a store should move.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ..sam.embedding import EmbeddingKey
from .store import EmbeddingStore, default_store_dir
from .zarr_store import ZarrEmbeddingStore

StoreKind = Literal["auto", "npz", "zarr"]
AnyStore = EmbeddingStore | ZarrEmbeddingStore


def is_zarr_store_path(path: str | os.PathLike) -> bool:
    """A ``.zarr`` name, or a folder that already is a zarr store."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" or (path / "zarr.json").is_file()


def open_embedding_store(
    path: str | os.PathLike | None = None,
    *,
    kind: StoreKind = "auto",
    dtype: str = "float32",
    on_error: Literal["warn", "raise"] = "warn",
) -> AnyStore:
    """The store at ``path`` (default: the npz store in the user cache folder).

    ``kind="auto"``: the zarr store for a ``.zarr`` name or an existing zarr store, the npz
    store otherwise.
    """
    if path is None:
        path = default_store_dir()
    if kind == "zarr" or (kind == "auto" and is_zarr_store_path(path)):
        return ZarrEmbeddingStore(path, dtype=dtype, on_error=on_error)
    return EmbeddingStore(path, dtype=dtype, on_error=on_error)


def copy_entries(source: EmbeddingStore, target: AnyStore) -> int:
    """Copy every valid entry of an npz store into ``target``; returns how many were copied.

    Entries already in ``target`` and entries that do not verify are skipped.
    """
    import json

    import numpy as np

    copied = 0
    for path in source.entries():
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
            key = EmbeddingKey(meta["fingerprint"], meta["model_id"], meta.get("family", "sam"))
        except Exception:
            continue
        if key in target:
            continue
        embedding = source.load(key)
        if embedding is not None and target.save(embedding) is not None:
            copied += 1
    return copied
