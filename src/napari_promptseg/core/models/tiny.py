"""A tiny, randomly initialised SAM: for tests, and for trying the plumbing without weights.

It is built from segment_anything's own classes with the real input size (1024), patch size
(16) and embedding grid (64x64), so resizing, padding, coordinate transforms and every tensor
shape are the real ones; only the widths and depths are small. Its masks are meaningless.
It sits in :data:`.architectures.BUILDERS` as model type ``"vit_tiny"``, so its checkpoints
load through the same code as the real models.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import Sam

TINY_MODEL_TYPE = "vit_tiny"
_EMBED_DIM = 32  # prompt/transformer width (256 in the real models)


def build_tiny_sam(checkpoint: str | os.PathLike | None = None, *, seed: int = 0) -> Sam:
    """Build the tiny SAM; with ``checkpoint`` the weights are loaded from that file instead.

    The signature matches segment_anything's ``build_sam_vit_*`` builders so the tiny model
    can sit in the same builder table. Loading a checkpoint goes through
    :func:`.checkpoint.load_state_dict` (``weights_only=True``).
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
                depth=2,
                embed_dim=48,
                img_size=1024,
                mlp_ratio=2,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=2,
                patch_size=16,
                qkv_bias=True,
                use_rel_pos=True,
                global_attn_indexes=(),
                window_size=8,
                out_chans=_EMBED_DIM,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=_EMBED_DIM,
                image_embedding_size=(64, 64),
                input_image_size=(1024, 1024),
                mask_in_chans=8,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=2, embedding_dim=_EMBED_DIM, mlp_dim=64, num_heads=2
                ),
                transformer_dim=_EMBED_DIM,
                iou_head_depth=3,
                iou_head_hidden_dim=32,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
        # Random init leaves the mask decoder's output near zero everywhere; scale the
        # hypernetwork output so masks have real foreground/background structure.
        with torch.no_grad():
            for mlp in sam.mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(8.0)
    finally:
        torch.random.set_rng_state(generator_state)
    sam.eval()
    if checkpoint is not None:
        from .checkpoint import load_state_dict

        sam.load_state_dict(load_state_dict(checkpoint))
    return sam


def save_tiny_checkpoint(path: str | os.PathLike, *, seed: int = 0) -> Path:
    """Save the tiny SAM's state dict with ``torch.save`` (the format SAM checkpoints use)."""
    path = Path(path)
    torch.save(build_tiny_sam(seed=seed).state_dict(), path)
    return path
