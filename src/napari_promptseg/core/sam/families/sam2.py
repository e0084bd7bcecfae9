"""SAM 2.1 through Meta's ``sam2`` package: the same numbers as ``SAM2ImagePredictor``.

Encoding follows ``SAM2ImagePredictor.set_image`` operation by operation, the Hiera trunk one
block at a time so callers get progress and can cancel: ``SAM2Transforms`` (the image
squeezed to 1024x1024, ImageNet mean and std), patch embedding plus positional embedding, the
blocks (keeping each stage's output), the FPN neck and the mask decoder's 1x1 projections of
the two high-resolution levels (``SAM2Base.forward_image``). The embedding keeps the
(1, 256, 64, 64) backbone map as ``features`` and the (1, 32, 256, 256) and
(1, 64, 128, 128) maps as ``high_res_features``.

``features`` is the backbone's output *before* the "no memory" embedding that
``SAM2ImagePredictor.set_image`` adds: the decoder adds it (:func:`.sam2_decode.image_tokens`,
the same float addition, so the same numbers), and the video memory
(:mod:`napari_promptseg.core.workflows.tracking.memory`) reads the map as it is, which
memory attention needs and which cannot be recovered exactly by subtracting.

Decoding is :mod:`.sam2_decode`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ...models.families import FAMILIES, SAM2_1
from ..embedding import EmbeddingKey, ImageEmbedding, check_rgb
from .sam2_decode import Sam2Decoder

# the backbone levels SAM2ImagePredictor keeps: 256x256 and 128x128 (high resolution), 64x64
_FEATURE_SIZES = ((256, 256), (128, 128), (64, 64))


class Sam2Runner:
    """Runs a ``sam2`` ``SAM2Base`` model for single images."""

    family = SAM2_1
    title = FAMILIES[SAM2_1].title
    capabilities: frozenset[str] = frozenset()

    def __init__(self, model: Any) -> None:
        from sam2.utils.transforms import SAM2Transforms

        self.model = model
        with warnings.catch_warnings():
            # SAM2Transforms scripts its resize with torch.jit, which warns it is deprecated
            warnings.simplefilter("ignore", FutureWarning)
            self.transforms = SAM2Transforms(resolution=model.image_size, mask_threshold=0.0)
        self.decoder = Sam2Decoder(model, self.transforms)

    @property
    def encode_steps(self) -> int:
        return len(self.model.image_encoder.trunk.blocks) + 2

    def iter_encode(
        self, rgb: np.ndarray, key: EmbeddingKey
    ) -> Generator[tuple[int, int], None, ImageEmbedding]:
        """Encode ``rgb`` (H, W, 3 uint8) block by block, yielding (done, total)."""
        check_rgb(rgb)
        model, total = self.model, self.encode_steps
        trunk = model.image_encoder.trunk
        with torch.inference_mode():
            x = self.transforms(rgb)[None, ...].to(model.device)
            x = trunk.patch_embed(x)
            x = x + trunk._get_pos_embed(x.shape[1:3])
        yield 1, total
        stage_outputs = []
        for index, block in enumerate(trunk.blocks):
            with torch.inference_mode():
                x = block(x)
                if index == trunk.stage_ends[-1] or (
                    index in trunk.stage_ends and trunk.return_interm_layers
                ):
                    stage_outputs.append(x.permute(0, 3, 1, 2))
            yield index + 2, total
        with torch.inference_mode():
            features, high_res = self._neck_and_heads(stage_outputs)
        yield total, total
        return ImageEmbedding(
            features=features,
            original_size=(int(rgb.shape[0]), int(rgb.shape[1])),
            input_size=(int(model.image_size), int(model.image_size)),
            key=key,
            high_res_features=high_res,
        )

    def _neck_and_heads(
        self, stage_outputs: list[torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """ImageEncoder.forward after the trunk, forward_image and set_image's reshaping."""
        model = self.model
        encoder = model.image_encoder
        levels, positions = encoder.neck(stage_outputs)
        if encoder.scalp > 0:
            levels, positions = levels[: -encoder.scalp], positions[: -encoder.scalp]
        backbone_out = {"vision_features": levels[-1], "vision_pos_enc": positions}
        backbone_out["backbone_fpn"] = levels
        if model.use_high_res_features_in_sam:
            levels[0] = model.sam_mask_decoder.conv_s0(levels[0])
            levels[1] = model.sam_mask_decoder.conv_s1(levels[1])
        _, vision_feats, _, _ = model._prepare_backbone_features(backbone_out)
        maps = [
            feat.permute(1, 2, 0).view(1, -1, *size)
            for feat, size in zip(vision_feats[::-1], _FEATURE_SIZES[::-1], strict=True)
        ][::-1]
        return maps[-1], tuple(maps[:-1])
