"""The SAM models napari-promptseg knows, and loading them safely.

Three things live here:

* the registry (:data:`MODELS`): Meta's original SAM checkpoints and micro-sam's
  microscopy fine-tunes, each with a pinned URL and hash (see ``docs/models.md``);
* :func:`load_state_dict` (from :mod:`napari_promptseg.core.checkpoint`), the only place a
  checkpoint file is unpickled, always with ``torch.load(weights_only=True)``;
* :func:`load_model`, which turns a registry name or a local file into a
  :class:`LoadedModel` (the SAM module plus a stable ``model_id`` for embedding caches).

Models are built *empty* (on PyTorch's "meta" device, so no time or memory goes into a random
initialisation that is overwritten anyway) and the weights are then assigned from the state
dict. segment_anything's builders are never given the checkpoint path: they would call
``torch.load`` without ``weights_only``.

Downloads and the cache folder are in :mod:`napari_promptseg.core.download`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from segment_anything import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l

from ..testing import TINY_MODEL_TYPE, build_tiny_sam
from . import download
from .checkpoint import infer_model_type, load_state_dict
from .device import select_device
from .download import HASH_ALGORITHMS, ByteProgress, cache_dir
from .errors import ModelError

__all__ = [
    "BUILDERS",
    "DEFAULT_MODEL",
    "MODELS",
    "LoadedModel",
    "ModelSpec",
    "cache_dir",
    "checkpoint_path",
    "fetch_checkpoint",
    "get_spec",
    "infer_model_type",
    "is_cached",
    "list_models",
    "load_model",
    "load_state_dict",
    "register_model",
    "wrap_model",
]

#: model type -> function building an empty SAM of that architecture (no checkpoint).
BUILDERS: dict[str, Callable[..., Any]] = {
    "vit_b": build_sam_vit_b,
    "vit_l": build_sam_vit_l,
    "vit_h": build_sam_vit_h,
    # the tiny test model goes through the same loading code as the real ones
    TINY_MODEL_TYPE: build_tiny_sam,
}


@dataclass(frozen=True)
class ModelSpec:
    """A downloadable checkpoint.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"vit_b"`` or ``"vit_b_lm"``.
    model_type : str
        Architecture, a key of :data:`BUILDERS` (``"vit_b"``, ``"vit_l"``, ``"vit_h"``).
    url : str
        Where the file is downloaded from.
    hash : str
        Pooch-style ``"<algorithm>:<hex digest>"``. sha256 where the publisher gives one;
        micro-sam only publishes ``xxh128`` hashes (verifying those needs ``xxhash``).
    filename : str
        File name in the cache folder (unique across the registry).
    size_bytes : int or None
        Exact file size when known; lets a truncated copy be spotted without hashing.
    description : str
        One line for users.
    source : str
        Who publishes the file and under which licence / where the hash comes from.
    """

    name: str
    model_type: str
    url: str
    hash: str
    filename: str
    size_bytes: int | None
    description: str
    source: str


_SAM_SOURCE = "Meta AI, github.com/facebookresearch/segment-anything (Apache-2.0)"
_MICROSAM_SOURCE = (
    "micro-sam (github.com/computational-cell-analytics/micro-sam), BioImage Model Zoo "
    "entry {entry}; xxh128 hash as pinned by micro-sam"
)
_BIOIMAGEIO = "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io"

MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to :data:`MODELS` after checking it; returns it.

    Raises
    ------
    ModelError
        Unknown model type, malformed hash or file name, or the name is taken (unless
        ``replace``) or the file name is used by another model.
    """
    if spec.model_type not in BUILDERS:
        raise ModelError(
            f"model {spec.name!r}: unknown model type {spec.model_type!r}; "
            f"known types: {', '.join(BUILDERS)}"
        )
    algorithm, digest = download.split_hash(spec.hash)
    if algorithm not in HASH_ALGORITHMS or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ModelError(
            f"model {spec.name!r}: hash {spec.hash!r} is not '<algorithm>:<hex digest>' "
            f"with one of {', '.join(HASH_ALGORITHMS)}"
        )
    # a portable whitelist: what is a plain name on Linux (a\\..\\x, C:x) may not be elsewhere
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}", spec.filename or ""):
        raise ModelError(
            f"model {spec.name!r}: file name {spec.filename!r} must be a plain name "
            "(letters, digits, '.', '_', '+', '-')"
        )
    if spec.name in MODELS and not replace:
        raise ModelError(f"a model named {spec.name!r} is already registered")
    for other in MODELS.values():
        if other.filename == spec.filename and other.name != spec.name:
            raise ModelError(
                f"model {spec.name!r}: file name {spec.filename!r} is used by {other.name!r}"
            )
    MODELS[spec.name] = spec
    return spec


for _spec in (
    ModelSpec(
        name="vit_b",
        model_type="vit_b",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        hash="sha256:ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        filename="sam_vit_b_01ec64.pth",
        size_bytes=375_042_383,
        description="SAM ViT-B, the original Segment Anything (smallest, fastest; default)",
        source=_SAM_SOURCE,
    ),
    ModelSpec(
        name="vit_l",
        model_type="vit_l",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        hash="sha256:3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        filename="sam_vit_l_0b3195.pth",
        size_bytes=1_249_524_607,
        description="SAM ViT-L, the original Segment Anything (larger, slower)",
        source=_SAM_SOURCE,
    ),
    ModelSpec(
        name="vit_h",
        model_type="vit_h",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        hash="sha256:a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        filename="sam_vit_h_4b8939.pth",
        size_bytes=2_564_550_879,
        description="SAM ViT-H, the original Segment Anything (largest; wants a GPU)",
        source=_SAM_SOURCE,
    ),
    ModelSpec(
        name="vit_b_lm",
        model_type="vit_b",
        url=f"{_BIOIMAGEIO}/diplomatic-bug/1.2/files/vit_b.pt",
        hash="xxh128:fe9252a29f3f4ea53c15a06de471e186",
        filename="microsam_vit_b_lm_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-B fine-tuned for light microscopy (cells, nuclei)",
        source=_MICROSAM_SOURCE.format(entry="diplomatic-bug v1.2"),
    ),
    ModelSpec(
        name="vit_b_em_organelles",
        model_type="vit_b",
        url=f"{_BIOIMAGEIO}/noisy-ox/1.2/files/vit_b.pt",
        hash="xxh128:f3bf2ed83d691456bae2c3f9a05fb438",
        filename="microsam_vit_b_em_organelles_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-B fine-tuned for electron microscopy organelles",
        source=_MICROSAM_SOURCE.format(entry="noisy-ox v1.2"),
    ),
    ModelSpec(
        name="vit_l_lm",
        model_type="vit_l",
        url=f"{_BIOIMAGEIO}/idealistic-rat/1.2/files/vit_l.pt",
        hash="xxh128:017f20677997d628426dec80a8018f9d",
        filename="microsam_vit_l_lm_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-L fine-tuned for light microscopy (cells, nuclei)",
        source=_MICROSAM_SOURCE.format(entry="idealistic-rat v1.2"),
    ),
    ModelSpec(
        name="vit_l_em_organelles",
        model_type="vit_l",
        url=f"{_BIOIMAGEIO}/humorous-crab/1.2/files/vit_l.pt",
        hash="xxh128:810b084b6e51acdbf760a993d8619f2d",
        filename="microsam_vit_l_em_organelles_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-L fine-tuned for electron microscopy organelles",
        source=_MICROSAM_SOURCE.format(entry="humorous-crab v1.2"),
    ),
):
    register_model(_spec)
del _spec

DEFAULT_MODEL = "vit_b"


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; ``ModelError`` listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; known models: {', '.join(MODELS)} "
            "(or load a local checkpoint file)"
        ) from None


def checkpoint_path(name: str) -> Path:
    """Where model ``name``'s checkpoint is (or will be) stored in :func:`cache_dir`."""
    return download.spec_path(get_spec(name))


def is_cached(name: str) -> bool:
    """Whether model ``name``'s file is in the cache with the right size (not hashed)."""
    return download.is_spec_cached(get_spec(name))


def fetch_checkpoint(
    name: str,
    *,
    progress: bool | ByteProgress = True,
    offline: bool = False,
    url: str | None = None,
) -> Path:
    """Return the path of model ``name``'s verified checkpoint, downloading it if needed.

    Parameters
    ----------
    name : str
        A registry name (see :data:`MODELS`).
    progress : bool or callable
        ``True``: a tqdm bar on stderr; ``False``: silent; a callable
        ``(bytes_done, bytes_total) -> None`` is called as data arrives (``bytes_total`` is 0
        if unknown). An exception raised by the callable (e.g. ``Cancelled``) aborts the
        download and leaves nothing in the cache.
    offline : bool
        Never touch the network (also set by ``NAPARI_PROMPTSEG_OFFLINE=1``).
    url : str, optional
        Download from here instead of the registry URL (the hash is still checked). The
        ``NAPARI_PROMPTSEG_MIRROR`` environment variable does the same for every model.

    Raises
    ------
    ModelError
        Unknown name; hash mismatch (names both hashes and the URL); unwritable cache.
    CheckpointNotAvailable
        Offline or the download failed; the message says which file to put where.
    """
    return download.fetch_spec(get_spec(name), progress=progress, offline=offline, url=url)


# --- loaded models ---------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A SAM ready for inference, plus what it is.

    Attributes
    ----------
    sam : segment_anything.modeling.Sam
        In eval mode, on :attr:`device`.
    name : str
        Registry name, or the checkpoint's file name, or a caller's label.
    model_type : str
        ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"vit_tiny"`` or ``"custom"``.
    model_id : str
        Stable identity for embedding cache keys: the same weights give the same id across
        runs, different weights a different id.
    device : torch.device
    checkpoint : Path or None
        The file the weights came from (None for an in-memory model).
    """

    sam: Any = field(repr=False)
    name: str
    model_type: str
    model_id: str
    device: torch.device
    checkpoint: Path | None = None


def load_model(
    name: str | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    model_type: str | None = None,
    device: str | torch.device | None = None,
    progress: bool | ByteProgress = True,
    offline: bool = False,
) -> LoadedModel:
    """Load a registry model (downloading it if needed) or a local checkpoint file.

    Parameters
    ----------
    name : str, optional
        Registry name; :data:`DEFAULT_MODEL` when neither ``name`` nor ``checkpoint`` given.
    checkpoint : path, optional
        A local SAM checkpoint (plain state dict or a micro-sam export); not hash-checked.
    model_type : str, optional
        Architecture of ``checkpoint``; guessed from its weights when omitted.
    device : str or torch.device, optional
        See :func:`napari_promptseg.core.device.select_device` (default: best available).
    progress, offline
        As for :func:`fetch_checkpoint`.

    Raises
    ------
    ModelError
        Unknown name or model type, missing/unsafe/corrupt file, a checkpoint that does not
        fit the model type, an unavailable device (``CheckpointNotAvailable`` when offline).
    """
    if name is not None and checkpoint is not None:
        raise ModelError("give either a registry model name or a checkpoint file, not both")
    target = select_device(device)  # fail before downloading GBs for a missing GPU
    if checkpoint is None:
        spec = get_spec(name or DEFAULT_MODEL)
        if model_type is not None and model_type != spec.model_type:
            raise ModelError(
                f"model {spec.name!r} is a {spec.model_type} model, not {model_type!r}"
            )
        path = fetch_checkpoint(spec.name, progress=progress, offline=offline)
        state = load_state_dict(path)
        sam = _build(spec.model_type, state, path)
        model_id = f"{spec.name}@{download.split_hash(spec.hash)[1][:16]}"
        label, mtype = spec.name, spec.model_type
    else:
        path = Path(checkpoint).expanduser()
        state = load_state_dict(path)  # names the path if it is missing
        mtype = model_type or infer_model_type(state)
        if mtype is None:
            raise ModelError(
                f"cannot tell which SAM architecture checkpoint {path} is; pass model_type= "
                f"one of {', '.join(BUILDERS)}"
            )
        if mtype not in BUILDERS:
            raise ModelError(f"unknown model type {mtype!r}; known types: {', '.join(BUILDERS)}")
        sam = _build(mtype, state, path)
        model_id = f"{mtype}@file:{_file_fingerprint(path)}"
        label = path.name
    return LoadedModel(
        sam=_to_device(sam, target, label),
        name=label,
        model_type=mtype,
        model_id=model_id,
        device=target,
        checkpoint=path,
    )


def wrap_model(
    sam: Any,
    *,
    model_id: str,
    name: str = "custom",
    model_type: str = "custom",
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Wrap an in-memory SAM (e.g. the tiny test model) as a :class:`LoadedModel`.

    ``model_id`` must identify the weights (it keys embedding caches). Without ``device``
    the model stays where its parameters are; with one it is moved there.
    """
    if not isinstance(model_id, str) or not model_id:
        raise ModelError("wrap_model needs a non-empty model_id identifying the weights")
    if device is None:
        first = next(itertools.chain(sam.parameters(), sam.buffers()), None)
        target = first.device if first is not None else torch.device("cpu")
    else:
        target = select_device(device)
    return LoadedModel(
        sam=_to_device(sam, target, name),
        name=name,
        model_type=model_type,
        model_id=model_id,
        device=target,
        checkpoint=None,
    )


def list_models() -> list[dict[str, Any]]:
    """One row per registry model, for the CLI and the widget's model menu.

    Keys: ``name``, ``model_type``, ``size`` (bytes, int or None if unpublished),
    ``size_text`` (e.g. ``"358 MiB"`` or ``"unknown"``), ``cached`` (bool: file present with
    the right size; not hashed), ``path`` (str), ``description``.
    """
    return [
        {
            "name": spec.name,
            "model_type": spec.model_type,
            "size": spec.size_bytes,
            "size_text": _human_size(spec.size_bytes),
            "cached": download.is_spec_cached(spec),
            "path": str(download.spec_path(spec)),
            "description": spec.description,
        }
        for spec in MODELS.values()
    ]


def _build(model_type: str, state: Mapping[str, torch.Tensor], path: Path) -> Any:
    """An empty ``model_type`` SAM with ``state`` loaded; ``ModelError`` if it does not fit."""
    builder = BUILDERS[model_type]
    with torch.device("meta"):  # shapes only: no random init that would be overwritten
        sam = builder()
    expected = sam.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        looks = infer_model_type(state)
        looks_text = f"looks like {looks}" if looks else "not a SAM architecture this plugin knows"
        example = (mismatched or missing or unexpected)[0]
        raise ModelError(
            f"checkpoint {path} does not fit model type {model_type!r} ({looks_text}): "
            f"{len(missing)} missing, {len(unexpected)} unexpected and {len(mismatched)} "
            f"wrongly shaped weights, e.g. {example!r}"
        )
    sam.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in itertools.chain(sam.parameters(), sam.buffers())):
        # a builder made a tensor that is not in the state dict: build it for real instead
        sam = builder()
        sam.load_state_dict(state, strict=True)
    return sam.float()  # fp16 checkpoints would otherwise make fp16 parameters


def _to_device(sam: Any, device: torch.device, label: str) -> Any:
    try:
        sam = sam.to(device)
    except torch.cuda.OutOfMemoryError:
        raise ModelError(
            f"not enough memory on {device} for model {label!r}; "
            "close other GPU programs, or use a smaller model or device='cpu'"
        ) from None
    return sam.eval()


def _file_fingerprint(path: Path) -> str:
    """Identity of a local file without reading it: resolved path, size, mtime."""
    stat = path.stat()
    text = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _human_size(size: int | None) -> str:
    if size is None:
        return "unknown"
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GiB"
    return f"{size / (1 << 20):.0f} MiB"
