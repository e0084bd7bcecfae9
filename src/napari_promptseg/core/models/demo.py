"""The demo architecture: a small SAM whose decoder is trained on synthetic nuclei and cells.

Built from segment_anything's own classes (so the normal loader and the bit-exact decoder
run it), with the real input size (1024), patch size (16) and embedding grid (64x64):

* image encoder: a narrow ViT (width 64, 2 windowed blocks) whose weights stay at their
  seeded random initialisation. Random convolutional features describe brightness and
  texture at the 16-pixel patch scale, which is what synthetic fluorescence needs;
* prompt encoder and mask decoder: width :data:`DEMO_EMBED_DIM` (64; 256 in SAM), trained
  decoder-only from cached embeddings (``scripts/train_demo.py``);
* the random Fourier positional encoding (``PositionEmbeddingRandom``): its frequency matrix
  is a buffer saved in the checkpoint, drawn here with a larger scale than SAM's 1.0
  (:data:`DEMO_PE_SCALE`), so the decoder can tell a click on one nucleus from a click on
  its neighbour. The loader needs no code for it: the checkpoint carries the matrix.

Model type ``"vit_demo"``, recognised from its weights by its encoder width and depth
(:mod:`.families`). Not a substitute for SAM: see ``docs/finetune.md``.
"""

from __future__ import annotations

import os
from functools import partial

import torch
from segment_anything.modeling import Sam

DEMO_MODEL_TYPE = "vit_demo"
DEMO_ENCODER_WIDTH = 64  # patch-embedding width; with depth 2 it identifies the type
DEMO_ENCODER_DEPTH = 2
DEMO_EMBED_DIM = 64  # prompt / transformer width (256 in the real models)
#: Standard deviation of the positional encoding's Gaussian frequency matrix (SAM: 1.0).
DEMO_PE_SCALE = 8.0


def build_demo_sam(
    checkpoint: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    pe_scale: float = DEMO_PE_SCALE,
    embed_dim: int = DEMO_EMBED_DIM,
) -> Sam:
    """Build the demo SAM with seeded random weights; with ``checkpoint``, load its weights.

    The signature matches segment_anything's ``build_sam_vit_*`` builders (a checkpoint path
    as first argument), so it sits in :data:`.architectures.BUILDERS`.

    Parameters
    ----------
    seed
        Seeds every random initial weight (the frozen encoder's included).
    pe_scale
        Scale of the positional encoding's random frequencies.
    embed_dim
        Prompt encoder / mask decoder width (a checkpoint of another width does not load).
    """
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        TwoWayTransformer,
    )

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sam = Sam(
            image_encoder=ImageEncoderViT(
                depth=DEMO_ENCODER_DEPTH,
                embed_dim=DEMO_ENCODER_WIDTH,
                img_size=1024,
                mlp_ratio=2,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=2,
                patch_size=16,
                qkv_bias=True,
                use_rel_pos=True,
                global_attn_indexes=(),
                window_size=8,
                out_chans=embed_dim,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(64, 64),
                input_image_size=(1024, 1024),
                mask_in_chans=16,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=2, embedding_dim=embed_dim, mlp_dim=2 * embed_dim, num_heads=4
                ),
                transformer_dim=embed_dim,
                iou_head_depth=3,
                iou_head_hidden_dim=embed_dim,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
        with torch.no_grad():
            matrix = sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
            matrix.normal_().mul_(pe_scale)
    finally:
        torch.random.set_rng_state(generator_state)
    sam.eval()
    if checkpoint is not None:
        from .checkpoint import load_state_dict

        sam.load_state_dict(load_state_dict(checkpoint))
    return sam
