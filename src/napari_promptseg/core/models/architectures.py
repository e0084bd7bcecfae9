"""The architectures napari-promptseg can build, and recognising one from its weights.

:data:`BUILDERS` maps a model type (``"vit_b"``, ...) to a function that builds that
architecture with random weights and no checkpoint; :mod:`.loading` builds it on the "meta"
device and assigns a checkpoint's weights. :func:`infer_model_type` tells the type of a state
dict from its image encoder's width and depth, so a local file needs no ``--model-type``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from segment_anything import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l
from segment_anything.modeling import Sam

from .tiny import TINY_MODEL_TYPE, build_tiny_sam

#: The model type the engine runs: segment_anything's ``Sam`` (image encoder, prompt encoder,
#: mask decoder) in eval mode on its device.
SamModel = Sam

#: model type -> function building an empty SAM of that architecture (no checkpoint).
BUILDERS: dict[str, Callable[..., Any]] = {
    "vit_b": build_sam_vit_b,
    "vit_l": build_sam_vit_l,
    "vit_h": build_sam_vit_h,
    # the tiny test model goes through the same loading code as the real ones
    TINY_MODEL_TYPE: build_tiny_sam,
}

# (patch-embedding width, number of transformer blocks) of each image encoder
ENCODER_SHAPES = {
    "vit_b": (768, 12),
    "vit_l": (1024, 24),
    "vit_h": (1280, 32),
    TINY_MODEL_TYPE: (48, 2),
}


def infer_model_type(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Guess the model type from the image encoder's width and depth; None if unknown."""
    patch = state_dict.get("image_encoder.patch_embed.proj.weight")
    if patch is None or patch.ndim != 4:
        return None
    blocks = {
        int(match.group(1))
        for key in state_dict
        if (match := re.match(r"image_encoder\.blocks\.(\d+)\.", key))
    }
    depth = max(blocks) + 1 if blocks else 0
    for model_type, shape in ENCODER_SHAPES.items():
        if shape == (patch.shape[0], depth):
            return model_type
    return None
