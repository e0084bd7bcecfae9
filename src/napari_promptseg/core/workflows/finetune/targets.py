"""Ground truth in SAM's mask frame, and prompts sampled from it (the SAM paper's recipe).

SAM's mask decoder predicts (256, 256) logits over the padded 1024-pixel input: one logit
per 4x4 input pixels. Training compares those logits with each object's mask sampled onto
the same grid (:func:`plane_targets`), inside the part of the grid that covers the image
(the padding is cropped away by the engine, so it is not trained either).

Prompts are drawn as in the SAM paper (section 3 and appendix A): the first prompt is a
point sampled uniformly inside the object or its bounding box with noise (10 % of the side,
at most 20 input pixels); each correcting click is sampled uniformly from the error region
of the previous mask, positive where the object was missed, negative where the mask spilled,
and the previous mask's logits are given as the mask input. Coordinates are SAM's (x, y) in
the 1024-pixel input frame. Everything is drawn from a ``torch.Generator``: a seed repeats
a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide

#: A training object must cover at least this many cells of the (256, 256) mask grid.
MIN_GRID_CELLS = 3
BOX_NOISE = 0.1  # std of the box corner noise, as a fraction of the box side
BOX_NOISE_MAX = 20.0  # input pixels
PAD_LABEL = -1  # SAM's "not a point" label: a click slot left empty


@dataclass(eq=False)
class PlaneTargets:
    """The objects of one plane on SAM's mask grid.

    Attributes
    ----------
    masks
        (N, h, w) bool tensor: object ``ids[i]`` on the part of the (256, 256) grid that
        covers the image; (h, w) = ``grid_size``.
    ids
        The object ids, in the order of ``masks``.
    input_size
        (h, w) of the image resized to SAM's input (longest side 1024).
    grid_size
        (h, w) of the mask grid that covers the image.
    stride
        Input pixels per grid cell (4 for every SAM).
    """

    masks: torch.Tensor
    ids: list[int]
    input_size: tuple[int, int]
    grid_size: tuple[int, int]
    stride: float

    def __len__(self) -> int:
        return len(self.ids)


def plane_targets(
    labels: np.ndarray,
    ids: list[int],
    *,
    encoder_size: int = 1024,
    grid: int = 256,
) -> PlaneTargets:
    """Sample the objects ``ids`` of ``labels`` ((H, W) integers) onto SAM's mask grid.

    Each grid cell takes the label at its centre (nearest neighbour). Objects covering
    fewer than :data:`MIN_GRID_CELLS` cells are dropped (a point on them would be a guess).
    """
    height, width = labels.shape
    input_size = ResizeLongestSide.get_preprocess_shape(height, width, encoder_size)
    stride = encoder_size / grid
    grid_h, grid_w = (math.ceil(n / stride) for n in input_size)
    scale_r, scale_c = input_size[0] / height, input_size[1] / width
    rows = np.minimum(((np.arange(grid_h) + 0.5) * stride / scale_r).astype(int), height - 1)
    cols = np.minimum(((np.arange(grid_w) + 0.5) * stride / scale_c).astype(int), width - 1)
    small = labels[rows[:, None], cols[None, :]]
    wanted = np.asarray(ids, dtype=small.dtype)
    masks = small[None, :, :] == wanted[:, None, None]
    keep = masks.reshape(len(ids), -1).sum(1) >= MIN_GRID_CELLS
    return PlaneTargets(
        masks=torch.from_numpy(np.ascontiguousarray(masks[keep])),
        ids=[int(i) for i, k in zip(ids, keep, strict=True) if k],
        input_size=(int(input_size[0]), int(input_size[1])),
        grid_size=(grid_h, grid_w),
        stride=stride,
    )


def padded(
    targets: PlaneTargets, chosen: torch.Tensor, grid: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Objects ``chosen`` of ``targets`` on the whole (grid, grid) mask grid.

    Returns (masks, valid): (B, grid, grid) float 0/1 each, ``valid`` the cells that cover
    the plane.
    """
    grid_h, grid_w = targets.grid_size
    masks = torch.zeros((len(chosen), grid, grid))
    masks[:, :grid_h, :grid_w] = targets.masks[chosen].float()
    valid = torch.zeros((len(chosen), grid, grid))
    valid[:, :grid_h, :grid_w] = 1.0
    return masks, valid


def sample_points(
    masks: torch.Tensor, stride: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One point per mask, uniformly inside it.

    Parameters
    ----------
    masks
        (B, h, w) 0/1 on the mask grid.

    Returns
    -------
    (coords, found)
        (B, 2) SAM (x, y) input-frame coordinates (a random spot inside the cell), and (B,)
        bool: False where the mask was empty (its coordinate is meaningless).
    """
    b, _, w = masks.shape
    flat = masks.reshape(b, -1)
    found = flat.sum(1) > 0
    weights = torch.where(found[:, None], flat, torch.ones_like(flat))
    index = torch.multinomial(weights, 1, generator=generator)[:, 0]
    row, col = index // w, index % w
    jitter = torch.rand((b, 2), generator=generator)
    coords = torch.stack([col, row], dim=1).float()
    return (coords + jitter) * stride, found


def sample_boxes(masks: torch.Tensor, stride: float, generator: torch.Generator) -> torch.Tensor:
    """(B, 4) SAM boxes (x0, y0, x1, y1) around each mask, corners moved by noise."""
    rows_any, cols_any = masks.amax(2) > 0, masks.amax(1) > 0
    span = torch.arange(masks.shape[1]), torch.arange(masks.shape[2])
    big = 1 << 30
    y0 = torch.where(rows_any, span[0], big).amin(1)
    y1 = torch.where(rows_any, span[0], -1).amax(1) + 1
    x0 = torch.where(cols_any, span[1], big).amin(1)
    x1 = torch.where(cols_any, span[1], -1).amax(1) + 1
    box = torch.stack([x0, y0, x1, y1], dim=1).float() * stride
    side = torch.stack([x1 - x0, y1 - y0, x1 - x0, y1 - y0], dim=1).float() * stride
    noise = torch.randn(box.shape, generator=generator) * (BOX_NOISE * side)
    noise = noise.clamp(-BOX_NOISE_MAX, BOX_NOISE_MAX)
    limit = torch.tensor([masks.shape[2], masks.shape[1]] * 2).float() * stride
    box = torch.minimum((box + noise).clamp(min=0.0), limit)
    # keep the box at least one cell wide whatever the noise did
    x_lo, x_hi = torch.minimum(box[:, 0], box[:, 2]), torch.maximum(box[:, 0], box[:, 2])
    y_lo, y_hi = torch.minimum(box[:, 1], box[:, 3]), torch.maximum(box[:, 1], box[:, 3])
    return torch.stack(
        [x_lo, y_lo, torch.maximum(x_hi, x_lo + stride), torch.maximum(y_hi, y_lo + stride)], 1
    )


def correction_clicks(
    predicted: torch.Tensor,
    truth: torch.Tensor,
    valid: torch.Tensor,
    stride: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One correcting click per mask, uniformly in its error region.

    Parameters
    ----------
    predicted, truth, valid
        (B, h, w) bool on the mask grid; ``valid`` is the part that covers the plane
        (errors in the padding are no errors: the engine crops it away).

    Returns
    -------
    (coords, labels)
        (B, 2) input-frame (x, y) and (B,) labels: 1 where the object was missed, 0 where
        the mask spilled, :data:`PAD_LABEL` where the mask has no error (no click).
    """
    errors = (predicted ^ truth) & valid
    coords, found = sample_points(errors.float(), stride, generator)
    b, _, w = truth.shape
    col = (coords[:, 0] / stride).long().clamp(0, w - 1)
    row = (coords[:, 1] / stride).long().clamp(0, truth.shape[1] - 1)
    positive = truth[torch.arange(b), row, col]
    labels = torch.where(positive, 1, 0)
    labels = torch.where(found, labels, PAD_LABEL)
    return coords, labels


@dataclass(frozen=True)
class Geometry:
    """The model's input size and mask grid (1024 and 256 for every SAM)."""

    encoder_size: int
    grid: int

    @classmethod
    def of(cls, sam: Any) -> Geometry:
        embedding_size = int(sam.prompt_encoder.image_embedding_size[0])
        return cls(int(sam.image_encoder.img_size), 4 * embedding_size)

    def targets(self, labels: np.ndarray, ids: list[int]) -> PlaneTargets:
        """The objects ``ids`` of ``labels`` on this model's mask grid."""
        return plane_targets(labels, ids, encoder_size=self.encoder_size, grid=self.grid)
