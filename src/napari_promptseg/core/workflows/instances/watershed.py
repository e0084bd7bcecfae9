"""Decoder maps → instances: seeds where both distances are small, a seeded watershed.

The same steps, kernels and order as micro-sam 1.8.14's ``InstanceSegmentationWithDecoder
.generate`` (untiled) and torch_em 0.10.9's ``watershed_from_center_and_boundary_distances``:
Gaussian smoothing of the foreground and of both distance maps, seeds = connected components
of (centre distance < t_c) & (boundary distance < t_b) & foreground, a seeded watershed on
the boundary distances restricted to the foreground, then a size filter. The kernels are
bioimage-cpp's (``bioimage_cpp``: the MIT-licensed C++ library that micro-sam, torch_em and
elf run these on since they dropped vigra), so the label images are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import bioimage_cpp as bic
import numpy as np


@dataclass(frozen=True)
class WatershedParams:
    """micro-sam's AIS parameters, with its defaults.

    Attributes
    ----------
    center_distance_threshold : float
        Seeds where the (smoothed) centre distance is below this.
    boundary_distance_threshold : float
        ... and the (smoothed) boundary distance is below this.
    foreground_threshold : float
        Foreground where the (smoothed) foreground probability is above this.
    foreground_smoothing : float
        Gaussian sigma for the foreground map (0: none).
    distance_smoothing : float
        Gaussian sigma for both distance maps (0: none).
    min_size : int
        Objects of fewer pixels are removed (0: keep all).
    """

    center_distance_threshold: float = 0.5
    boundary_distance_threshold: float = 0.5
    foreground_threshold: float = 0.5
    foreground_smoothing: float = 1.0
    distance_smoothing: float = 1.6
    min_size: int = 0


#: micro-sam's defaults (frozen: safe as a default argument).
DEFAULT_WATERSHED = WatershedParams()


def smooth_foreground(foreground: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32 → smoothed (H, W) float32 (unchanged when ``sigma`` is 0)."""
    if sigma > 0:
        return bic.filters.gaussian_smoothing(foreground, sigma=sigma)
    return foreground


def size_filter(segmentation: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects under ``min_size`` pixels and relabel 1..N (torch_em ``size_filter``).

    Modifies ``segmentation`` in place when it removes anything; returns the result
    (uint64 when filtered, the input otherwise).
    """
    if min_size == 0:
        return segmentation
    ids, sizes = np.unique(segmentation, return_counts=True)
    segmentation[np.isin(segmentation, ids[sizes < min_size])] = 0
    relabelled, _, _ = bic.segmentation.relabel_sequential(segmentation.astype(np.uint), offset=1)
    return relabelled


def seeded_watershed(
    foreground: np.ndarray,
    center_distances: np.ndarray,
    boundary_distances: np.ndarray,
    params: WatershedParams = DEFAULT_WATERSHED,
) -> np.ndarray:
    """Instances from the three decoder maps.

    Parameters
    ----------
    foreground, center_distances, boundary_distances : numpy.ndarray
        (H, W) float32 maps from :meth:`.decoder.InstanceDecoder.predict`, unsmoothed.
    params : WatershedParams

    Returns
    -------
    numpy.ndarray
        (H, W) integer labels, 0 background, objects 1..N (uint32 or uint64 as micro-sam
        returns them; an image without objects gives all zeros).
    """
    foreground = smooth_foreground(foreground, params.foreground_smoothing)
    if params.distance_smoothing > 0:
        center_distances = bic.filters.gaussian_smoothing(
            center_distances, params.distance_smoothing
        )
        boundary_distances = bic.filters.gaussian_smoothing(
            boundary_distances, params.distance_smoothing
        )
    fg_mask = foreground > params.foreground_threshold
    marker_map = np.logical_and(
        center_distances < params.center_distance_threshold,
        boundary_distances < params.boundary_distance_threshold,
    )
    marker_map[~fg_mask] = 0
    markers = bic.segmentation.label(marker_map)
    segmentation = bic.segmentation.watershed(boundary_distances, markers=markers, mask=fg_mask)
    return size_filter(segmentation, params.min_size)
