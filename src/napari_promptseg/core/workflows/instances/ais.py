"""Automatic instance segmentation (AIS): decoder maps from the cached embedding, watershed.

One decoder pass per image on the embedding the engine already holds (the encoder never
runs twice), then :func:`.watershed.seeded_watershed`. For stacks, each plane is segmented
in 2D and the planes are merged into 3D objects (:mod:`.merge3d`), as micro-sam's
``automatic_3d_segmentation`` does; a cancelled stack keeps the planes already done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ...errors import ImageError
from ...sam.embedding import ImageEmbedding
from ...sam.threads import torch_work
from .decoder import InstanceDecoder
from .merge3d import merge_planes, offset_planes
from .watershed import DEFAULT_WATERSHED, WatershedParams, seeded_watershed

#: what ``embed(z)`` gives a stack run: a plane's embedding, or its pixels when tiled
Plane = TypeVar("Plane")
Result = TypeVar("Result")


@dataclass(eq=False)
class InstanceMaps:
    """The decoder's three maps for one image, each (H, W) float32 in [0, 1].

    Attributes
    ----------
    foreground : numpy.ndarray
        Foreground probability.
    center_distances : numpy.ndarray
        Normalised distance to the object centre (small at centres).
    boundary_distances : numpy.ndarray
        Normalised inverted distance to the boundary (small inside objects).
    """

    foreground: np.ndarray
    center_distances: np.ndarray
    boundary_distances: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.foreground.shape[0]), int(self.foreground.shape[1]))


def predict_maps(decoder: InstanceDecoder, embedding: ImageEmbedding) -> InstanceMaps:
    """One decoder pass on an embedding: its :class:`InstanceMaps` at the image's size."""
    if embedding.high_res_features:
        raise ImageError("instance decoders run on SAM / MobileSAM embeddings, not SAM 2.1's")
    with torch_work():
        out = decoder.predict(embedding.features, embedding.input_size, embedding.original_size)
    return InstanceMaps(out[0], out[1], out[2])


def segment_maps(maps: InstanceMaps, params: WatershedParams = DEFAULT_WATERSHED) -> np.ndarray:
    """(H, W) labels from the maps (micro-sam's ``InstanceSegmentationWithDecoder.generate``).

    An image without objects gives an all-zero label image.
    """
    return seeded_watershed(maps.foreground, maps.center_distances, maps.boundary_distances, params)


@dataclass
class StackResult:
    """What a 3D run produced.

    Attributes
    ----------
    labels : numpy.ndarray
        (Z, H, W) uint32; objects merged across planes. Planes not reached (cancelled)
        are 0.
    planes_done : int
        Planes segmented (all of them unless :attr:`cancelled`).
    cancelled : bool
    seconds : dict
        Time per stage: "decoder", "watershed", "merge" (embedding excluded).
    """

    labels: np.ndarray
    planes_done: int
    cancelled: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


def segment_stack(
    embed: Callable[[int], Plane],
    n_planes: int,
    maps_of: Callable[[Plane], InstanceMaps],
    params: WatershedParams = DEFAULT_WATERSHED,
    *,
    plane_shape: tuple[int, int],
    plane_labels: Callable[[InstanceMaps, Plane], np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> StackResult:
    """AIS per plane, then the planes merged into 3D objects (:func:`iter_segment_stack`
    run to its end).

    Parameters
    ----------
    embed : callable
        ``embed(z)`` → the (cached) embedding of plane ``z`` (or, for tiled planes, what
        ``maps_of`` and ``plane_labels`` take: its pixels).
    n_planes : int
    maps_of : callable
        ``maps_of(embedding)`` → its :class:`InstanceMaps` (e.g. ``lambda e:
        predict_maps(decoder, e)``, or a cache in front of it).
    params : WatershedParams
    plane_shape : tuple of int
        (H, W) of a plane (the result's shape when cancelled before the first plane).
    plane_labels : callable, optional
        ``(maps, embedding) -> (H, W) labels`` for one plane instead of the watershed
        (APG uses it).
    progress : callable, optional
        ``progress(done, total)`` after each plane.
    should_cancel : callable, optional
        Asked before each plane; when it answers True the run stops and the planes done
        so far are merged and returned (``cancelled=True``).
    """
    steps = iter_segment_stack(
        embed,
        n_planes,
        maps_of,
        params,
        plane_shape=plane_shape,
        plane_labels=plane_labels,
        should_cancel=should_cancel,
    )
    return run_steps(steps, progress)


def run_steps(
    steps: Generator[tuple[int, int], None, Result],
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Drive a step generator to its end, passing each ``(done, total)`` to ``progress``;
    returns what the generator returns."""
    while True:
        try:
            done, total = next(steps)
        except StopIteration as finished:
            result: Result = finished.value
            return result
        if progress is not None:
            progress(done, total)


def iter_segment_stack(
    embed: Callable[[int], Plane],
    n_planes: int,
    maps_of: Callable[[Plane], InstanceMaps],
    params: WatershedParams = DEFAULT_WATERSHED,
    *,
    plane_shape: tuple[int, int],
    plane_labels: Callable[[InstanceMaps, Plane], np.ndarray] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, StackResult]:
    """:func:`segment_stack` as a generator: yields ``(planes done, planes)`` after each
    plane (a napari worker reports progress there) and returns the :class:`StackResult`.
    To stop and keep the planes done, make ``should_cancel`` answer True."""
    if n_planes < 1:
        raise ImageError("a stack needs at least one plane")
    planes: list[np.ndarray] = []
    seconds = {"decoder": 0.0, "watershed": 0.0, "merge": 0.0}
    cancelled = False
    for z in range(n_planes):
        if should_cancel is not None and should_cancel():
            cancelled = True
            break
        embedding = embed(z)
        started = time.perf_counter()
        maps = maps_of(embedding)
        seconds["decoder"] += time.perf_counter() - started
        started = time.perf_counter()
        seg = plane_labels(maps, embedding) if plane_labels else segment_maps(maps, params)
        seconds["watershed"] += time.perf_counter() - started
        planes.append(seg)
        yield z + 1, n_planes
    if not planes:
        return StackResult(np.zeros((n_planes, *plane_shape), np.uint32), 0, True, seconds)
    started = time.perf_counter()
    merged = merge_planes(offset_planes(planes))
    seconds["merge"] = time.perf_counter() - started
    labels = np.zeros((n_planes, *merged.shape[1:]), dtype=np.uint32)
    labels[: len(planes)] = merged
    return StackResult(labels, len(planes), cancelled, seconds)


def check_planes(planes: Sequence[np.ndarray] | np.ndarray) -> int:
    """Number of planes of a (Z, H, W[, 3]) stack; ``ImageError`` for anything else."""
    if isinstance(planes, np.ndarray) and planes.ndim not in (3, 4):
        raise ImageError(f"a stack must be (Z, H, W) or (Z, H, W, 3), not {planes.shape}")
    return len(planes)
