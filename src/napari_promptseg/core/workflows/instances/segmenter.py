"""The front door: a :class:`~...sam.engine.PromptSegmenter` plus its instance decoder.

    >>> inst = InstanceSegmenter.load("vit_t_lm")            # or checkpoint=PATH
    >>> labels = inst.ais(rgb)                               # (H, W) labels
    >>> labels = inst.apg(rgb)                               # prompts from AIS, refined by SAM
    >>> result = inst.ais_stack(planes, should_cancel=...)   # (Z, H, W), merged across z
    >>> labels = inst.ais(big_rgb, tile_shape=(512, 512), halo=(64, 64))  # by tiles

Embeddings come from (and go to) the engine's cache and store; the decoder's maps are
cached per embedding, so AIS with other thresholds, or APG after AIS, costs no network pass.
Planes larger than ``TILE_ABOVE`` (or any plane, given ``tile_shape``) are segmented by
micro-sam's tiles (:mod:`.tiles`, :mod:`.apg_tiled`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Hashable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ...errors import ModelError
from ...models.download import ByteProgress
from ...models.loading import load_model
from ...sam.embedding import ImageEmbedding
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
from .apg_tiled import tiled_prompt_generation
from .checkpoint import AIS, APG, automatic_modes, load_instance_decoder
from .decoder import InstanceDecoder
from .tiles import TileLayout, iter_tiled_maps, tile_layout
from .watershed import DEFAULT_WATERSHED, WatershedParams

Tiling = tuple[Sequence[int] | None, Sequence[int] | None]  # (tile_shape, halo)
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
        # per embedding key, or per (image key, tile shape, halo) for a tiled plane
        self._maps: OrderedDict[Hashable, InstanceMaps] = OrderedDict()
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
        return self._cached_maps(embedding.key, lambda: predict_maps(self.decoder, embedding))

    def _cached_maps(self, key: Hashable, compute: Callable[[], InstanceMaps]) -> InstanceMaps:
        with self._lock:
            found = self._maps.get(key)
            if found is not None:
                self._maps.move_to_end(key)
                return found
        maps = compute()
        with self._lock:
            self._maps[key] = maps
            while len(self._maps) > _MAPS_KEPT:
                self._maps.popitem(last=False)
        return maps

    # -- tiles -----------------------------------------------------------------------------

    def iter_tiled_maps(
        self,
        rgb: np.ndarray,
        layout: TileLayout,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Generator[tuple[int, int], None, InstanceMaps | None]:
        """The stitched maps of a plane cut into ``layout`` (cached), yielding ``(tiles
        done, tiles)``; None when cancelled."""
        key = (self.segmenter.key_for(rgb), layout.tile_shape, layout.halo)
        with self._lock:
            found = self._maps.get(key)
        if found is not None:
            return found
        maps = yield from iter_tiled_maps(
            rgb, layout, self.segmenter.embed, self.maps, should_cancel
        )
        if maps is not None:
            self._cached_maps(key, lambda: maps)
        return maps

    def iter_plane(
        self,
        rgb: np.ndarray,
        params: WatershedParams | APGParams = DEFAULT_WATERSHED,
        layout: TileLayout | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Generator[tuple[int, int], None, tuple[np.ndarray, InstanceMaps] | None]:
        """AIS (or APG, given :class:`APGParams`) on one (H, W, 3) plane, whole or by
        ``layout``'s tiles: yields ``(steps done, steps)`` (one per tile, one for the
        watershed or the prompts) and returns ``(labels, maps)``; None when cancelled."""
        if layout is None:
            yield 0, 2
            embedding = self.segmenter.embed(rgb)
            maps = self.maps(embedding)
            yield 1, 2
            if isinstance(params, APGParams):
                labels = prompt_generation(self.segmenter, embedding, maps, params)
            else:
                labels = segment_maps(maps, params)
            yield 2, 2
            return labels, maps
        steps = len(layout) + 1
        yield 0, steps
        tiled = yield from self.iter_tiled_maps(rgb, layout, should_cancel)
        if tiled is None:
            return None
        if isinstance(params, APGParams):
            labels = tiled_prompt_generation(
                self.segmenter, rgb, layout, tiled, params, self.segmenter.embed
            )
        else:
            labels = segment_maps(tiled, params)
        yield steps, steps
        return labels, tiled

    def segment_plane(
        self,
        rgb: np.ndarray,
        params: WatershedParams | APGParams = DEFAULT_WATERSHED,
        *,
        tile_shape: Sequence[int] | None = None,
        halo: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, InstanceMaps]:
        """(labels, maps) of one plane: by tiles when it is larger than ``TILE_ABOVE`` or
        ``tile_shape`` is given (micro-sam's ``Tiled*`` classes), else whole."""
        layout = tile_layout(rgb.shape[:2], tile_shape, halo)
        result = run_steps(self.iter_plane(rgb, params, layout))
        assert result is not None  # nothing cancels it
        return result

    # -- 2D --------------------------------------------------------------------------------

    def ais(
        self,
        image: np.ndarray | ImageEmbedding,
        params: WatershedParams = DEFAULT_WATERSHED,
        **tiling: Sequence[int] | None,
    ) -> np.ndarray:
        """(H, W) labels by AIS (micro-sam's ``InstanceSegmentationWithDecoder``; for an
        image by tiles, ``TiledInstanceSegmentationWithDecoder``: ``tile_shape=``,
        ``halo=``)."""
        if isinstance(image, ImageEmbedding):
            return segment_maps(self.maps(image), params)
        return self.segment_plane(image, params, **tiling)[0]

    def apg(
        self,
        image: np.ndarray | ImageEmbedding,
        params: APGParams = DEFAULT_APG,
        **tiling: Sequence[int] | None,
    ) -> np.ndarray:
        """(H, W) labels by APG (micro-sam's ``AutomaticPromptGenerator``; by tiles,
        ``TiledAutomaticPromptGenerator``)."""
        if isinstance(image, ImageEmbedding):
            return prompt_generation(self.segmenter, image, self.maps(image), params)
        return self.segment_plane(image, params, **tiling)[0]

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
        tile_shape: Sequence[int] | None = None,
        halo: Sequence[int] | None = None,
    ) -> StackResult:
        """AIS (or APG, given :class:`APGParams`) on each (H, W, 3) uint8 plane of a
        (Z, H, W, 3) stack, objects merged across z as micro-sam's
        ``automatic_3d_segmentation`` does. Cancelling keeps the planes done (merged).
        Large planes (or any, given ``tile_shape``) are segmented by tiles."""
        steps = self.iter_stack(
            planes, params, should_cancel=should_cancel, tile_shape=tile_shape, halo=halo
        )
        return run_steps(steps, progress)

    def iter_stack(
        self,
        planes: Sequence[np.ndarray] | np.ndarray,
        params: WatershedParams | APGParams = DEFAULT_WATERSHED,
        *,
        should_cancel: Callable[[], bool] | None = None,
        tile_shape: Sequence[int] | None = None,
        halo: Sequence[int] | None = None,
    ) -> Generator[tuple[int, int], None, StackResult]:
        """:meth:`ais_stack` as a generator of ``(planes done, planes)`` (for a napari
        worker); ``planes`` may be any sequence that converts a plane when indexed."""
        n = check_planes(planes)
        first = planes[0]
        shape = (int(first.shape[0]), int(first.shape[1]))
        watershed = params if isinstance(params, WatershedParams) else WatershedParams()
        layout = tile_layout(shape, tile_shape, halo)
        if layout is not None:
            return (yield from self._iter_tiled_stack(planes, n, params, layout, should_cancel))
        plane_labels = None
        if isinstance(params, APGParams):
            apg_params = params

            def plane_labels(maps: InstanceMaps, embedding: ImageEmbedding) -> np.ndarray:
                return prompt_generation(self.segmenter, embedding, maps, apg_params)

        return (
            yield from iter_segment_stack(
                lambda z: self.segmenter.embed(first if z == 0 else planes[z]),
                n,
                self.maps,
                watershed,
                plane_shape=shape,
                plane_labels=plane_labels,
                should_cancel=should_cancel,
            )
        )

    def _iter_tiled_stack(
        self,
        planes: Sequence[np.ndarray] | np.ndarray,
        n: int,
        params: WatershedParams | APGParams,
        layout: TileLayout,
        should_cancel: Callable[[], bool] | None,
    ) -> Generator[tuple[int, int], None, StackResult]:
        """Each plane by tiles (its pixels stand in for its embedding), merged across z."""
        watershed = params if isinstance(params, WatershedParams) else WatershedParams()

        def maps_of(rgb: np.ndarray) -> InstanceMaps:
            maps = run_steps(self.iter_tiled_maps(rgb, layout))
            assert maps is not None  # not cancellable inside a plane
            return maps

        plane_labels = None
        if isinstance(params, APGParams):
            apg_params = params

            def plane_labels(maps: InstanceMaps, rgb: np.ndarray) -> np.ndarray:
                return tiled_prompt_generation(
                    self.segmenter, rgb, layout, maps, apg_params, self.segmenter.embed
                )

        return (
            yield from iter_segment_stack(
                lambda z: np.asarray(planes[z]),
                n,
                maps_of,
                watershed,
                plane_shape=layout.shape,
                plane_labels=plane_labels,
                should_cancel=should_cancel,
            )
        )
