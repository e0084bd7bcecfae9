"""The engine: one model (SAM, MobileSAM or SAM 2.1), its embedding cache and decoder, four calls.

    >>> from napari_promptseg.core import PromptSegmenter, Prompts, to_rgb_uint8
    >>> seg = PromptSegmenter.load("vit_b")                  # or a local checkpoint
    >>> rgb = to_rgb_uint8(image, contrast_limits=(0, 4000))
    >>> embedding = seg.embed(rgb)                           # slow once, cached after
    >>> result = seg.predict(embedding, Prompts.from_points([[120, 40]]))
    >>> result.mask, result.iou[result.best]

No Qt, no napari: the plugin drives the same object from worker threads, the CLI and
scripts call it directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..models.architectures import SamModel
from ..models.families import SAM
from ..models.loading import LoadedModel, load_model
from ..models.speed import record_embed_seconds
from .decode import DecodeResult
from .embedding import (
    EmbeddingCache,
    EmbeddingKey,
    ImageEmbedding,
    check_rgb,
    run_steps,
)
from .families import Decoder, FamilyRunner, require, runner_for
from .image import image_fingerprint
from .prompts import Prompts
from .threads import torch_threads, torch_work


class EmbeddingStoreLike(Protocol):
    """An embedding store on disk (:class:`~napari_promptseg.core.storage.store.EmbeddingStore`
    or any object with these methods): asked before encoding, given every new embedding."""

    def __contains__(self, key: object) -> bool:
        """Whether an entry for ``key`` is present (cheap: no reading, no validation)."""
        ...

    def load(
        self, key: EmbeddingKey, device: torch.device | str | None = None
    ) -> ImageEmbedding | None: ...

    def save(self, embedding: ImageEmbedding) -> object: ...


class PromptSegmenter:
    """Segment anything with prompts, reusing embeddings.

    Parameters
    ----------
    sam
        The model in eval mode, on its device: a segment_anything ``Sam``, a ``mobile_sam``
        ``Sam`` (family ``"mobilesam"``) or a ``sam2`` ``SAM2Base`` (family ``"sam2.1"``).
    model_id
        A stable identity of the weights; part of every embedding key.
    cache
        Shared in-memory cache; a new 1 GiB one by default.
    store
        Optional on-disk store with ``load(key) -> ImageEmbedding | None`` and
        ``save(embedding)``: embeddings found there are not recomputed.
    family
        ``"sam"``, ``"mobilesam"`` or ``"sam2.1"``: picks how the model is run
        (:func:`~napari_promptseg.core.sam.families.runner_for`); part of every key.
    """

    def __init__(
        self,
        sam: SamModel,
        model_id: str,
        *,
        cache: EmbeddingCache | None = None,
        store: EmbeddingStoreLike | None = None,
        name: str | None = None,
        family: str = SAM,
    ) -> None:
        self.sam = sam
        self.model_id = model_id
        self.name = name or model_id
        self.family = family
        self.runner: FamilyRunner = runner_for(sam, family)
        self.decoder: Decoder = self.runner.decoder
        self.cache = cache if cache is not None else EmbeddingCache()
        self.store = store
        self.last_predict_seconds: float | None = None  # the most recent predict()
        self.encoder_calls = 0  # how many times the image encoder really ran
        self.checkpoint: Path | None = None  # the file the weights came from, if any
        self._count_lock = threading.Lock()

    @classmethod
    def from_model(cls, model: LoadedModel, **kwargs: Any) -> PromptSegmenter:
        """Wrap a :class:`~napari_promptseg.core.models.loading.LoadedModel`."""
        segmenter = cls(model.sam, model.model_id, name=model.name, family=model.family, **kwargs)
        segmenter.checkpoint = model.checkpoint  # an instance decoder may sit beside the weights
        return segmenter

    @classmethod
    def load(cls, name: str | None = None, **kwargs: Any) -> PromptSegmenter:
        """Load a model by registry name or checkpoint (see ``core.models.load_model``)."""
        cache = kwargs.pop("cache", None)
        store = kwargs.pop("store", None)
        return cls.from_model(load_model(name, **kwargs), cache=cache, store=store)

    @property
    def device(self) -> torch.device:
        """Where the model (and so every embedding it computes) lives."""
        return torch.device(self.sam.device)

    @property
    def encode_steps(self) -> int:
        """How many progress steps embedding one image yields (for overall progress bars)."""
        return self.runner.encode_steps

    def require(self, capability: str) -> None:
        """Raise ``FamilyError`` naming this model and its family if it cannot do ``capability``."""
        require(self.runner, capability, self.name)

    # -- embeddings -----------------------------------------------------------------------

    def key_for(self, rgb: np.ndarray) -> EmbeddingKey:
        return EmbeddingKey(image_fingerprint(rgb), self.model_id, self.family)

    def cached(self, rgb: np.ndarray, key: EmbeddingKey | None = None) -> ImageEmbedding | None:
        """The embedding of ``rgb`` from memory or the disk store, without computing it."""
        key = key or self.key_for(rgb)
        embedding = self.cache.get(key)
        if embedding is None and self.store is not None:
            embedding = self.store.load(key, device=self.sam.device)
            if embedding is not None:
                self.cache.put(embedding)
        return embedding

    def iter_embed(self, rgb: np.ndarray) -> Generator[tuple[int, int], None, ImageEmbedding]:
        """Embed ``rgb`` (H, W, 3 uint8), yielding (done, total) progress; returns the embedding.

        A cached embedding is returned without yielding. Closing the generator early
        cancels the computation.
        """
        key = self.key_for(rgb)
        embedding = self.cached(rgb, key)
        if embedding is not None:
            return embedding
        check_rgb(rgb)  # refused input is not an encoder run
        with self._count_lock:
            self.encoder_calls += 1
        embedding = yield from self._timed(self.runner.iter_encode(rgb, key))
        embedding.metadata["model"] = self.name
        self.cache.put(embedding)
        if self.store is not None:
            self.store.save(embedding)
        return embedding

    def _timed(
        self, steps: Generator[tuple[int, int], None, ImageEmbedding]
    ) -> Generator[tuple[int, int], None, ImageEmbedding]:
        """``steps`` passed through; the time spent computing (not waiting between steps)
        is recorded as this model's speed on this machine (:mod:`..models.speed`)."""
        busy = 0.0
        try:
            while True:
                start = time.perf_counter()
                try:
                    with torch_work():  # one encoder step: no thread count changes meanwhile
                        step = next(steps)
                except StopIteration as finished:
                    busy += time.perf_counter() - start
                    record_embed_seconds(self.name, self.device.type, busy)
                    embedding: ImageEmbedding = finished.value
                    return embedding
                busy += time.perf_counter() - start
                yield step
        finally:
            steps.close()

    def embed(
        self,
        rgb: np.ndarray,
        *,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        prepare: bool = True,
    ) -> ImageEmbedding:
        """Embed ``rgb`` in one call (cached). ``prepare`` also readies the decoder for it."""
        embedding = run_steps(self.iter_embed(rgb), progress, should_cancel)
        if prepare:
            self.decoder.prepare(embedding)
        return embedding

    # -- masks ----------------------------------------------------------------------------

    def predict(
        self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool | None = None
    ) -> DecodeResult:
        """Masks for ``prompts`` (napari (row, col) frame) on an embedded image.

        Its duration is kept in :attr:`last_predict_seconds` (the napari session decodes on
        the GUI thread only while decodes are fast).
        """
        started = time.perf_counter()
        with torch_work():
            result = self.decoder.predict(embedding, prompts, multimask=multimask)
        self.last_predict_seconds = time.perf_counter() - started
        return result

    def warm_up_decoder(
        self,
        embedding: ImageEmbedding,
        thread_counts: Sequence[int] = (),
        *,
        settle: int = 2,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[int, float]:
        """Prepare the decoder for ``embedding`` and decode one point at its centre, so the
        first click on it pays for neither.

        With ``thread_counts``, one such decode per count of torch threads (the napari
        session times its options, :mod:`.threads`); else one with torch's own setting.
        Then ``settle`` more on the fastest count: a vit_b decode on a CPU is ~10 ms slower
        for its first few runs after an embedding (the allocator and the thread pool warm
        up; ``benchmarks/peers/ours_driver.py``'s per-click trace), and those are the user's
        first clicks otherwise. ``should_stop`` is asked before each decode (a closing
        viewer's worker stops at once). Returns {threads: seconds} of the timed decodes.
        """
        with torch_work():
            self.decoder.prepare(embedding)
        rows, cols = embedding.original_size
        prompts = Prompts.from_points([[(rows - 1) / 2, (cols - 1) / 2]])
        seconds: dict[int, float] = {}
        stopped = should_stop or (lambda: False)
        for count in thread_counts or (torch.get_num_threads(),):
            if stopped():
                return seconds
            with torch_threads(count) as applied:
                self.predict(embedding, prompts)
            if applied:  # a GUI decode ran meanwhile: this one did not time `count`
                seconds[count] = self.last_predict_seconds or 0.0
        if not seconds:
            return seconds
        fastest = min(seconds, key=lambda count: seconds[count])
        with torch_threads(fastest):
            for _ in range(settle):
                if stopped():
                    break
                self.predict(embedding, prompts)
        self.last_predict_seconds = min(seconds.values())  # what the next click will cost
        return seconds

    def segment(
        self, rgb: np.ndarray, prompts: Prompts, multimask: bool | None = None
    ) -> DecodeResult:
        """Embed (cached) and predict in one call."""
        return self.predict(self.embed(rgb), prompts, multimask=multimask)
