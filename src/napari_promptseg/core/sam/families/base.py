"""What every model family supplies to the engine: the seam between models and the hot path.

A :class:`FamilyRunner` runs one loaded model: it encodes an image into an
:class:`~napari_promptseg.core.sam.embedding.ImageEmbedding` step by step (so callers get
progress and can cancel between steps), and its :attr:`~FamilyRunner.decoder` does the
once-per-image decoder preparation and turns prompts into a
:class:`~napari_promptseg.core.sam.decode.DecodeResult`. Everything above the engine
(cache, store, tiling, propagation, the CLI, napari) uses only this, so it works the same for
SAM, MobileSAM and SAM 2.1. What a family cannot do is named in :attr:`capabilities`;
:func:`require` turns a missing capability into one clear message.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ...errors import ModelError

if TYPE_CHECKING:
    from ..decode import DecodeResult
    from ..embedding import EmbeddingKey, ImageEmbedding
    from ..prompts import Prompts, SamPrompts

#: segment everything (automatic mask generation) batches SAM's own mask decoder internals
EVERYTHING = "segment everything"
#: fine-tuning trains SAM's image encoder / mask decoder modules directly
FINETUNE = "fine-tuning"


class FamilyError(ModelError):
    """An operation the loaded model's family cannot do (e.g. segment everything on SAM 2.1)."""


class Decoder(Protocol):
    """Prompts + embedding → masks, predicted IoU, stability and low-res logits."""

    def prepare(self, embedding: ImageEmbedding) -> Any:
        """Image-only decoder work, once per embedding (cached); call it after encoding."""
        ...

    def predict(
        self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool | None = None
    ) -> DecodeResult:
        """Validate napari-frame prompts and decode (None: three masks for a lone point)."""
        ...

    def decode(
        self, embedding: ImageEmbedding, prompts: SamPrompts, multimask: bool = True
    ) -> DecodeResult:
        """Decode SAM-frame prompts with the contract of the family's reference predictor."""
        ...


class FamilyRunner(Protocol):
    """Runs one loaded model of one family."""

    family: str  # "sam", "mobilesam", "sam2.1"
    title: str  # "SAM", "MobileSAM", "SAM 2.1"
    capabilities: frozenset[str]

    @property
    def decoder(self) -> Decoder:
        """Its decoder (one per runner: it caches per-image preparation)."""
        ...

    @property
    def encode_steps(self) -> int:
        """How many (done, total) steps :meth:`iter_encode` yields for one image."""
        ...

    def iter_encode(
        self, rgb: np.ndarray, key: EmbeddingKey
    ) -> Generator[tuple[int, int], None, ImageEmbedding]:
        """Encode an (H, W, 3) uint8 image, yielding progress; returns the embedding."""
        ...


def require(runner: FamilyRunner, capability: str, model: str) -> None:
    """Raise :class:`FamilyError` naming the model and its family if it lacks ``capability``."""
    if capability not in runner.capabilities:
        raise FamilyError(
            f"{capability} is not available for {runner.title} models (model {model!r} is a "
            f"{runner.title} model); load a SAM or MobileSAM model for it."
        )
