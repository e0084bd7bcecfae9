"""Turning a registry name or a checkpoint file into a model ready for inference.

:func:`load_model` fetches (registry) or reads (local file) a checkpoint, builds the
architecture *empty* (on PyTorch's "meta" device, so no time or memory goes into a random
initialisation that is overwritten anyway) and assigns the weights from the state dict.
segment_anything's builders are never given the checkpoint path: they would call
``torch.load`` without ``weights_only`` (:func:`.checkpoint.load_state_dict` is the only
place a file is unpickled). The result is a :class:`LoadedModel`: the module plus a stable
``model_id`` that keys embedding caches.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from . import download
from .architectures import BUILDERS, META_BUILDABLE
from .checkpoint import load_state_dict
from .device import select_device
from .download import ByteProgress
from .families import describe_weights, family_of, mismatch_message, require_installed
from .registry import DEFAULT_MODEL, fetch_checkpoint, get_spec


@dataclass
class LoadedModel:
    """A SAM ready for inference, plus what it is.

    Attributes
    ----------
    sam : torch.nn.Module
        The model in eval mode, on :attr:`device`: segment_anything's ``Sam``, MobileSAM's
        ``Sam`` or SAM 2.1's ``SAM2Base`` (see :attr:`family`).
    name : str
        Registry name, or the checkpoint's file name, or a caller's label.
    model_type : str
        ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"vit_tiny"``, ``"vit_t"``,
        ``"sam2.1_hiera_t"`` (``_s``, ``_b+``, ``_l``) or ``"custom"``.
    model_id : str
        Stable identity for embedding cache keys: the same weights give the same id across
        runs, different weights a different id.
    device : torch.device
    checkpoint : Path or None
        The file the weights came from (None for an in-memory model).
    family : str
        ``"sam"``, ``"mobilesam"`` or ``"sam2.1"`` (:mod:`.families`): how the engine runs it.
    """

    sam: Any = field(repr=False)
    name: str
    model_type: str
    model_id: str
    device: torch.device
    checkpoint: Path | None = None
    family: str = "sam"


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
        See :func:`napari_promptseg.core.models.device.select_device` (default: best available).
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
        require_installed(family_of(spec.model_type), spec.name)  # before downloading
        path = fetch_checkpoint(spec.name, progress=progress, offline=offline)
        state = load_state_dict(path)
        sam = _build(spec.model_type, state, path)
        model_id = f"{spec.name}@{download.split_hash(spec.hash)[1][:16]}"
        label, mtype = spec.name, spec.model_type
    else:
        path = Path(checkpoint).expanduser()
        if model_type is not None and model_type not in BUILDERS:
            raise ModelError(
                f"unknown model type {model_type!r}; known types: {', '.join(BUILDERS)}"
            )
        state = load_state_dict(path)  # names the path if it is missing
        info = describe_weights(state)
        if model_type is None and info.model_type is None:
            raise ModelError(
                f"cannot tell which SAM architecture checkpoint {path} is ({info.text}); pass "
                f"model_type= one of {', '.join(BUILDERS)}"
            )
        mtype = model_type or str(info.model_type)
        if info.model_type is not None and info.model_type != mtype:
            raise ModelError(mismatch_message(path, mtype, info))  # before building it
        require_installed(family_of(mtype), f"{path.name} ({mtype})")
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
        family=family_of(mtype).name,
    )


def wrap_model(
    sam: Any,
    *,
    model_id: str,
    name: str = "custom",
    model_type: str = "custom",
    device: str | torch.device | None = None,
    family: str | None = None,
) -> LoadedModel:
    """Wrap an in-memory model (e.g. the tiny test model) as a :class:`LoadedModel`.

    ``model_id`` must identify the weights (it keys embedding caches). Without ``device``
    the model stays where its parameters are; with one it is moved there. ``family``
    defaults to the family of ``model_type`` (SAM for ``"custom"``).
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
        family=family or family_of(model_type).name,
    )


def warm_up_building() -> None:
    """Run torch's one-time set-up of building on the "meta" device now, on this thread.

    The first meta-device build in a process pays for lazy initialisation inside torch that
    holds the GIL: about 0.06 s on the thread that runs it first, but 0.7 s during which every
    other thread waits when it happens in a background thread (measured on 2 cores) — a GUI
    freeze while a model loads. The napari session calls this once on the GUI thread.
    """
    from .tiny import build_tiny_sam

    with torch.device("meta"):
        build_tiny_sam()


def _build(model_type: str, state: Mapping[str, torch.Tensor], path: Path) -> Any:
    """An empty ``model_type`` model with ``state`` loaded; ``ModelError`` if it does not fit."""
    builder = BUILDERS[model_type]
    meta = model_type in META_BUILDABLE
    if meta:
        with torch.device("meta"):  # shapes only: no random init that would be overwritten
            sam = builder()
    else:
        sam = builder()
    expected = sam.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        info = describe_weights(state)
        looks = f"looks like {info.model_type}" if info.model_type else info.text
        example = (mismatched or missing or unexpected)[0]
        raise ModelError(
            f"checkpoint {path} does not fit model type {model_type!r} ({looks}; the "
            f"{family_of(model_type).title} {model_type} architecture has {len(missing)} "
            f"weights it lacks, {len(unexpected)} it does not know and {len(mismatched)} of "
            f"another shape, e.g. {example!r})"
        )
    sam.load_state_dict(state, strict=True, assign=meta)
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
