"""Model families: SAM, MobileSAM and SAM 2.1, what each needs installed, and telling them apart.

A *family* is a model architecture with its own reference package and its own way of running
(:mod:`napari_promptseg.core.sam.families` holds the running side):

=============  ==========================  ===================================================
family         model types                 reference package (import name)
=============  ==========================  ===================================================
``sam``        vit_b, vit_l, vit_h         ``segment-anything`` (``segment_anything``)
``mobilesam``  vit_t                       ``mobilesam-mirror`` (``mobile_sam``; needs timm)
``sam2.1``     sam2.1_hiera_t/_s/_b+/_l    ``sam2`` (optional: ``napari-promptseg[sam2]``)
=============  ==========================  ===================================================

:func:`describe_weights` recognises the family and model type of a state dict from the
shapes of its image encoder, so a checkpoint given as the wrong type is refused with a
message naming both sides (:func:`mismatch_message`).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..errors import ModelError
from .demo import DEMO_ENCODER_DEPTH, DEMO_ENCODER_WIDTH, DEMO_MODEL_TYPE
from .tiny import TINY_MODEL_TYPE


@dataclass(frozen=True)
class ModelFamily:
    """One model family.

    Attributes
    ----------
    name : str
        ``"sam"``, ``"mobilesam"`` or ``"sam2.1"``; part of every embedding key.
    title : str
        For people: ``"SAM"``, ``"MobileSAM"``, ``"SAM 2.1"``.
    model_types : tuple of str
        The architectures of this family (keys of ``architectures.BUILDERS``).
    package : str
        The import name of the reference package that builds and runs the model.
    install : str
        How to install that package when it is missing.
    """

    name: str
    title: str
    model_types: tuple[str, ...]
    package: str
    install: str


SAM = "sam"
MOBILESAM = "mobilesam"
SAM2_1 = "sam2.1"

SAM2_1_MODEL_TYPES = ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l")

FAMILIES: dict[str, ModelFamily] = {
    SAM: ModelFamily(
        name=SAM,
        title="SAM",
        model_types=("vit_b", "vit_l", "vit_h", TINY_MODEL_TYPE, DEMO_MODEL_TYPE),
        package="segment_anything",
        install="pip install segment-anything",
    ),
    MOBILESAM: ModelFamily(
        name=MOBILESAM,
        title="MobileSAM",
        model_types=("vit_t",),
        package="mobile_sam",
        install="pip install mobilesam-mirror timm",
    ),
    SAM2_1: ModelFamily(
        name=SAM2_1,
        title="SAM 2.1",
        model_types=SAM2_1_MODEL_TYPES,
        package="sam2",
        install="pip install 'napari-promptseg[sam2]' (or: SAM2_BUILD_CUDA=0 pip install sam2==1.1.0)",
    ),
}

_FAMILY_OF_TYPE = {
    mtype: family.name for family in FAMILIES.values() for mtype in family.model_types
}


def family_of(model_type: str) -> ModelFamily:
    """The family of ``model_type``; SAM for types this module does not know (``"custom"``)."""
    return FAMILIES[_FAMILY_OF_TYPE.get(model_type, SAM)]


def get_family(name: str) -> ModelFamily:
    """The family called ``name``; ``ModelError`` naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ModelError(
            f"unknown model family {name!r}; known families: {', '.join(FAMILIES)}"
        ) from None


def is_installed(family: ModelFamily) -> bool:
    """Whether the family's reference package can be imported (without importing it)."""
    return importlib.util.find_spec(family.package) is not None


def require_installed(family: ModelFamily, model: str) -> None:
    """Raise ``ModelError`` saying how to install the package ``model`` needs, if missing."""
    if not is_installed(family):
        raise ModelError(
            f"{model} is a {family.title} model, which needs the Python package "
            f"{family.package!r}; it is not installed. Install it with: {family.install}"
        )


# -- recognising weights -------------------------------------------------------------------

# SAM image encoders: (patch-embedding width, number of transformer blocks)
_SAM_ENCODERS = {
    (768, 12): "vit_b",
    (1024, 24): "vit_l",
    (1280, 32): "vit_h",
    (48, 2): TINY_MODEL_TYPE,
    (DEMO_ENCODER_WIDTH, DEMO_ENCODER_DEPTH): DEMO_MODEL_TYPE,
}
# SAM 2 Hiera trunks: (embedding width, number of blocks)
_HIERA_TRUNKS = {
    (96, 12): "hiera_t",
    (96, 16): "hiera_s",
    (112, 24): "hiera_b+",
    (144, 48): "hiera_l",
}
# weights SAM 2.1 added to SAM 2 (its checkpoints have them, SAM 2.0's do not)
_SAM2_1_ONLY_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")


@dataclass(frozen=True)
class WeightsInfo:
    """What a state dict looks like: family, model type (None if unsupported) and a phrase."""

    family: str | None
    model_type: str | None
    text: str  # e.g. "a SAM 2.1 checkpoint (sam2.1_hiera_t)"


def describe_weights(state: Mapping[str, torch.Tensor]) -> WeightsInfo:
    """Recognise the family and model type of ``state`` from its image encoder's shapes."""
    patch = state.get("image_encoder.patch_embed.proj.weight")
    if patch is not None and patch.ndim == 4:
        depth = _count_blocks(state, r"image_encoder\.blocks\.(\d+)\.")
        mtype = _SAM_ENCODERS.get((int(patch.shape[0]), depth))
        if mtype is not None:
            return WeightsInfo(SAM, mtype, f"a SAM checkpoint ({mtype})")
        return WeightsInfo(SAM, None, f"a SAM checkpoint of unknown size ({depth} blocks)")
    if "image_encoder.patch_embed.seq.0.c.weight" in state:
        layers = _count_blocks(state, r"image_encoder\.layers\.(\d+)\.")
        mtype = "vit_t" if layers == 4 else None
        text = "a MobileSAM checkpoint (vit_t)" if mtype else "a TinyViT checkpoint of unknown size"
        return WeightsInfo(MOBILESAM, mtype, text)
    trunk = state.get("image_encoder.trunk.patch_embed.proj.weight")
    if trunk is not None and trunk.ndim == 4:
        depth = _count_blocks(state, r"image_encoder\.trunk\.blocks\.(\d+)\.")
        size = _HIERA_TRUNKS.get((int(trunk.shape[0]), depth))
        if not all(key in state for key in _SAM2_1_ONLY_KEYS):
            return WeightsInfo(
                None,
                None,
                f"a SAM 2 checkpoint ({size or 'unknown size'}) of version 2.0, not 2.1 "
                "(only SAM 2.1 is supported)",
            )
        if size is None:
            return WeightsInfo(
                SAM2_1, None, f"a SAM 2.1 checkpoint of unknown size ({depth} blocks)"
            )
        return WeightsInfo(SAM2_1, f"sam2.1_{size}", f"a SAM 2.1 checkpoint (sam2.1_{size})")
    return WeightsInfo(
        None, None, "not a SAM architecture this plugin knows (SAM, MobileSAM, SAM 2.1)"
    )


def infer_model_type(state: Mapping[str, torch.Tensor]) -> str | None:
    """The model type of ``state`` (e.g. ``"vit_b"``, ``"vit_t"``, ``"sam2.1_hiera_t"``), or None."""
    return describe_weights(state).model_type


def mismatch_message(path: object, model_type: str, info: WeightsInfo) -> str:
    """One line for a checkpoint given as ``model_type`` whose weights say otherwise.

    E.g. "checkpoint sam2.pt does not fit model type 'vit_b' (looks like sam2.1_hiera_t): it
    is a SAM 2.1 checkpoint (sam2.1_hiera_t), not a SAM vit_b one; pass model type ...".
    """
    family = family_of(model_type)
    looks = f"looks like {info.model_type}" if info.model_type else info.text
    advice = (
        f"; pass model type {info.model_type!r} (--model-type {info.model_type})"
        if info.model_type
        else ""
    )
    return (
        f"checkpoint {path} does not fit model type {model_type!r} ({looks}): it is "
        f"{info.text}, not a {family.title} {model_type} one{advice}"
    )


def _count_blocks(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    numbers = {int(match.group(1)) for key in state if (match := re.match(pattern, key))}
    return max(numbers) + 1 if numbers else 0
