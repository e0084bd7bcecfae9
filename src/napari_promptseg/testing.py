"""Helpers for tests: the tiny random SAM (re-exported from the engine) and a slow encoder.

The tiny model's builder lives in :mod:`napari_promptseg.core.models.tiny` (the engine may
load its checkpoints; the engine never imports this module). :class:`SlowImageEncoder`
makes any model's encoder sleep per block, to test that the GUI stays responsive.

    >>> from napari_promptseg.testing import build_tiny_sam, save_tiny_checkpoint
    >>> sam = build_tiny_sam(seed=0)
    >>> path = save_tiny_checkpoint("tiny.pth")  # loads with model type "vit_tiny"
"""

from __future__ import annotations

import time

from ._llvm_guard import keep_triton_out_if_llvm_loaded

keep_triton_out_if_llvm_loaded()  # before torch: see napari_promptseg._llvm_guard

import torch  # noqa: E402  (after the LLVM guard)

# the tiny model's builder belongs to the engine; tests import it from here
from .core.models.tiny import (  # noqa: E402
    TINY_MODEL_TYPE,
    build_tiny_sam,
    save_tiny_checkpoint,
)

__all__ = [
    "TINY_MODEL_TYPE",
    "SlowImageEncoder",
    "build_tiny_sam",
    "make_slow",
    "save_tiny_checkpoint",
]


class SlowImageEncoder(torch.nn.Module):
    """Wraps an image encoder so each block sleeps: for testing that the GUI stays responsive.

    The wrapped encoder keeps the attributes the engine reads (``img_size``, ``blocks``...)
    so it runs block by block like a real one.
    """

    def __init__(self, encoder: torch.nn.Module, seconds_per_block: float) -> None:
        super().__init__()
        self.inner = encoder
        self.seconds_per_block = seconds_per_block
        self.img_size = encoder.img_size
        self.patch_embed = encoder.patch_embed
        self.pos_embed = encoder.pos_embed
        self.neck = encoder.neck
        self.blocks = torch.nn.ModuleList(
            _SleepyBlock(b, seconds_per_block) for b in encoder.blocks
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))


class _SleepyBlock(torch.nn.Module):
    def __init__(self, block: torch.nn.Module, seconds: float) -> None:
        super().__init__()
        self.block = block
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)  # releases the GIL, like real compute in torch kernels
        return self.block(x)


def make_slow(sam, seconds_per_block: float = 0.5):
    """Return ``sam`` with its image encoder slowed down (in place). See :class:`SlowImageEncoder`."""
    sam.image_encoder = SlowImageEncoder(sam.image_encoder, seconds_per_block)
    return sam
