"""The hot path, in the order data flows: image → embedding → prompts → decode → engine.

* :mod:`.image` — any 2D slice → the (H, W, 3) uint8 SAM sees, and its fingerprint;
* :mod:`.embedding` — the image encoder run block by block, :class:`EmbeddingCache`;
* :mod:`.prompts` — points, boxes, scribbles in napari's (row, col) → SAM's (x, y);
* :mod:`.decode` — prompts + embedding → masks, predicted IoU, stability (bit-exact);
* :mod:`.engine` — :class:`PromptSegmenter`, the four calls the front ends use.
"""

from .decode import DecodeResult, SamDecoder
from .embedding import EmbeddingCache, EmbeddingKey, ImageEmbedding
from .engine import PromptSegmenter
from .image import to_rgb_uint8
from .prompts import Prompts, SamPrompts, Scribble

__all__ = [
    "DecodeResult",
    "EmbeddingCache",
    "EmbeddingKey",
    "ImageEmbedding",
    "PromptSegmenter",
    "Prompts",
    "SamDecoder",
    "SamPrompts",
    "Scribble",
    "to_rgb_uint8",
]
