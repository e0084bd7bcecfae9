"""Where micro-sam publishes the instance decoders of its registry models.

micro-sam 1.8.14 ships each microscopy model's decoder as a file of its own next to the SAM
weights (``micro_sam.util.models()``: ``vit_t_lm_decoder`` ...; same BioImage Model Zoo
entries and versions as our registry's checkpoints), with the xxh128 hashes micro-sam pins.
They are downloaded on request only, verified by the registry's downloader
(``core.models.download.fetch_spec``) and kept in the same cache folder; they are not menu
entries of their own.
"""

from __future__ import annotations

from pathlib import Path

from ...models import download
from ...models.download import ByteProgress
from ...models.spec import ModelSpec

_BIOIMAGEIO = "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io"
_SOURCE = "micro-sam 1.8.14 decoder registry (micro_sam/util.py, models()); xxh128 as pinned there"

# registry model → (BioImage Model Zoo entry/version, file, micro-sam's hash)
_DECODERS = {
    "vit_t_lm": ("faithful-chicken/1.1", "vit_t", "xxh128:3e914a5f397b0312cdd36813031f8823"),
    "vit_b_lm": ("diplomatic-bug/1.2", "vit_b", "xxh128:708b15ac620e235f90bb38612c4929ba"),
    "vit_l_lm": ("idealistic-rat/1.2", "vit_l", "xxh128:2faeafa03819dfe03e7c46a44aaac64a"),
    "vit_t_em_organelles": (
        "greedy-whale/1",
        "vit_t",
        "xxh128:8f897c7bb93174a4d1638827c4dd6f44",
    ),
    "vit_b_em_organelles": (
        "noisy-ox/1.2",
        "vit_b",
        "xxh128:bb6398956a6b0132c26b631c14f95ce2",
    ),
    "vit_l_em_organelles": (
        "humorous-crab/1.2",
        "vit_l",
        "xxh128:334877640bfdaaabce533e3252a17294",
    ),
}

#: Registry models whose instance decoder micro-sam publishes.
DECODER_MODELS = tuple(_DECODERS)


def decoder_spec(model_name: str) -> ModelSpec | None:
    """The download description of ``model_name``'s decoder, or None if it has none."""
    found = _DECODERS.get(model_name)
    if found is None:
        return None
    entry, arch, known_hash = found
    return ModelSpec(
        name=f"{model_name}_decoder",
        model_type=arch,
        url=f"{_BIOIMAGEIO}/{entry}/files/{arch}_decoder.pt",
        hash=known_hash,
        filename=f"microsam_{model_name}_decoder_{entry.split('/')[1]}.pt",
        size_bytes=None,
        description=f"micro-sam instance decoder (UNETR) of {model_name}",
        source=_SOURCE,
    )


def fetch_decoder(
    model_name: str, *, progress: bool | ByteProgress = True, offline: bool = False
) -> Path | None:
    """The verified decoder file of a registry model (downloaded if needed), or None when
    micro-sam publishes no decoder for it. Raises ``CheckpointNotAvailable`` offline."""
    spec = decoder_spec(model_name)
    if spec is None:
        return None
    return download.fetch_spec(spec, progress=progress, offline=offline)
