"""The architectures napari-promptseg can build, and recognising one from its weights.

:data:`BUILDERS` maps a model type (``"vit_b"``, ``"vit_t"``, ``"sam2.1_hiera_t"``, ...) to a
function that builds that architecture with random weights and no checkpoint; :mod:`.loading`
assigns a checkpoint's weights (building SAM's on the "meta" device, see
:data:`META_BUILDABLE`). :func:`infer_model_type` tells the type of a state dict from its image
encoder's shapes, so a local file needs no ``--model-type``; :mod:`.families` says which
family each type belongs to and what it needs installed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from segment_anything import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l
from segment_anything.modeling import Sam

from .demo import DEMO_MODEL_TYPE, build_demo_sam
from .families import infer_model_type
from .family_builders import SAM2_1_CONFIGS, build_mobilesam_vit_t, build_sam2_1
from .tiny import TINY_MODEL_TYPE, build_tiny_sam

#: The model the engine runs, in eval mode on its device: segment_anything's ``Sam`` (image
#: encoder, prompt encoder, mask decoder), or MobileSAM's ``Sam`` / SAM 2.1's ``SAM2Base``
#: (run through :mod:`napari_promptseg.core.sam.families`).
SamModel = Sam

#: model type -> function building an empty model of that architecture (no checkpoint).
BUILDERS: dict[str, Callable[..., Any]] = {
    "vit_b": build_sam_vit_b,
    "vit_l": build_sam_vit_l,
    "vit_h": build_sam_vit_h,
    # the tiny test model goes through the same loading code as the real ones
    TINY_MODEL_TYPE: build_tiny_sam,
    # the demo model: small SAM, decoder trained on synthetic cells (weights ship inside)
    DEMO_MODEL_TYPE: build_demo_sam,
    "vit_t": build_mobilesam_vit_t,
    **{mtype: partial(build_sam2_1, mtype) for mtype in SAM2_1_CONFIGS},
}

#: types whose builders work on PyTorch's "meta" device (no random initialisation to throw
#: away). TinyViT and Hiera compute values while being built (attention-bias tables, stochastic
#: depth rates), so MobileSAM and SAM 2.1 are built for real (≈ 0.2 s and 1-4 s on a CPU).
META_BUILDABLE = frozenset({"vit_b", "vit_l", "vit_h", TINY_MODEL_TYPE, DEMO_MODEL_TYPE})

__all__ = ["BUILDERS", "META_BUILDABLE", "SamModel", "infer_model_type"]
