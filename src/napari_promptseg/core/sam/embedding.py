"""Computing and caching SAM image embeddings.

The image encoder is the expensive step (tens of seconds for vit_b on a laptop CPU), so an
embedding is computed once per (image content, model) and kept in a bounded in-memory LRU
cache. The key is a hash of the exact uint8 RGB pixels SAM sees plus the model's identity:
changing a pixel, the contrast limits, the channel choice or the model gives a new key.

Encoding runs block by block (the same operations, in the same order, as
``SamPredictor.set_image``) so callers get progress and can cancel between blocks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from ..errors import Cancelled, ImageError
from ..models.architectures import SamModel
from .image import image_fingerprint

ProgressCallback = Callable[[int, int], None]  # (blocks done, blocks total)
T = TypeVar("T")


@dataclass(frozen=True)
class EmbeddingKey:
    """What an embedding was computed from: the pixels SAM saw, the model and its family.

    ``family`` (``"sam"``, ``"mobilesam"``, ``"sam2.1"``) is part of the key so that no
    embedding is ever decoded by a model of another family, even under a reused model id.
    """

    fingerprint: str  # image_fingerprint of the (H, W, 3) uint8 input
    model_id: str
    family: str = "sam"


@dataclass(eq=False)
class ImageEmbedding:
    """A SAM image embedding plus the geometry needed to decode masks at full size.

    Attributes
    ----------
    features
        (1, C, 64, 64) float tensor on the model's device (C = 256 for real SAM models).
    original_size
        (H, W) of the image the user sees.
    input_size
        (h, w) of the image after resizing its longest side to the encoder size (1024).
    key
        The :class:`EmbeddingKey` it was computed for; results carry it so nothing is
        applied to a different image or model.
    high_res_features
        SAM 2.1 only: its two high-resolution feature maps, (1, 32, 256, 256) and
        (1, 64, 128, 128), already projected by the mask decoder; empty for SAM and
        MobileSAM. ``input_size`` is then (1024, 1024): SAM 2.1 squeezes the whole image
        to that square instead of padding it.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    key: EmbeddingKey
    metadata: dict = field(default_factory=dict)
    high_res_features: tuple[torch.Tensor, ...] = ()

    @property
    def nbytes(self) -> int:
        """Bytes of all its tensors (vit_b: 4 MiB; SAM 2.1: 4 + 8 + 4 = 16 MiB)."""
        return sum(
            tensor.element_size() * tensor.nelement()
            for tensor in (self.features, *self.high_res_features)
        )


def resize_for_sam(sam: SamModel, rgb: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """Resize and normalise an (H, W, 3) uint8 image exactly as ``SamPredictor.set_image`` does.

    Returns the padded, normalised (1, 3, S, S) tensor on the model device (S = 1024) and
    the (h, w) size before padding.
    """
    check_rgb(rgb)
    transform = ResizeLongestSide(sam.image_encoder.img_size)
    resized = transform.apply_image(rgb)
    tensor = torch.as_tensor(resized, device=sam.device)
    tensor = tensor.permute(2, 0, 1).contiguous()[None, :, :, :]
    input_size = (int(tensor.shape[-2]), int(tensor.shape[-1]))
    return sam.preprocess(tensor), input_size


def iter_encode(
    sam: SamModel, rgb: np.ndarray, model_id: str, *, key: EmbeddingKey | None = None
) -> Generator[tuple[int, int], None, ImageEmbedding]:
    """Encode ``rgb`` with a SAM ViT encoder block by block, yielding (done, total) after each step.

    The generator's return value (``StopIteration.value``) is the :class:`ImageEmbedding`
    (keyed by ``key``, default: the image's fingerprint, ``model_id`` and family ``"sam"``).
    Stopping iteration early (``close()``) abandons the computation: this is how napari
    workers cancel it. Other families encode through
    :mod:`napari_promptseg.core.sam.families`.
    """
    key = key or EmbeddingKey(image_fingerprint(rgb), model_id)
    encoder = sam.image_encoder
    total = len(encoder.blocks) + 2
    with torch.inference_mode():
        x, input_size = resize_for_sam(sam, rgb)
        x = encoder.patch_embed(x)
        if encoder.pos_embed is not None:
            x = x + encoder.pos_embed
    yield 1, total
    for index, block in enumerate(encoder.blocks):
        with torch.inference_mode():
            x = block(x)
        yield index + 2, total
    with torch.inference_mode():
        features = encoder.neck(x.permute(0, 3, 1, 2))
    yield total, total
    return ImageEmbedding(
        features=features,
        original_size=(int(rgb.shape[0]), int(rgb.shape[1])),
        input_size=input_size,
        key=key,
    )


def encode(
    sam: SamModel,
    rgb: np.ndarray,
    model_id: str,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> ImageEmbedding:
    """Encode ``rgb`` in one call; ``should_cancel()`` is polled between blocks."""
    return run_steps(iter_encode(sam, rgb, model_id), progress, should_cancel)


def run_steps(
    steps: Generator[tuple[int, int], None, T],
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> T:
    """Drive a progress-yielding generator to its return value.

    Raises
    ------
    Cancelled
        When ``should_cancel()`` returned True between two steps.
    """
    try:
        while True:
            done, total = next(steps)
            if progress is not None:
                progress(done, total)
            if should_cancel is not None and should_cancel():
                steps.close()
                raise Cancelled("cancelled")
    except StopIteration as finished:
        return finished.value


def check_rgb(rgb: np.ndarray) -> None:
    """Refuse anything but a non-empty (H, W, 3) uint8 array, naming what it got."""
    if (
        not isinstance(rgb, np.ndarray)
        or rgb.dtype != np.uint8
        or rgb.ndim != 3
        or rgb.shape[2] != 3
    ):
        raise ImageError(
            "SAM input must be an (H, W, 3) uint8 array; convert with core.image.to_rgb_uint8 "
            f"(got {getattr(rgb, 'shape', None)} {getattr(rgb, 'dtype', type(rgb).__name__)})."
        )
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"the image is empty (shape {rgb.shape}).")


class EmbeddingCache:
    """Thread-safe LRU of :class:`ImageEmbedding` bounded by total bytes.

    Parameters
    ----------
    max_bytes
        Budget for the embeddings' tensors (:attr:`ImageEmbedding.nbytes`: 4 MiB for SAM and
        MobileSAM, 16 MiB for SAM 2.1 with its high-resolution maps). The most recently
        used embedding is always kept, even if it alone exceeds the budget.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[EmbeddingKey, ImageEmbedding] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: EmbeddingKey) -> ImageEmbedding | None:
        with self._lock:
            embedding = self._items.get(key)
            if embedding is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return embedding

    def put(self, embedding: ImageEmbedding) -> None:
        with self._lock:
            self._items[embedding.key] = embedding
            self._items.move_to_end(embedding.key)
            while len(self._items) > 1 and self._total_bytes() > self.max_bytes:
                self._items.popitem(last=False)

    def __contains__(self, key: EmbeddingKey) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._total_bytes()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _total_bytes(self) -> int:
        return sum(e.nbytes for e in self._items.values())
