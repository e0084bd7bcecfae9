"""The front door: a :class:`~...sam.engine.PromptSegmenter` plus its instance decoder.

    >>> inst = InstanceSegmenter.load("vit_t_lm")            # or checkpoint=PATH
    >>> labels = inst.ais(rgb)                               # (H, W) labels
    >>> labels = inst.apg(rgb)                               # prompts from AIS, refined by SAM
    >>> result = inst.ais_stack(planes, should_cancel=...)   # (Z, H, W), merged across z

Embeddings come from (and go to) the engine's cache and store; the decoder's maps are
cached per embedding, so AIS with other thresholds, or APG after AIS, costs no network pass.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ...errors import ModelError
from ...models.download import ByteProgress
from ...models.loading import load_model
from ...sam.embedding import EmbeddingKey, ImageEmbedding
from ...sam.engine import PromptSegmenter
from .ais import (
    InstanceMaps,
    StackResult,
    check_planes,
    iter_segment_stack,
    predict_maps,
    run_steps,
    segment_maps,
)
from .apg import DEFAULT_APG, APGParams, prompt_generation
from .checkpoint import AIS, APG, automatic_modes, load_instance_decoder
from .decoder import InstanceDecoder
from .watershed import DEFAULT_WATERSHED, WatershedParams

_MAPS_KEPT = 8  # decoder maps of the last few images (3 x H x W float32 each)


class InstanceSegmenter:
    """AIS and APG on a prompt segmenter's embeddings.

    Parameters
    ----------
    segmenter : PromptSegmenter
        The engine (its model must be SAM or MobileSAM: an embedding of 256 x 64 x 64).
    decoder : InstanceDecoder
        From :func:`.checkpoint.load_instance_decoder`.
    """

    def __init__(self, segmenter: PromptSegmenter, decoder: InstanceDecoder) -> None:
        if segmenter.family == "sam2.1":
            raise ModelError("micro-sam's instance decoders run on SAM / MobileSAM models")
        self.segmenter = segmenter
        self.decoder = decoder
        self._maps: OrderedDict[EmbeddingKey, InstanceMaps] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        name: str | None = None,
        *,
        decoder: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> InstanceSegmenter:
        """Load a registry model or ``checkpoint=`` with its decoder (``ModelError`` naming
        the model's modes when it has none). ``kwargs`` go to ``load_model``; ``cache=``
        and ``store=`` to the engine."""
        cache = kwargs.pop("cache", None)
        store = kwargs.pop("store", None)
        model = load_model(name, device=device, **kwargs)
        head = load_instance_decoder(
            model,
            decoder,
            device=model.device,
            progress=kwargs.get("progress", True),
            offline=kwargs.get("offline", False),
        )
        return cls(PromptSegmenter.from_model(model, cache=cache, store=store), head)

    @classmethod
    def from_segmenter(
        cls,
        segmenter: PromptSegmenter,
        checkpoint: str | os.PathLike | None = None,
        *,
        decoder: str | os.PathLike | None = None,
        progress: bool | ByteProgress = True,
        offline: bool = False,
    ) -> InstanceSegmenter:
        """Add a decoder to a loaded engine (sharing its embedding cache and store).

        ``checkpoint``: the micro-sam file the engine's weights came from (its
        ``decoder_state`` is used); ``decoder``: a separate decoder file instead. A registry
        model (named as in :data:`.decoders.DECODER_MODELS`) without either gets micro-sam's
        decoder file, downloaded on request. ``ModelError`` names the modes the model has
        when there is no decoder.
        """
        model = SimpleNamespace(
            name=segmenter.name,
            family=segmenter.family,
            model_type=None,
            sam=segmenter.sam,
            device=segmenter.device,
            checkpoint=Path(checkpoint) if checkpoint is not None else None,
        )
        head = load_instance_decoder(
            model, decoder, device=segmenter.device, progress=progress, offline=offline
        )
        return cls(segmenter, head)

    @property
    def modes(self) -> tuple[str, ...]:
        """("ais", "apg", "grid")."""
        return automatic_modes(True, self.segmenter.family)

    # -- maps ------------------------------------------------------------------------------

    def maps(self, image: np.ndarray | ImageEmbedding) -> InstanceMaps:
        """The decoder maps of an (H, W, 3) uint8 image or of its embedding (cached)."""
        embedding = image if isinstance(image, ImageEmbedding) else self.segmenter.embed(image)
        with self._lock:
            found = self._maps.get(embedding.key)
            if found is not None:
                self._maps.move_to_end(embedding.key)
                return found
        maps = predict_maps(self.decoder, embedding)
        with self._lock:
            self._maps[embedding.key] = maps
            while len(self._maps) > _MAPS_KEPT:
                self._maps.popitem(last=False)
        return maps

    # -- 2D --------------------------------------------------------------------------------

    def ais(
        self, image: np.ndarray | ImageEmbedding, params: WatershedParams = DEFAULT_WATERSHED
    ) -> np.ndarray:
        """(H, W) labels by AIS (micro-sam's ``InstanceSegmentationWithDecoder``)."""
        return segment_maps(self.maps(image), params)

    def apg(
        self, image: np.ndarray | ImageEmbedding, params: APGParams = DEFAULT_APG
    ) -> np.ndarray:
        """(H, W) labels by APG (micro-sam's ``AutomaticPromptGenerator``)."""
        embedding = image if isinstance(image, ImageEmbedding) else self.segmenter.embed(image)
        return prompt_generation(self.segmenter, embedding, self.maps(embedding), params)

    def segment(
        self, image: np.ndarray | ImageEmbedding, mode: str = AIS, **params: Any
    ) -> np.ndarray:
        """``ais`` or ``apg`` by name, with that mode's parameters as keywords."""
        if mode == AIS:
            return self.ais(image, WatershedParams(**params))
        if mode == APG:
            return self.apg(image, APGParams(**params))
        raise ValueError(f"unknown instance mode {mode!r}; use {AIS!r} or {APG!r}")

    # -- 3D --------------------------------------------------------------------------------

    def ais_stack(
        self,
        planes: Sequence[np.ndarray] | np.ndarray,
        params: WatershedParams | APGParams = DEFAULT_WATERSHED,
        *,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> StackResult:
        """AIS (or APG, given :class:`APGParams`) on each (H, W, 3) uint8 plane of a
        (Z, H, W, 3) stack, objects merged across z as micro-sam's
        ``automatic_3d_segmentation`` does. Cancelling keeps the planes done (merged)."""
        return run_steps(self.iter_stack(planes, params, should_cancel=should_cancel), progress)

    def iter_stack(
        self,
        planes: Sequence[np.ndarray] | np.ndarray,
        params: WatershedParams | APGParams = DEFAULT_WATERSHED,
        *,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Generator[tuple[int, int], None, StackResult]:
        """:meth:`ais_stack` as a generator of ``(planes done, planes)`` (for a napari
        worker); ``planes`` may be any sequence that converts a plane when indexed."""
        n = check_planes(planes)
        plane_labels = None
        if isinstance(params, APGParams):
            apg_params = params

            def plane_labels(maps: InstanceMaps, embedding: ImageEmbedding) -> np.ndarray:
                return prompt_generation(self.segmenter, embedding, maps, apg_params)

        first = planes[0]
        shape = (int(first.shape[0]), int(first.shape[1]))
        return (
            yield from iter_segment_stack(
                lambda z: self.segmenter.embed(first if z == 0 else planes[z]),
                n,
                self.maps,
                params if isinstance(params, WatershedParams) else WatershedParams(),
                plane_shape=shape,
                plane_labels=plane_labels,
                should_cancel=should_cancel,
            )
        )
