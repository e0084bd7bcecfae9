"""The demo model's architecture: a small SAM that ships inside the package.

A SAM in every respect but size, built from segment_anything's own classes with the real
input size (1024), patch size (16), embedding grid (64 x 64) and mask grid (256 x 256), so
it runs through the same engine, cache, store and writers as vit_b: a 96-wide, 4-block
image encoder (windowed attention, one global block), a 64-wide prompt encoder and mask
decoder. About 1.2 M parameters (5 MB). Its weights (registry model ``demo``) are trained
from scratch on synthetic fluorescence images by ``scripts/train_demo.py``: it shows what
the plugin does without a download, and is no substitute for SAM on real images.

Model type ``"vit_demo"``.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import torch

DEMO_MODEL_TYPE = "vit_demo"
DEMO_ENCODER_SHAPE = (96, 4)  # (patch-embedding width, blocks), for infer_model_type
_EMBED_DIM = 64


def build_demo_sam(checkpoint: str | os.PathLike | None = None, *, seed: int = 0) -> Any:
    """Build the demo architecture (random weights from ``seed``, or ``checkpoint``'s).

    The signature matches segment_anything's ``build_sam_vit_*`` builders.
    """
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sam = Sam(
            image_encoder=ImageEncoderViT(
                depth=DEMO_ENCODER_SHAPE[1],
                embed_dim=DEMO_ENCODER_SHAPE[0],
                img_size=1024,
                mlp_ratio=4,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=4,
                patch_size=16,
                qkv_bias=True,
                use_rel_pos=True,
                global_attn_indexes=(3,),
                window_size=14,
                out_chans=_EMBED_DIM,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=_EMBED_DIM,
                image_embedding_size=(64, 64),
                input_image_size=(1024, 1024),
                mask_in_chans=16,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=2, embedding_dim=_EMBED_DIM, mlp_dim=256, num_heads=4
                ),
                transformer_dim=_EMBED_DIM,
                iou_head_depth=3,
                iou_head_hidden_dim=64,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
    finally:
        torch.random.set_rng_state(generator_state)
    sam.eval()
    if checkpoint is not None:
        from .checkpoint import load_state_dict

        sam.load_state_dict(load_state_dict(checkpoint))
    return sam
