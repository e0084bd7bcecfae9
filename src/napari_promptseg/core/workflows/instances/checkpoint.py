"""Finding a model's instance decoder: ``decoder_state`` in its checkpoint, or a decoder file.

Which automatic modes a model has follows from it: every SAM / MobileSAM model has the grid
mode (segment everything); a micro-sam checkpoint with a decoder also has AIS and APG
(the same names and order as :func:`.modes.model_modes`, which the front ends use).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ...errors import ModelError
from ...models.checkpoint import load_decoder_state, load_state_dict
from ...models.download import ByteProgress
from ...models.families import describe_weights
from .decoder import InstanceDecoder, build_decoder
from .decoders import DECODER_MODELS, fetch_decoder

#: The automatic modes' names (as in :mod:`.modes`).
GRID, AIS, APG = "grid", "ais", "apg"


def automatic_modes(has_decoder: bool, family: str = "sam") -> tuple[str, ...]:
    """The automatic segmentation modes of a model: ("ais", "apg", "grid") with a decoder,
    ("grid",) without; none for SAM 2.1 (no grid mode, and micro-sam's decoders read
    SAM / MobileSAM embeddings only)."""
    if family == "sam2.1":
        return ()
    return (AIS, APG, GRID) if has_decoder else (GRID,)


def no_decoder_message(label: str, family: str = "sam") -> str:
    """Why AIS / APG cannot run on ``label``, and which modes it has instead."""
    modes = automatic_modes(False, family)
    has = (
        f"its automatic mode is {modes[0]!r} (grid prompts)"
        if modes
        else "it has no automatic mode"
    )
    return (
        f"model {label!r} has no instance decoder (no 'decoder_state' in its checkpoint), so "
        f"automatic instance segmentation (AIS) and prompt generation (APG) are not available; "
        f"{has}. AIS and APG need a micro-sam checkpoint with a decoder, e.g. "
        f"{', '.join(DECODER_MODELS[:3])}, or a decoder file (decoder=PATH)."
    )


def load_instance_decoder(
    model: Any,
    decoder: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool | ByteProgress = True,
    offline: bool = False,
) -> InstanceDecoder:
    """The instance decoder for a loaded model (a :class:`~..models.loading.LoadedModel`).

    Parameters
    ----------
    model
        The loaded SAM; its checkpoint file is read for ``decoder_state`` unless
        ``decoder`` is given. A registry model whose file has none (micro-sam publishes its
        decoders as files of their own, :mod:`.decoders`) gets its decoder downloaded on
        request and verified, as checkpoints are.
    decoder : path, optional
        A micro-sam checkpoint with ``decoder_state``, or a decoder-only state dict.
    device
        Default: the model's device.
    progress, offline
        For the decoder download, as for ``core.models.fetch_checkpoint``.

    Raises
    ------
    ModelError
        No decoder (the message names the modes the model has), a decoder file made for
        another encoder (its ``model_state`` is another architecture), or weights that do
        not fit micro-sam's UNETR decoder.
    """
    target = device if device is not None else getattr(model, "device", "cpu")
    label = getattr(model, "name", "model")
    source = Path(decoder).expanduser() if decoder is not None else model.checkpoint
    state = load_decoder_state(source) if source is not None else None
    if state is None and decoder is None and label in DECODER_MODELS:
        fetched = fetch_decoder(label, progress=progress, offline=offline)
        if fetched is not None:
            source = fetched
            state = load_decoder_state(source)
    if state is None or source is None:
        if decoder is not None:
            raise ModelError(f"{source} holds no micro-sam instance decoder ('decoder_state')")
        raise ModelError(no_decoder_message(label, getattr(model, "family", "sam")))
    if decoder is not None:
        _check_same_encoder(source, model)
    built = build_decoder(state, device=target, label=f"the decoder in {source.name}")
    channels = _embedding_channels(model.sam)
    if channels is not None and channels != built.embed_dim:
        raise ModelError(
            f"the decoder in {source.name} reads {built.embed_dim}-channel embeddings, but "
            f"model {label!r} makes {channels}-channel ones: it belongs to another encoder"
        )
    return built


def _check_same_encoder(source: Path, model: Any) -> None:
    """A decoder file that carries its SAM weights names its encoder: it must be ours."""
    try:
        sam_state = load_state_dict(source)
    except ModelError:
        return  # decoder-only file: nothing to compare
    info = describe_weights(sam_state)
    mtype = getattr(model, "model_type", None)
    if info.model_type is not None and mtype not in (None, "custom", info.model_type):
        raise ModelError(
            f"the decoder in {source.name} was trained with a {info.model_type} encoder, "
            f"but the loaded model is {mtype}: its maps would be meaningless. Load "
            f"{info.model_type} (or that checkpoint) instead."
        )


def _embedding_channels(sam: Any) -> int | None:
    neck = getattr(getattr(sam, "image_encoder", None), "neck", None)
    try:
        return int(neck[2].out_channels)  # type: ignore[index]
    except (TypeError, IndexError, AttributeError):
        return None
