"""What an instance decoder learns from a label image, and the loss it learns it with.

Ported from torch_em 0.10.9 (MIT licence), as micro-sam 1.8.14 trains its decoders
(``micro_sam.training.default_sam_dataset(with_segmentation_decoder=True)``):

* :func:`distance_targets` is ``torch_em.transform.label.PerObjectDistanceTransform(
  distances=True, boundary_distances=True, directed_distances=False, foreground=True)``:
  channel 0 the foreground, 1 the distance to the object's centre, 2 the inverted distance
  to its boundary, both normalised per object to [0, 1] and 1 outside objects;
* :func:`distance_loss` is ``torch_em.loss.DiceBasedDistanceLoss(mask_distances_in_bg=True)``:
  the dice loss of each channel, the distances compared inside the foreground only.

The centre is the object's centroid, or its most interior pixel when the centroid lies
outside it (``correct_centers=True``). Only numpy, scipy and bioimage-cpp (the kernels
torch_em uses) are needed.
"""

from __future__ import annotations

import bioimage_cpp as bic
import numpy as np
import torch
from scipy import ndimage

EPS = 1e-7  # torch_em's, in the normalisation and the dice denominator


def distance_targets(labels: np.ndarray, *, min_size: int = 0) -> np.ndarray:
    """(H, W) instance labels → (3, H, W) float32 targets (foreground, centre, boundary).

    As torch_em: objects are split into connected components first, and components of
    fewer than ``min_size`` pixels are left out (background).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), not {labels.shape}")
    comps = bic.segmentation.label(labels.astype(np.uint32, copy=False)).astype(np.int64)
    if min_size > 0:
        sizes = np.bincount(comps.ravel())
        small = np.flatnonzero(sizes < min_size)
        comps[np.isin(comps, small[small > 0])] = 0
    boundaries = _inner_boundaries(comps)
    distances = np.ones((2, *comps.shape), np.float32)  # fill value 1.0 outside objects
    for index, window in enumerate(ndimage.find_objects(comps), start=1):
        if window is None:
            continue
        mask = comps[window] == index
        center = tuple(int(c) for c in np.round(ndimage.center_of_mass(mask)))
        inner = ndimage.distance_transform_edt(boundaries[window] == 0).astype(np.float32)
        inner[~mask] = 0
        deepest = np.unravel_index(int(np.argmax(inner)), inner.shape)
        if not mask[center]:
            center = (int(deepest[0]), int(deepest[1]))
        rows, cols = np.indices(mask.shape, dtype=np.float32)
        to_center = np.sqrt((rows - center[0]) ** 2 + (cols - center[1]) ** 2)
        to_boundary = inner[deepest] - inner
        for channel, values in enumerate((to_center, to_boundary)):
            values = np.where(mask, values, 0).astype(np.float32)
            values /= np.abs(values).max() + EPS
            distances[channel][window][mask] = values[mask]
    foreground = (comps > 0).astype(np.float32)
    return np.concatenate([foreground[None], distances])


def _inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """skimage ``find_boundaries(mode="inner")``: object pixels with another 4-neighbour."""
    cross = ndimage.generate_binary_structure(2, 1)
    grown = ndimage.grey_dilation(labels, footprint=cross, mode="reflect")
    shrunk = ndimage.grey_erosion(labels, footprint=cross, mode="reflect")
    return (grown != shrunk) & (labels != 0)


def dice_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """torch_em ``DiceLoss`` of one channel: 1 - 2 sum(xy) / (sum x^2 + sum y^2)."""
    numerator = (prediction * target).sum()
    denominator = (prediction * prediction).sum() + (target * target).sum()
    return 1.0 - 2.0 * numerator / denominator.clamp(min=EPS)


def distance_loss(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """torch_em ``DiceBasedDistanceLoss(mask_distances_in_bg=True)`` of (B, 3, H, W) maps.

    ``weight`` (B, 1, H, W), optional: 0 where the loss must not look (objects held out
    for validation on a plane that also trains), 1 elsewhere.
    """
    if prediction.shape != target.shape or prediction.shape[1] != 3:
        raise ValueError(f"need two (B, 3, H, W) tensors, got {prediction.shape}, {target.shape}")
    if weight is not None:
        prediction, target = prediction * weight, target * weight
    foreground = target[:, 0:1]
    loss = dice_loss(prediction[:, 0:1], foreground)
    for channel in (1, 2):
        loss = loss + dice_loss(
            prediction[:, channel : channel + 1] * foreground,
            target[:, channel : channel + 1] * foreground,
        )
    return loss
