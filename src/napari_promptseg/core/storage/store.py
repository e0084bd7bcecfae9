"""Image embeddings kept on disk, so an image is encoded once, not once per session.

:class:`EmbeddingStore` is the ``store`` hook of :class:`~napari_promptseg.core.PromptSegmenter`:
the engine asks it for an embedding before running the encoder and hands it every new one.

Layout (``root`` defaults to ``platformdirs.user_cache_dir("napari-promptseg")/embeddings``,
or ``$NAPARI_PROMPTSEG_STORE``)::

    root/model-<hash of model_id>/model.json        the model id in clear, for people
    root/model-<hash of model_id>/<fingerprint>.npz one entry per embedded image

Entries are content-addressed by :class:`~napari_promptseg.core.sam.embedding.EmbeddingKey`: the
fingerprint of the exact uint8 RGB pixels SAM saw (so contrast limits and channel choice are
in it) and the model id. A changed image, contrast setting or model gives another file name,
so it can never be served a stale embedding.

Why ``.npz`` (numpy's zip of ``.npy`` arrays) and not zarr: an entry is always read whole
(4 MiB for vit_b), so chunking buys nothing, while one file per entry makes writing atomic
with a single rename (a zarr group is a folder of files, and replacing a folder is not
atomic). The format is numpy's own, readable without pickle (``allow_pickle=False``) and
the same across numpy versions, whereas zarr 2 cannot read what zarr 3 writes by default.

Each entry holds ``features``, for SAM 2.1 also ``high_res_0`` and ``high_res_1`` (its two
high-resolution maps, :attr:`ImageEmbedding.high_res_features`), and ``meta`` (JSON: format
version, model family and id, fingerprint, original and input size, stored dtype, the dtype
to restore, shape, blake2b checksum of the features bytes, and shape and checksum of each
high-resolution map). An entry whose version, model, family, fingerprint, shape or checksum does not
match, or that cannot be read at all (truncated, corrupted), is treated as missing: a
warning is logged, the engine recomputes the embedding and the new entry replaces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch

from ..errors import ExportError, PromptSegError
from ..sam.embedding import EmbeddingKey, ImageEmbedding
from ..user_folders import user_folder
from .files import atomic_write

log = logging.getLogger(__name__)

# 2: the model family and SAM 2.1's high-resolution maps (version-1 entries are recomputed)
# 3: SAM 2.1's ``features`` are the backbone's, without the "no memory" embedding (older
#    entries are recomputed)
FORMAT_VERSION = 3
STORE_ENV = "NAPARI_PROMPTSEG_STORE"
ENTRY_SUFFIX = ".npz"
MODEL_FILE = "model.json"
STORED_DTYPES = ("float32", "float16")

# File names built from keys: a fingerprint must be a plain token (no dots, no separators),
# model ids are hashed. Nothing from a key can name a path outside the root.
_TOKEN = re.compile(r"[0-9A-Za-z_-]{1,128}")
_MODEL_DIR = re.compile(r"model-[0-9a-f]{20}")
_ENTRY = re.compile(r"[0-9A-Za-z_-]{1,128}\.npz")
_TEMP = re.compile(r"\.(?:[0-9A-Za-z_-]{1,128}\.npz|model\.json)\..+\.part")


class StoreError(PromptSegError, ValueError):
    """A store location or key that cannot be used (not a folder, a key naming another path)."""


def default_store_dir() -> Path:
    """``$NAPARI_PROMPTSEG_STORE`` if set, else ``<user cache dir>/napari-promptseg/embeddings``."""
    return user_folder(STORE_ENV, "cache", "embeddings")


def model_dir_name(model_id: str) -> str:
    """The folder of one model's entries: a hash, so any model id is a safe name."""
    if not isinstance(model_id, str) or not model_id:
        raise StoreError(f"a model id must be a non-empty string; got {model_id!r}.")
    return "model-" + hashlib.blake2b(model_id.encode("utf-8"), digest_size=10).hexdigest()


def features_checksum(array: np.ndarray) -> str:
    """blake2b of the raw bytes of a C-contiguous array."""
    return hashlib.blake2b(np.ascontiguousarray(array).data, digest_size=16).hexdigest()


class EmbeddingStore:
    """A folder of :class:`ImageEmbedding` files keyed by image content and model.

    Parameters
    ----------
    root
        The folder (created on the first save). Default: :func:`default_store_dir`.
    dtype
        How features are written: ``"float32"`` (default; reloaded embeddings are bit-exact,
        so masks equal upstream ``SamPredictor``) or ``"float16"`` (half the disk, masks may
        differ in a few pixels; see docs/embeddings.md). Loaded features are always restored
        to the dtype the model produced.
    on_error
        What :meth:`save` does when the disk refuses the write (full, read-only): ``"warn"``
        logs a warning and returns None (the embedding stays usable in memory), ``"raise"``
        raises :class:`ExportError`.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        dtype: str = "float32",
        on_error: Literal["warn", "raise"] = "warn",
    ) -> None:
        self._root = Path(root).expanduser() if root is not None else default_store_dir()
        if self._root.exists() and not self._root.is_dir():
            raise StoreError(f"the embedding store {self._root} is a file, not a folder.")
        if dtype not in STORED_DTYPES:
            raise StoreError(
                f"store dtype must be one of {', '.join(STORED_DTYPES)}; got {dtype!r}."
            )
        if on_error not in ("warn", "raise"):
            raise StoreError(f"on_error must be 'warn' or 'raise'; got {on_error!r}.")
        self.dtype = dtype
        self.on_error = on_error

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self._root)!r}, dtype={self.dtype!r})"

    # -- paths ----------------------------------------------------------------------------

    def path_for(self, key: EmbeddingKey) -> Path:
        """The entry file of ``key`` (it may not exist).

        Raises
        ------
        StoreError
            The fingerprint is not a plain token (``..``, ``/``...) or the path would
            leave the root (e.g. through a symbolic link).
        """
        fingerprint = key.fingerprint
        if not isinstance(fingerprint, str) or not _TOKEN.fullmatch(fingerprint):
            raise StoreError(
                f"refusing embedding key {fingerprint!r}: a fingerprint must be 1-128 letters, "
                "digits, '-' or '_'."
            )
        path = self._root / model_dir_name(key.model_id) / f"{fingerprint}{ENTRY_SUFFIX}"
        root = self._root.resolve()
        if not path.resolve().is_relative_to(root):
            raise StoreError(f"refusing {path}: it resolves outside the store {root}.")
        return path

    def __contains__(self, key: object) -> bool:
        """Whether an entry file for ``key`` exists (cheap; :meth:`load` validates it)."""
        if not isinstance(key, EmbeddingKey):
            return False
        try:
            return self.path_for(key).is_file()
        except StoreError:
            return False

    # -- load and save --------------------------------------------------------------------

    def load(
        self, key: EmbeddingKey, device: torch.device | str | None = None
    ) -> ImageEmbedding | None:
        """The stored embedding of ``key`` on ``device``, or None if missing or unusable.

        An entry that cannot be read or does not match ``key`` is never returned; a warning
        names it and why.
        """
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                features = data["features"]
                count = len(meta.get("high_res", [])) if isinstance(meta, dict) else 0
                high_res = [data[f"high_res_{index}"] for index in range(count)]
        except Exception as error:  # any decoder failure means the same: unreadable
            log.warning("ignoring unreadable embedding %s (%s); it will be recomputed", path, error)
            return None
        problem = _check_entry(meta, features, key) or _check_high_res(meta, high_res)
        if problem is not None:
            log.warning("ignoring embedding %s: %s; it will be recomputed", path, problem)
            return None
        dtype = getattr(torch, meta["restore_dtype"])
        target = device or "cpu"
        return ImageEmbedding(
            features=torch.from_numpy(features).to(device=target, dtype=dtype),
            original_size=tuple(meta["original_size"]),
            input_size=tuple(meta["input_size"]),
            key=key,
            metadata={"source": "store", "stored_dtype": meta["dtype"], "path": str(path)},
            high_res_features=tuple(
                torch.from_numpy(array).to(device=target, dtype=dtype) for array in high_res
            ),
        )

    def save(self, embedding: ImageEmbedding) -> Path | None:
        """Write ``embedding`` atomically; returns its path, or None if the disk refused it.

        The entry appears under its final name only once completely written and flushed, so
        an interrupted or failed save leaves no entry (and no temporary file).
        """
        path = self.path_for(embedding.key)
        restore_dtype = str(embedding.features.dtype).removeprefix("torch.")
        array = self._stored_array(embedding.features, path)
        high_res = [self._stored_array(tensor, path) for tensor in embedding.high_res_features]
        meta = {
            "format": FORMAT_VERSION,
            "family": embedding.key.family,
            "model_id": embedding.key.model_id,
            "fingerprint": embedding.key.fingerprint,
            "original_size": [int(v) for v in embedding.original_size],
            "input_size": [int(v) for v in embedding.input_size],
            "dtype": str(array.dtype),
            "restore_dtype": restore_dtype,
            "shape": [int(v) for v in array.shape],
            "checksum": features_checksum(array),
            "high_res": [
                {
                    "dtype": str(item.dtype),
                    "shape": [int(v) for v in item.shape],
                    "checksum": features_checksum(item),
                }
                for item in high_res
            ],
        }
        arrays: dict[str, Any] = {"features": array, "meta": np.array(json.dumps(meta))}
        arrays.update({f"high_res_{index}": item for index, item in enumerate(high_res)})

        def write(file: IO[bytes]) -> None:
            np.savez(file, **arrays)

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_model_file(path.parent, embedding.key.model_id)
            return atomic_write(path, write)
        except (OSError, ExportError) as error:
            if self.on_error == "raise":
                if isinstance(error, ExportError):
                    raise
                raise ExportError(f"cannot write the embedding to {path}: {error}") from error
            log.warning("could not keep the embedding on disk (%s); it stays in memory", error)
            return None

    def _stored_array(self, tensor: torch.Tensor, path: Path) -> np.ndarray:
        """``tensor`` as a C-contiguous float32 array, or float16 if asked and in range."""
        array = np.ascontiguousarray(tensor.detach().to("cpu").float().numpy())
        if self.dtype == "float16":
            half = array.astype(np.float16)
            if np.isfinite(half).all():
                return half
            # values beyond float16's range: keep this entry exact rather than inf
            log.warning("embedding %s exceeds float16 range; stored as float32", path.name)
        return array

    def _write_model_file(self, folder: Path, model_id: str) -> None:
        target = folder / MODEL_FILE
        if target.is_file():
            return
        payload = json.dumps({"format": FORMAT_VERSION, "model_id": model_id}).encode()
        atomic_write(target, lambda file: file.write(payload))

    # -- inventory ------------------------------------------------------------------------

    def entries(self) -> Iterator[Path]:
        """Every entry file the store wrote (valid or not), in no particular order."""
        for folder in self._model_dirs():
            for item in folder.iterdir():
                if _ENTRY.fullmatch(item.name) and item.is_file() and not item.is_symlink():
                    yield item

    @property
    def count(self) -> int:
        """How many entries are on disk."""
        return sum(1 for _ in self.entries())

    @property
    def nbytes(self) -> int:
        """Total size of the entry files in bytes."""
        total = 0
        for item in self.entries():
            with contextlib.suppress(OSError):  # removed meanwhile by another process
                total += item.stat().st_size
        return total

    def clear(self) -> int:
        """Delete every entry, model file and left-over temporary file the store wrote.

        Other files in the folder are left alone, and so is the root folder itself.
        Returns the number of entries removed.
        """
        removed = 0
        for folder in self._model_dirs():
            for item in folder.iterdir():
                name = item.name
                ours = _ENTRY.fullmatch(name) or _TEMP.fullmatch(name) or name == MODEL_FILE
                if not ours or item.is_symlink() or not item.is_file():
                    continue
                try:
                    item.unlink()
                except FileNotFoundError:
                    continue
                removed += bool(_ENTRY.fullmatch(name))
            with contextlib.suppress(OSError):  # only succeeds when nothing else is in it
                folder.rmdir()
        return removed

    def _model_dirs(self) -> Iterator[Path]:
        if not self._root.is_dir():
            return
        for folder in self._root.iterdir():
            if _MODEL_DIR.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink():
                yield folder


def _check_entry(meta: object, features: np.ndarray, key: EmbeddingKey) -> str | None:
    """Why an entry's contents cannot be served for ``key``, or None if they can."""
    if not isinstance(meta, dict):
        return "no metadata"
    if meta.get("format") != FORMAT_VERSION:
        return f"format version {meta.get('format')!r}, expected {FORMAT_VERSION}"
    if meta.get("model_id") != key.model_id:
        return f"written for model {meta.get('model_id')!r}, not {key.model_id!r}"
    if meta.get("family") != key.family:
        return f"written for model family {meta.get('family')!r}, not {key.family!r}"
    if meta.get("fingerprint") != key.fingerprint:
        return f"written for image {meta.get('fingerprint')!r}, not {key.fingerprint!r}"
    if str(features.dtype) != meta.get("dtype") or meta.get("dtype") not in STORED_DTYPES:
        return f"features are {features.dtype}, metadata says {meta.get('dtype')!r}"
    if list(features.shape) != meta.get("shape") or features.ndim != 4:
        return f"features have shape {features.shape}, metadata says {meta.get('shape')!r}"
    if meta.get("restore_dtype") not in ("float32", "float16", "bfloat16", "float64"):
        return f"unknown dtype {meta.get('restore_dtype')!r}"
    for name in ("original_size", "input_size"):
        size = meta.get(name)
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(v, int) and v > 0 for v in size)
        ):
            return f"bad {name} {size!r}"
    if features_checksum(features) != meta.get("checksum"):
        return "checksum mismatch (the file is corrupted)"
    return None


def _check_high_res(meta: dict, arrays: list[np.ndarray]) -> str | None:
    """Why an entry's high-resolution maps (SAM 2.1) cannot be served, or None if they can."""
    described = meta.get("high_res")
    if not isinstance(described, list) or len(described) != len(arrays):
        return "high-resolution maps do not match their metadata"
    for index, (info, array) in enumerate(zip(described, arrays, strict=True)):
        if not isinstance(info, dict) or array.ndim != 4:
            return f"high-resolution map {index} is malformed"
        if str(array.dtype) != info.get("dtype") or list(array.shape) != info.get("shape"):
            return f"high-resolution map {index} is {array.dtype} {array.shape}, not as described"
        if features_checksum(array) != info.get("checksum"):
            return f"checksum mismatch in high-resolution map {index} (the file is corrupted)"
    return None
