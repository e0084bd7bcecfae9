"""An embedding store many processes and machines can share: zarr v3 on a shared filesystem.

:class:`ZarrEmbeddingStore` has the interface of the npz :class:`~.store.EmbeddingStore`
(``load(key, device=)``, ``save(embedding)``, ``in``, ``count``, ``nbytes``, ``clear``), so
:class:`~napari_promptseg.core.PromptSegmenter`, ``promptseg embed`` and the napari session
take either. Use it where several writers meet: the workers of a Dask cluster, two
commands at once, a cluster filling the store while annotators read it.

Layout (a valid zarr v3 hierarchy any zarr reader can browse)::

    root/zarr.json                                 group; attrs name the format version
    root/model-<hash>/zarr.json                    one group per model identity (the key
                                                   without its fingerprint: model id, family)
    root/model-<hash>/<fingerprint>/zarr.json      one group per embedded image; attrs hold the
                                                   key, sizes, dtypes and checksums
    root/model-<hash>/<fingerprint>/features/      (1, C, 64, 64), one chunk, uncompressed
    root/model-<hash>/<fingerprint>/high_res_features.0/ ...   further maps, if the model has them

Content-addressed like the npz store: the fingerprint of the exact uint8 pixels SAM saw
(contrast and channel choice are in it), the model identity and the format version.

Writes are atomic and safe with concurrent writers of the same key: an entry is written
completely into a hidden temporary group beside its final place (``.part-<fingerprint>-
<random>``), its files are flushed to disk, and the folder is renamed to its final name in
one step. A directory rename onto an existing, non-empty directory fails, so when two
writers race, the first rename wins and the loser removes its copy (content-addressed:
both hold the same embedding). A valid entry is never replaced; a damaged one is moved
aside atomically and replaced. Readers never see half an entry: an entry is either absent
or complete, and its checksums are verified on every read. Only POSIX rename semantics are
needed, which local disks and shared filesystems (NFS, Lustre, GPFS, CephFS) give; object
stores (S3) are not supported for writing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ExportError
from ..sam.embedding import EmbeddingKey, ImageEmbedding
from .embedding_codec import (
    STORED_DTYPES,
    CodecError,
    check_array,
    check_meta,
    decode_embedding,
    encode_embedding,
    model_identity,
)
from .store import StoreError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STORE_KIND = "napari-promptseg embedding store"
ATTRS_KEY = "napari_promptseg"
ZARR_JSON = "zarr.json"

_TOKEN = re.compile(r"[0-9A-Za-z_-]{1,128}")
_MODEL_DIR = re.compile(r"model-[0-9a-f]{20}")
_TEMP = re.compile(r"\.(?:part|trash)-[0-9A-Za-z_-]{1,128}-[0-9a-f]{32}")


def model_group_name(key: EmbeddingKey) -> str:
    """The group of one model identity: a hash, so any model id is a safe name."""
    identity = model_identity(key)
    return "model-" + hashlib.blake2b(identity.encode("utf-8"), digest_size=10).hexdigest()


class ZarrEmbeddingStore:
    """A zarr v3 group of :class:`ImageEmbedding` entries keyed by image content and model.

    Parameters
    ----------
    root
        The store's folder, e.g. ``/shared/project/embeddings.zarr`` (created on the first
        save). It must be empty, or a store this class wrote.
    dtype
        ``"float32"`` (default; reloaded embeddings are bit-exact) or ``"float16"`` (half
        the disk; masks may differ in a few pixels). Loaded tensors get the model's dtype.
    on_error
        What :meth:`save` does when the disk refuses the write (read-only, full):
        ``"warn"`` logs and returns None, ``"raise"`` raises :class:`ExportError`.
    """

    #: the class :meth:`load` builds (a subclass with more fields, in tests)
    embedding_type: type[ImageEmbedding] = ImageEmbedding

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        dtype: str = "float32",
        on_error: Literal["warn", "raise"] = "warn",
    ) -> None:
        self._root = Path(root).expanduser()
        if self._root.exists() and not self._root.is_dir():
            raise StoreError(f"the embedding store {self._root} is a file, not a folder.")
        if dtype not in STORED_DTYPES:
            raise StoreError(
                f"store dtype must be one of {', '.join(STORED_DTYPES)}; got {dtype!r}."
            )
        if on_error not in ("warn", "raise"):
            raise StoreError(f"on_error must be 'warn' or 'raise'; got {on_error!r}.")
        self._check_root_kind()
        self.dtype = dtype
        self.on_error = on_error

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"ZarrEmbeddingStore({str(self._root)!r}, dtype={self.dtype!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # sent to Dask workers as its settings, never as open handles
        return (_rebuild, (str(self._root), self.dtype, self.on_error))

    # -- paths ----------------------------------------------------------------------------

    def path_for(self, key: EmbeddingKey) -> Path:
        """The entry folder of ``key`` (it may not exist).

        Raises
        ------
        StoreError
            The fingerprint is not a plain token, or the path would leave the root.
        """
        fingerprint = key.fingerprint
        if not isinstance(fingerprint, str) or not _TOKEN.fullmatch(fingerprint):
            raise StoreError(
                f"refusing embedding key {fingerprint!r}: a fingerprint must be 1-128 letters, "
                "digits, '-' or '_'."
            )
        path = self._root / model_group_name(key) / fingerprint
        root = self._root.resolve()
        if not path.resolve().is_relative_to(root):
            raise StoreError(f"refusing {path}: it resolves outside the store {root}.")
        return path

    def __contains__(self, key: object) -> bool:
        """Whether a complete entry for ``key`` exists (cheap; :meth:`load` verifies it)."""
        if not isinstance(key, EmbeddingKey):
            return False
        try:
            return (self.path_for(key) / ZARR_JSON).is_file()
        except StoreError:
            return False

    # -- load and save --------------------------------------------------------------------

    def load(
        self, key: EmbeddingKey, device: torch.device | str | None = None
    ) -> ImageEmbedding | None:
        """The stored embedding of ``key`` on ``device``, or None if missing or unusable.

        A damaged entry, or one written for another key or format, is never returned: a
        warning names it and why, and the caller recomputes (and :meth:`save` replaces it).
        """
        path = self.path_for(key)
        if not (path / ZARR_JSON).is_file():
            return None
        try:
            arrays, meta = _read_entry(path, key)
            embedding = decode_embedding(
                arrays,
                meta,
                key,
                device=device,
                metadata={"source": "store", "stored_dtype": self._stored_dtype(meta)},
                cls=self.embedding_type,
            )
        except _Unusable as problem:
            log.warning("ignoring embedding %s: %s; it will be recomputed", path, problem)
            return None
        except CodecError as problem:
            log.warning("ignoring embedding %s: %s; it will be recomputed", path, problem)
            return None
        except Exception as error:  # any reader failure means the same: unreadable
            log.warning("ignoring unreadable embedding %s (%s); it will be recomputed", path, error)
            return None
        embedding.metadata["path"] = str(path)
        return embedding

    def save(self, embedding: ImageEmbedding) -> Path | None:
        """Write ``embedding`` atomically; returns its folder, or None if the disk refused it.

        If another writer stored the same key first, its entry is kept (same content) and
        this one dropped. A damaged entry under the key is replaced.
        """
        path = self.path_for(embedding.key)
        try:
            arrays, meta = encode_embedding(embedding, self.dtype)
        except CodecError as error:
            raise StoreError(f"cannot store this embedding: {error}") from None
        try:
            self._ensure_groups(path.parent, embedding.key)
            temp = path.parent / f".part-{path.name}-{uuid.uuid4().hex}"
            try:
                _write_entry(temp, arrays, meta)
                _publish(temp, path, embedding.key)
            finally:
                if temp.exists():
                    shutil.rmtree(temp, ignore_errors=True)
            return path
        except OSError as error:
            failure = ExportError(f"cannot write the embedding to {path}: {_reason(error)}.")
            if self.on_error == "raise":
                raise failure from error
            log.warning("could not keep the embedding on disk (%s); it stays in memory", failure)
            return None

    def check_writable(self) -> None:
        """Prove, before any slow work, that entries can be written here; writes nothing.

        A folder is created and removed again in the store (or, before the first save, in
        the nearest existing folder above it).

        Raises
        ------
        ExportError
            The filesystem is read-only or the folder is not writable.
        """
        target = self._root
        while not target.exists() and target != target.parent:
            target = target.parent
        probe = target / f".part-probe-{uuid.uuid4().hex}"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError as error:
            raise ExportError(
                f"the embedding store {self._root} is not writable: {_reason(error)}."
            ) from error

    # -- inventory ------------------------------------------------------------------------

    def entries(self) -> Iterator[Path]:
        """Every complete entry folder (valid or not), in no particular order."""
        for folder in self._model_dirs():
            for item in folder.iterdir():
                if (
                    _TOKEN.fullmatch(item.name)
                    and not item.is_symlink()
                    and (item / ZARR_JSON).is_file()
                ):
                    yield item

    @property
    def count(self) -> int:
        """How many entries are on disk."""
        return sum(1 for _ in self.entries())

    @property
    def nbytes(self) -> int:
        """Total size of the entries' files in bytes."""
        total = 0
        for entry in self.entries():
            for folder, _dirs, files in os.walk(entry):
                for name in files:
                    with contextlib.suppress(OSError):  # removed meanwhile
                        total += os.stat(os.path.join(folder, name)).st_size
        return total

    def clear(self) -> int:
        """Delete every entry and left-over temporary group; returns the entries removed.

        Folders the store did not write are left alone, and so is the root group.
        """
        removed = 0
        for folder in self._model_dirs():
            for item in folder.iterdir():
                if item.is_symlink() or not item.is_dir():
                    continue
                entry = bool(_TOKEN.fullmatch(item.name))
                if not (entry or _TEMP.fullmatch(item.name)):
                    continue
                # rename first, so a reader sees the entry whole or not at all
                doomed = folder / f".trash-{item.name[:64]}-{uuid.uuid4().hex}"
                try:
                    os.rename(item, doomed)
                except FileNotFoundError:
                    continue
                shutil.rmtree(doomed, ignore_errors=True)
                removed += entry
            if not any(p.name != ZARR_JSON for p in folder.iterdir()):
                with contextlib.suppress(OSError):
                    (folder / ZARR_JSON).unlink()
                    folder.rmdir()
        return removed

    # -- helpers --------------------------------------------------------------------------

    def _model_dirs(self) -> Iterator[Path]:
        if not self._root.is_dir():
            return
        for folder in self._root.iterdir():
            if _MODEL_DIR.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink():
                yield folder

    def _check_root_kind(self) -> None:
        marker = self._root / ZARR_JSON
        if not self._root.is_dir():
            return
        if not marker.is_file():
            if any(p for p in self._root.iterdir() if not p.name.startswith(".")):
                raise StoreError(
                    f"{self._root} is not empty and not a zarr embedding store; choose an "
                    "empty or new folder (e.g. embeddings.zarr)."
                )
            return
        try:
            attrs = json.loads(marker.read_text("utf-8")).get("attributes", {})
        except (OSError, ValueError, AttributeError):
            attrs = {}
        ours = attrs.get(ATTRS_KEY, {}) if isinstance(attrs, dict) else {}
        if not isinstance(ours, dict) or ours.get("kind") != STORE_KIND:
            raise StoreError(
                f"{self._root} is a zarr group but not a napari-promptseg embedding store."
            )
        if ours.get("format") != FORMAT_VERSION:
            raise StoreError(
                f"the embedding store {self._root} has format {ours.get('format')!r}; this "
                f"version reads format {FORMAT_VERSION}. Use a new folder."
            )

    def _ensure_root(self) -> None:
        if (self._root / ZARR_JSON).is_file():
            return
        self._root.mkdir(parents=True, exist_ok=True)
        attrs = {ATTRS_KEY: {"kind": STORE_KIND, "format": FORMAT_VERSION}}
        _write_group_json(self._root, attrs)

    def _ensure_groups(self, folder: Path, key: EmbeddingKey) -> None:
        self._ensure_root()
        if (folder / ZARR_JSON).is_file():
            return
        folder.mkdir(exist_ok=True)
        _write_group_json(folder, {ATTRS_KEY: {"model": json.loads(model_identity(key))}})

    @staticmethod
    def _stored_dtype(meta: dict[str, Any]) -> str:
        return str(meta["tensors"].get("features", {}).get("dtype", ""))


class _Unusable(Exception):
    """An entry that exists but cannot be served (why is the message)."""


def _rebuild(root: str, dtype: str, on_error: Literal["warn", "raise"]) -> ZarrEmbeddingStore:
    return ZarrEmbeddingStore(root, dtype=dtype, on_error=on_error)


def _read_entry(path: Path, key: EmbeddingKey) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import zarr
    from zarr.storage import LocalStore

    group = zarr.open_group(store=LocalStore(path, read_only=True), mode="r", zarr_format=3)
    ours: Any = dict(group.attrs).get(ATTRS_KEY, {})
    meta = ours.get("entry") if isinstance(ours, dict) else None
    if isinstance(meta, dict) and meta.get("format") != FORMAT_VERSION:
        raise _Unusable(f"format version {meta.get('format')!r}, expected {FORMAT_VERSION}")
    problem = check_meta(meta, key)
    if problem is not None:
        raise _Unusable(problem)
    assert isinstance(meta, dict)
    arrays: dict[str, np.ndarray] = {}
    for name in meta["tensors"]:
        stored: Any = group[name]
        array = np.ascontiguousarray(stored[...])
        problem = check_array(name, array, meta)
        if problem is not None:
            raise _Unusable(problem)
        arrays[name] = array
    return arrays, meta


def _write_entry(folder: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """One complete entry group in ``folder`` (new), every file flushed to disk."""
    import zarr
    from zarr.storage import LocalStore

    group = zarr.open_group(store=LocalStore(folder), mode="w-", zarr_format=3)
    for name, array in arrays.items():
        stored = group.create_array(
            name,
            shape=array.shape,
            dtype=array.dtype,
            chunks=array.shape,  # read whole, always: one chunk, one file
            compressors=None,  # float noise barely compresses; speed matters more
            fill_value=0,
        )
        stored[...] = array
    group.attrs.update({ATTRS_KEY: {"entry": dict(meta, format=FORMAT_VERSION)}})
    _fsync_tree(folder)


def _publish(temp: Path, path: Path, key: EmbeddingKey) -> None:
    """Rename the finished ``temp`` entry to ``path``: first writer wins, damage is replaced."""
    for _attempt in range(3):
        try:
            os.rename(temp, path)
            _fsync_dir(path.parent)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        try:  # an entry is there already
            _read_entry(path, key)
            return  # another writer's complete, valid entry: keep it (same content)
        except Exception:
            pass
        aside = path.parent / f".trash-{path.name}-{uuid.uuid4().hex}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, aside)  # move the damaged entry out of the way in one step
            shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"another writer keeps replacing {path}")


def _write_group_json(folder: Path, attrs: dict[str, Any]) -> None:
    """A zarr v3 group's metadata, written atomically (tempfile + rename)."""
    payload = json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": attrs}, indent=2
    ).encode("utf-8")
    temp = folder / f".{ZARR_JSON}.{uuid.uuid4().hex}.part"
    try:
        with open(temp, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, folder / ZARR_JSON)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _fsync_tree(folder: Path) -> None:
    for current, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(current, name), "rb") as file:
                os.fsync(file.fileno())
        _fsync_dir(Path(current))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
