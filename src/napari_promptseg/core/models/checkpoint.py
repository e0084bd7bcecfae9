"""Reading SAM checkpoint files safely.

This is the only place a checkpoint is unpickled, always with
``torch.load(weights_only=True)``: a file that would rebuild arbitrary Python objects (and so
could run code) is refused, never "retried without weights_only". Wrappers that training
code puts around the weights (micro-sam / torch_em, Lightning, DDP...) are removed, and the
architecture can be recognised from the weights' shapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from .my_models import METADATA_KEY

# wrappers that training code puts around a SAM state dict, most specific first:
# torch_em / micro-sam ("model_state", next to "decoder_state", "optimizer_state"...),
# Lightning ("state_dict"), MedSAM / SAM 2 style exports ("model").
_WRAPPER_KEYS = ("model_state", "state_dict", "model")
# key prefixes added by DistributedDataParallel, micro-sam's TrainableSAM, torch.compile and
# Lightning modules holding SAM as `self.model`; no SAM key starts with any of them
_KEY_PREFIXES = ("module.", "sam.", "_orig_mod.", "model.")


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SAM state dict from a checkpoint file, safely.

    Uses ``torch.load(..., map_location="cpu", weights_only=True)``, which only rebuilds
    tensors and plain containers. Known wrappers are removed: ``{"model_state": ...}``
    (micro-sam / torch_em training checkpoints; ``decoder_state`` and optimizer state are
    ignored), ``{"state_dict": ...}``, ``{"model": ...}``, and the key prefixes ``module.``,
    ``sam.``, ``_orig_mod.`` and ``model.``.

    Raises
    ------
    ModelError
        The file is missing, unreadable, truncated or not a PyTorch checkpoint; it holds
        Python objects other than weights (refused as unsafe); or it contains no weights.
    """
    path = Path(path)
    return _unwrap(_read(path), path)


def _read(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as a ``ModelError``."""
    if path.is_dir():
        raise ModelError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise ModelError(f"checkpoint file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ModelError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # torch raises many types for damaged files
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe:
            raise ModelError(
                f"checkpoint {path} was refused as unsafe: besides weights it contains the "
                f"Python object {unsafe.group(1)}, and loading it could run arbitrary code. "
                "Only plain state dicts are loaded; re-save the weights with "
                "torch.save(model.state_dict(), path) from a trusted environment."
            ) from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"checkpoint {path} is truncated or not a PyTorch checkpoint ({first_line[:200]})"
        ) from None
    return obj


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise ModelError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. an "epoch" counter next to the weights
        key = str(key)
        stripped = True
        while stripped:
            stripped = False
            for prefix in _KEY_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        state[key] = value
    if not state:
        keys = ", ".join(map(str, list(obj)[:8])) or "none"
        raise ModelError(f"checkpoint {path} contains no model weights (top-level keys: {keys})")
    return state


def load_decoder_state(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The instance decoder weights of a micro-sam checkpoint, or None when it has none.

    micro-sam's microscopy checkpoints hold ``{"model_state": ..., "decoder_state": ...}``
    (the UNETR head of its automatic instance segmentation); micro-sam also ships decoders
    as a file of their own, a plain state dict of those weights (``base.*``, ``out_conv.*``,
    ``decoder.*``...), which is returned as it is. Read as safely as :func:`load_state_dict`.
    """
    path = Path(path)
    obj = _read(path)
    if not isinstance(obj, Mapping):
        return None
    inner = obj.get("decoder_state")
    if not isinstance(inner, Mapping) and "out_conv.weight" in obj and "base.block.1.weight" in obj:
        inner = obj  # a decoder-only file
    if not isinstance(inner, Mapping):
        return None
    return {str(k): v for k, v in inner.items() if isinstance(v, torch.Tensor)} or None


def has_decoder_state(path: str | os.PathLike) -> bool:
    """Whether a checkpoint file carries micro-sam's ``decoder_state``, read cheaply.

    The file is memory-mapped (``torch.load(mmap=True)``): only its index is read, so a GUI
    can ask on a model change without loading hundreds of MB. Any failure answers False;
    loading the decoder later reports the real problem.
    """
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint, unreadable...: loading says why, not this
        return False
    return isinstance(obj, Mapping) and isinstance(obj.get("decoder_state"), Mapping)


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata our training writes beside the weights (``METADATA_KEY``), read cheaply
    (memory-mapped, as :func:`has_decoder_state`); None when the file has none or is not
    readable (loading the weights reports that)."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint, unreadable...: loading says why, not this
        return None
    metadata = obj.get(METADATA_KEY) if isinstance(obj, Mapping) else None
    return dict(metadata) if isinstance(metadata, Mapping) else None
