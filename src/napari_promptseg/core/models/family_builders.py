"""Building MobileSAM and SAM 2.1 models with random weights, through their own packages.

The builders are the reference packages' own (``mobile_sam``'s registry entry ``"vit_t"``,
``sam2.build_sam.build_sam2`` with the official SAM 2.1 configs), called without a
checkpoint: :mod:`.loading` assigns the weights it read with ``weights_only=True``. Neither
package is imported before a model of its family is built, so SAM users need neither.
"""

from __future__ import annotations

import warnings
from typing import Any

from .families import FAMILIES, MOBILESAM, SAM2_1, require_installed

#: SAM 2.1 model type -> the hydra config shipped inside the ``sam2`` package
SAM2_1_CONFIGS = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def build_mobilesam_vit_t() -> Any:
    """MobileSAM (TinyViT encoder, SAM's prompt encoder and mask decoder), random weights, eval."""
    require_installed(FAMILIES[MOBILESAM], "vit_t")
    with warnings.catch_warnings():
        # timm warns (FutureWarning) about the deprecated import paths mobile_sam uses, and
        # about mobile_sam re-registering its models: nothing users can act on (the CLI test
        # test_the_command_line_prints_our_messages_only keeps it so)
        warnings.simplefilter("ignore")
        from mobile_sam import sam_model_registry

    return sam_model_registry["vit_t"]()


def build_sam2_1(model_type: str) -> Any:
    """A SAM 2.1 model of ``model_type`` with random weights on the CPU, in eval mode.

    ``build_sam2`` with its defaults (``apply_postprocessing=True``: the mask decoder falls
    back to the best multimask output when a single mask is unstable), as
    ``SAM2ImagePredictor`` users build it.
    """
    require_installed(FAMILIES[SAM2_1], model_type)
    from sam2.build_sam import build_sam2

    return build_sam2(SAM2_1_CONFIGS[model_type], ckpt_path=None, device="cpu", mode="eval")
