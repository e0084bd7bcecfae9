"""The base model's embeddings of the training planes ("decoder" mode), and their checks.

They come from the segmenter itself (``iter_embed``: its memory cache, its disk store, or
its encoder), so they are always keyed by the base model's id: an embedding another model
left in a shared cache or store has another key and is never used. One that is found under
the right key but does not fit the model (another channel count: a corrupt store entry)
is refused.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import torch

from ...sam.embedding import ImageEmbedding
from ...sam.engine import PromptSegmenter
from .data import TrainingPlane
from .progress import FinetuneProgress
from .settings import FinetuneError


def embed_all(
    segmenter: PromptSegmenter, planes: Sequence[TrainingPlane]
) -> Generator[FinetuneProgress, None, dict[int, ImageEmbedding]]:
    """The base model's embedding of every plane (cached, stored, or computed)."""
    found: dict[int, ImageEmbedding] = {}
    by_key: dict[Any, ImageEmbedding] = {}
    channels = int(segmenter.sam.prompt_encoder.embed_dim)
    for index, plane in enumerate(planes):
        key = segmenter.key_for(plane.rgb)
        embedding = by_key.get(key)
        if embedding is None:
            steps = segmenter.iter_embed(plane.rgb)
            try:
                while True:
                    next(steps)
                    yield FinetuneProgress("embedding", index, len(planes))
            except StopIteration as finished:
                embedding = finished.value
            finally:
                steps.close()
            assert embedding is not None
            check_embedding(embedding, segmenter.model_id, channels, plane.source)
            by_key[key] = embedding
        found[id(plane)] = embedding
        yield FinetuneProgress("embedding", index + 1, len(planes))
    return found


def check_embedding(embedding: ImageEmbedding, model_id: str, channels: int, source: str) -> None:
    """Refuse an embedding of another model (never train one model on another's features)."""
    if embedding.key.model_id != model_id:
        raise FinetuneError(
            f"{source}: the embedding found is of model {embedding.key.model_id!r}, not "
            f"{model_id!r}; refusing to train on another model's embeddings."
        )
    shape = tuple(embedding.features.shape)
    if len(shape) != 4 or shape[1] != channels:
        raise FinetuneError(
            f"{source}: the embedding has shape {shape}, the model needs (1, {channels}, 64, 64); "
            "it was not made by this model. Clear the embedding store and try again."
        )


def trainable_input(embedding: ImageEmbedding) -> torch.Tensor:
    # the engine's embeddings are inference-mode tensors, which autograd may not save
    return embedding.features.detach().clone()
