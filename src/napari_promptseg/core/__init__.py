"""The Qt-free engine of napari-promptseg.

Image slice → :func:`to_rgb_uint8` → :meth:`PromptSegmenter.embed` (cached) →
:class:`Prompts` → :meth:`PromptSegmenter.predict` → :class:`DecodeResult` →
:mod:`.labels` (paste, objects table) → :mod:`.export` (tif, CSV).

Importing this package never imports Qt or napari.
"""

from .._llvm_guard import keep_triton_out_if_llvm_loaded

keep_triton_out_if_llvm_loaded()  # before torch: see napari_promptseg._llvm_guard

from .errors import (
    Cancelled,
    CheckpointNotAvailable,
    ExportError,
    ImageError,
    ModelError,
    PromptError,
    PromptSegError,
)
from .sam.decode import DecodeResult, SamDecoder
from .sam.embedding import EmbeddingCache, EmbeddingKey, ImageEmbedding
from .sam.engine import PromptSegmenter
from .sam.image import to_rgb_uint8
from .sam.prompts import Prompts, SamPrompts, Scribble

__all__ = [
    "Cancelled",
    "CheckpointNotAvailable",
    "DecodeResult",
    "EmbeddingCache",
    "EmbeddingKey",
    "ExportError",
    "ImageEmbedding",
    "ImageError",
    "ModelError",
    "PromptError",
    "PromptSegError",
    "PromptSegmenter",
    "Prompts",
    "SamDecoder",
    "SamPrompts",
    "Scribble",
    "to_rgb_uint8",
]
