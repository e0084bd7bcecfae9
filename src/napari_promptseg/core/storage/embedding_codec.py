"""An :class:`ImageEmbedding` as plain arrays plus JSON, and back: what a disk store keeps.

The codec does not list the embedding's fields by hand: it walks the dataclass, so a field
added later (SAM 2.1's ``high_res_features``, a model ``family`` in the key) is stored and
restored without touching the stores. Per field:

* a tensor → one array named after the field;
* a tuple of tensors → arrays ``<field>.0``, ``<field>.1``, ... (an empty tuple is ``[]`` in
  the JSON);
* anything else JSON can hold (sizes) → the JSON, tuples restored as tuples;
* ``key`` → every field of the :class:`EmbeddingKey` in the JSON, checked on read;
* ``metadata`` (run-time notes: where it came from) is not stored.

Each array's dtype before storing (``restore``) and a blake2b checksum of its stored bytes
are in the JSON too, so a reader restores the model's dtype and refuses damaged bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np
import torch

from ..sam.embedding import EmbeddingKey, ImageEmbedding

# 2: SAM 2.1's ``features`` are the backbone's, without the "no memory" embedding; entries
#    of version 1 are recomputed
CODEC_VERSION = 2
STORED_DTYPES = ("float32", "float16")
RESTORE_DTYPES = ("float32", "float16", "bfloat16", "float64")
_SKIPPED = ("key", "metadata")


class CodecError(ValueError):
    """Stored arrays and metadata that cannot be turned back into this embedding."""


def key_fields(key: EmbeddingKey) -> dict[str, Any]:
    """Every field of ``key`` (fingerprint, model id and whatever later versions add)."""
    return dataclasses.asdict(key)


def model_identity(key: EmbeddingKey) -> str:
    """The key without its image fingerprint, as canonical JSON: one store folder per value."""
    fields = {k: v for k, v in key_fields(key).items() if k != "fingerprint"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def checksum(array: np.ndarray) -> str:
    """blake2b (128 bit) of the raw bytes of ``array`` in C order."""
    return hashlib.blake2b(np.ascontiguousarray(array).data, digest_size=16).hexdigest()


def encode_embedding(
    embedding: ImageEmbedding, dtype: str = "float32"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split ``embedding`` into named C-contiguous arrays and a JSON-able description.

    Parameters
    ----------
    dtype
        ``"float32"`` or ``"float16"`` for the stored arrays; an array whose values exceed
        float16's range stays float32 (exact rather than infinite).

    Returns
    -------
    arrays
        ``{name: array}``; e.g. ``features`` (1, C, 64, 64).
    meta
        ``{"codec", "key", "fields", "tensors", "tuples"}``: ``tensors[name]`` holds the
        array's ``dtype``, ``restore`` dtype, ``shape`` and ``checksum``; ``tuples[field]``
        the number of arrays of a tuple-of-tensors field.
    """
    if dtype not in STORED_DTYPES:
        raise CodecError(f"stored dtype must be one of {', '.join(STORED_DTYPES)}; got {dtype!r}.")
    arrays: dict[str, np.ndarray] = {}
    plain: dict[str, Any] = {}
    tensors: dict[str, dict[str, Any]] = {}
    tuples: dict[str, int] = {}

    def add(name: str, tensor: torch.Tensor) -> None:
        source = tensor.detach().to("cpu")
        array = np.ascontiguousarray(source.float().numpy())
        if dtype == "float16":
            half = array.astype(np.float16)
            if np.isfinite(half).all():
                array = half
        arrays[name] = array
        tensors[name] = {
            "dtype": str(array.dtype),
            "restore": str(source.dtype).removeprefix("torch."),
            "shape": [int(v) for v in array.shape],
            "checksum": checksum(array),
        }

    for item in dataclasses.fields(embedding):
        if item.name in _SKIPPED:
            continue
        value = getattr(embedding, item.name)
        if isinstance(value, torch.Tensor):
            add(item.name, value)
        elif (
            isinstance(value, tuple | list)
            and value
            and all(isinstance(v, torch.Tensor) for v in value)
        ):
            tuples[item.name] = len(value)
            for index, tensor in enumerate(value):
                add(f"{item.name}.{index}", tensor)
        else:
            plain[item.name] = _jsonable(value, item.name)
    meta = {
        "codec": CODEC_VERSION,
        "key": key_fields(embedding.key),
        "fields": plain,
        "tensors": tensors,
        "tuples": tuples,
    }
    return arrays, meta


def check_meta(meta: object, key: EmbeddingKey) -> str | None:
    """Why ``meta`` cannot describe an embedding of ``key``, or None if it can."""
    if not isinstance(meta, dict):
        return "no metadata"
    if meta.get("codec") != CODEC_VERSION:
        return f"codec version {meta.get('codec')!r}, expected {CODEC_VERSION}"
    stored = meta.get("key")
    wanted = key_fields(key)
    if stored != wanted:
        return f"written for key {stored!r}, not {wanted!r}"
    tensors = meta.get("tensors")
    if not isinstance(tensors, dict) or not tensors:
        return "no arrays listed"
    for name, info in tensors.items():
        if not isinstance(info, dict) or info.get("dtype") not in STORED_DTYPES:
            return f"array {name!r}: unknown stored dtype"
        if info.get("restore") not in RESTORE_DTYPES:
            return f"array {name!r}: unknown dtype {info.get('restore')!r}"
    if not isinstance(meta.get("fields"), dict) or not isinstance(meta.get("tuples"), dict):
        return "bad field list"
    return None


def check_array(name: str, array: np.ndarray, meta: dict[str, Any]) -> str | None:
    """Why stored ``array`` is not the one ``meta`` describes (dtype, shape, checksum)."""
    info = meta["tensors"][name]
    if str(array.dtype) != info["dtype"]:
        return f"array {name!r} is {array.dtype}, metadata says {info['dtype']}"
    if list(array.shape) != info["shape"]:
        return f"array {name!r} has shape {array.shape}, metadata says {info['shape']}"
    if checksum(array) != info["checksum"]:
        return f"array {name!r}: checksum mismatch (the entry is corrupted)"
    return None


def decode_embedding(
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    key: EmbeddingKey,
    *,
    device: torch.device | str | None = None,
    metadata: dict[str, Any] | None = None,
    cls: type[ImageEmbedding] = ImageEmbedding,
) -> ImageEmbedding:
    """The :class:`ImageEmbedding` that :func:`encode_embedding` split, on ``device``.

    ``arrays`` must already be checked (:func:`check_array`). ``cls`` is the embedding class
    to build (a subclass with more fields, in tests).

    Raises
    ------
    CodecError
        The stored fields do not fit this version's :class:`ImageEmbedding` (written by
        another version), or a listed array is missing.
    """
    wanted = {item.name for item in dataclasses.fields(cls)} - set(_SKIPPED)

    def tensor(name: str) -> torch.Tensor:
        if name not in arrays:
            raise CodecError(f"array {name!r} is missing")
        restore = getattr(torch, meta["tensors"][name]["restore"])
        return torch.from_numpy(arrays[name]).to(device=device or "cpu", dtype=restore)

    values: dict[str, Any] = {}
    for name, value in meta["fields"].items():
        values[name] = tuple(_tuples(value)) if isinstance(value, list) else value
    for name, count in meta["tuples"].items():
        values[name] = tuple(tensor(f"{name}.{i}") for i in range(int(count)))
    for name in meta["tensors"]:
        if "." not in name:
            values[name] = tensor(name)
    unknown = set(values) - wanted
    if unknown:
        raise CodecError(f"fields {sorted(unknown)} are not in this version's ImageEmbedding")
    try:
        return cls(key=key, metadata=dict(metadata or {}), **values)
    except TypeError as error:  # a field this version requires was not stored
        raise CodecError(str(error)) from None


def _jsonable(value: Any, name: str) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v, name) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise CodecError(f"field {name!r} of type {type(value).__name__} cannot be stored")


def _tuples(value: list[Any]) -> list[Any]:
    return [tuple(_tuples(v)) if isinstance(v, list) else v for v in value]
