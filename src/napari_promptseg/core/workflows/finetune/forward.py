"""Differentiable SAM: images → embeddings → simulated interactive prompting → loss.

The engine's decoder (:mod:`..sam.decode`) runs under ``torch.inference_mode`` and caches
image-only work, both wrong while weights change. Training runs segment_anything's own
``PromptEncoder`` and ``MaskDecoder`` modules instead, batched over the objects of a plane
(the decoder repeats the image embedding for each prompt set).

:func:`interactive_loss` is one training example per object, as in the SAM paper: a first
prompt (a point or a noisy box), then ``corrections`` rounds, each adding a click in the
error region of the previous mask and giving that mask's logits as the mask input. The
loss of every round counts; gradients do not flow from one round into the next (the
previous mask and the clicks are inputs, as they are for a user).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...sam.embedding import resize_for_sam
from .losses import sam_loss
from .targets import PlaneTargets, correction_clicks, sample_boxes, sample_points


def encode_planes(sam: Any, rgbs: Sequence[np.ndarray]) -> torch.Tensor:
    """(B, C, 64, 64) image embeddings of (H, W, 3) uint8 planes, with gradients.

    Each plane is resized and normalised exactly as ``SamPredictor.set_image`` does.
    """
    batch = torch.cat([resize_for_sam(sam, rgb)[0] for rgb in rgbs], dim=0)
    return sam.image_encoder(batch)


def decode(
    sam: Any,
    features: torch.Tensor,
    *,
    coords: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
    mask_input: torch.Tensor | None = None,
    multimask: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks for B prompt sets on one image.

    Parameters
    ----------
    features
        (1, C, 64, 64) embedding of the image.
    coords, labels
        (B, N, 2) input-frame (x, y) and (B, N) point labels (1, 0, or -1 for no point).
    boxes
        (B, 4) input-frame (x0, y0, x1, y1).
    mask_input
        (B, 1, 256, 256) logits of a previous mask.

    Returns
    -------
    (logits, iou)
        (B, K, 256, 256) low-resolution mask logits and (B, K) predicted IoU; K = 3 with
        ``multimask``, else 1 (the same candidates as ``SamPredictor.predict``).
    """
    device = features.device
    points = None
    if coords is not None and labels is not None:
        points = (coords.to(device), labels.to(device))
    sparse, dense = sam.prompt_encoder(
        points=points,
        boxes=None if boxes is None else boxes.to(device),
        masks=None if mask_input is None else mask_input.to(device),
    )
    return sam.mask_decoder(
        image_embeddings=features,
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )


def interactive_loss(
    sam: Any,
    features: torch.Tensor,
    targets: PlaneTargets,
    chosen: torch.Tensor,
    *,
    corrections: int,
    box_probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, float]:
    """Mean loss over the rounds of prompting the objects ``chosen`` of one plane.

    Parameters
    ----------
    features
        (1, C, 64, 64) embedding of the plane (with or without gradients).
    targets
        The plane's objects on the mask grid.
    chosen
        (B,) indices into ``targets`` of the objects to prompt.
    corrections
        Correcting clicks after the first prompt.
    box_probability
        Chance that the first prompt is a box rather than a point (one draw per call).

    Returns
    -------
    (loss, first_iou)
        The scalar loss, and the mean IoU (on the mask grid) of the first round's trained
        mask, a cheap figure for progress reports.
    """
    truth = targets.masks[chosen].to(features.device)
    grid_h, grid_w = targets.grid_size
    stride = targets.stride
    batch = len(chosen)
    coords = labels = boxes = mask_input = None
    use_box = bool(torch.rand((), generator=generator) < box_probability)
    if use_box:
        boxes = sample_boxes(truth.cpu(), stride, generator)
    else:
        points, _ = sample_points(truth.cpu(), stride, generator)
        coords, labels = points[:, None, :], torch.ones((batch, 1), dtype=torch.int)
    losses = []
    first_iou = 0.0
    for round_index in range(corrections + 1):
        logits, iou = decode(
            sam,
            features,
            coords=coords,
            labels=labels,
            boxes=boxes,
            mask_input=mask_input,
            multimask=round_index == 0 and not use_box,  # a lone point is ambiguous
        )
        loss, best = sam_loss(logits[..., :grid_h, :grid_w], iou, truth)
        losses.append(loss)
        trained = logits.detach()[torch.arange(batch), best]  # (B, 256, 256)
        if round_index == 0:
            predicted = trained[:, :grid_h, :grid_w] > 0
            hits = (predicted & (truth > 0.5)).sum((1, 2)).float()
            union = (predicted | (truth > 0.5)).sum((1, 2)).float().clamp(min=1)
            first_iou = float((hits / union).mean())
        if round_index == corrections:
            break
        predicted = (trained[:, :grid_h, :grid_w] > 0).cpu()
        click, click_label = correction_clicks(predicted, truth.cpu() > 0.5, stride, generator)
        click, click_label = click[:, None, :], click_label[:, None].int()
        coords = click if coords is None else torch.cat([coords, click], dim=1)
        labels = click_label if labels is None else torch.cat([labels, click_label], dim=1)
        mask_input = trained[:, None]
    return torch.stack(losses).mean(), first_iou
