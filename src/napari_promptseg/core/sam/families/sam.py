"""SAM (ViT-B/L/H) and MobileSAM (TinyViT): one prompt encoder and mask decoder, two encoders.

MobileSAM keeps SAM's prompt encoder and mask decoder unchanged (``mobile_sam``'s
``prompt_encoder.py``, ``mask_decoder.py`` and ``transformer.py`` are segment-anything's,
line for line) and its preprocessing (longest side to 1024, SAM's pixel mean and std, zero
padding), so both families decode with the bit-exact :class:`~..decode.SamDecoder`; only the
image encoder differs. Both run it step by step, with the same operations in the same order
as ``SamPredictor.set_image`` (``mobile_sam.SamPredictor`` for MobileSAM).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ...models.families import FAMILIES, MOBILESAM, SAM
from ..decode import SamDecoder
from ..embedding import EmbeddingKey, ImageEmbedding, iter_encode, resize_for_sam
from .base import EVERYTHING, FINETUNE


class SamRunner:
    """Runs a segment-anything ``Sam`` (ViT image encoder)."""

    family = SAM
    title = FAMILIES[SAM].title
    capabilities = frozenset({EVERYTHING, FINETUNE})

    def __init__(self, sam: Any) -> None:
        self.sam = sam
        self.decoder = SamDecoder(sam)

    @property
    def encode_steps(self) -> int:
        return len(self.sam.image_encoder.blocks) + 2

    def iter_encode(
        self, rgb: np.ndarray, key: EmbeddingKey
    ) -> Generator[tuple[int, int], None, ImageEmbedding]:
        return iter_encode(self.sam, rgb, key.model_id, key=key)


class MobileSamRunner(SamRunner):
    """Runs a ``mobile_sam`` ``Sam`` whose image encoder is a TinyViT."""

    family = MOBILESAM
    title = FAMILIES[MOBILESAM].title

    @property
    def encode_steps(self) -> int:
        return sum(len(layer.blocks) for layer in self.sam.image_encoder.layers) + 2

    def iter_encode(
        self, rgb: np.ndarray, key: EmbeddingKey
    ) -> Generator[tuple[int, int], None, ImageEmbedding]:
        return iter_encode_tinyvit(self.sam, rgb, key, self.encode_steps)


def iter_encode_tinyvit(
    sam: Any, rgb: np.ndarray, key: EmbeddingKey, total: int
) -> Generator[tuple[int, int], None, ImageEmbedding]:
    """``TinyViT.forward_features`` one block at a time, yielding (done, ``total``).

    Each layer (a ``ConvLayer`` of MBConv blocks, then ``BasicLayer``s of attention blocks)
    runs its blocks in order and then its patch-merging ``downsample``, as its ``forward``
    does; the (B, 4096, C) tokens become the (B, C, 64, 64) grid the neck maps to 256
    channels. Closing the generator early abandons the computation.
    """
    encoder = sam.image_encoder
    with torch.inference_mode():
        x, input_size = resize_for_sam(sam, rgb)
        x = encoder.patch_embed(x)
    done = 1
    yield done, total
    for layer in encoder.layers:
        for index, block in enumerate(layer.blocks):
            with torch.inference_mode():
                x = block(x)
                if index == len(layer.blocks) - 1 and layer.downsample is not None:
                    x = layer.downsample(x)
            done += 1
            yield done, total
    with torch.inference_mode():
        batch, _, channels = x.size()
        x = x.view(batch, 64, 64, channels)
        x = x.permute(0, 3, 1, 2)
        features = encoder.neck(x)
    yield total, total
    return ImageEmbedding(
        features=features,
        original_size=(int(rgb.shape[0]), int(rgb.shape[1])),
        input_size=input_size,
        key=key,
    )
