"""Differentiable SAM: images → embeddings → simulated interactive prompting → loss.

The engine's decoder (:mod:`..sam.decode`) runs under ``torch.inference_mode`` and caches
image-only work, both wrong while weights change. Training runs segment_anything's own
``PromptEncoder`` and ``MaskDecoder`` modules instead, for the objects of several planes in
one batch: :func:`decode_batch` is ``MaskDecoder.predict_masks`` with each prompt set's
image embedding picked from its plane (upstream repeats one image's embedding).

:func:`interactive_loss` is one training example per object, as in the SAM paper: a first
prompt (a point, or a noisy box), then ``corrections`` rounds, each adding a click in the
error region of the previous mask and giving that mask's logits as the mask input. The
loss of every round counts; gradients do not flow from one round into the next (the
previous mask and the clicks are inputs, as they are for a user).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...sam.embedding import resize_for_sam
from .data import TrainingPlane
from .losses import sam_loss
from .targets import (
    PAD_LABEL,
    Geometry,
    PlaneTargets,
    correction_clicks,
    padded,
    sample_boxes,
    sample_points,
)


def encode_planes(sam: Any, rgbs: Sequence[np.ndarray]) -> torch.Tensor:
    """(P, C, 64, 64) image embeddings of (H, W, 3) uint8 planes, with gradients.

    Each plane is resized and normalised exactly as ``SamPredictor.set_image`` does.
    """
    batch = torch.cat([resize_for_sam(sam, rgb)[0] for rgb in rgbs], dim=0)
    return sam.image_encoder(batch)


def decode_batch(
    sam: Any,
    features: torch.Tensor,
    plane_of: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All four masks for B prompt sets on P planes: ``MaskDecoder.predict_masks``, batched.

    Parameters
    ----------
    features
        (P, C, 64, 64) plane embeddings.
    plane_of
        (B,) the plane of each prompt set.
    sparse, dense
        The prompt encoder's (B, N, C) and (B, C, 64, 64) embeddings.

    Returns
    -------
    (logits, iou)
        (B, 4, 256, 256) logits and (B, 4) predicted IoU of all mask tokens; token 0 is
        ``multimask_output=False``'s mask, tokens 1-3 the three candidates.
    """
    decoder = sam.mask_decoder
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)
    src = features[plane_of] + dense
    pos_src = sam.prompt_encoder.get_dense_pe().expand(src.shape[0], -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
        dim=1,
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    return masks, decoder.iou_prediction_head(iou_token_out)


@dataclass(eq=False)
class ObjectBatch:
    """Objects of several planes, prompted together.

    Attributes
    ----------
    plane_of
        (B,) index of each object's plane in the features.
    truth, valid
        (B, G, G) 0/1: each object on the whole mask grid, and its plane's part of it.
    stride
        Input pixels per grid cell.
    """

    plane_of: torch.Tensor
    truth: torch.Tensor
    valid: torch.Tensor
    stride: float

    def __len__(self) -> int:
        return len(self.plane_of)


def object_batch(
    targets: Sequence[PlaneTargets], chosen: Sequence[torch.Tensor], grid: int
) -> ObjectBatch:
    """Objects ``chosen[i]`` (indices) of ``targets[i]``, plane by plane."""
    parts = [padded(t, c, grid) for t, c in zip(targets, chosen, strict=True)]
    plane_of = torch.cat([torch.full((len(c),), i) for i, c in enumerate(chosen)])
    return ObjectBatch(
        plane_of=plane_of,
        truth=torch.cat([p[0] for p in parts]),
        valid=torch.cat([p[1] for p in parts]),
        stride=targets[0].stride,
    )


def interactive_loss(
    sam: Any,
    features: torch.Tensor,
    batch: ObjectBatch,
    *,
    corrections: int,
    box_probability: float,
    generator: torch.Generator,
    focal_weight: float = 20.0,
) -> tuple[torch.Tensor, float]:
    """Mean loss over the rounds of prompting every object of ``batch``.

    Parameters
    ----------
    features
        (P, C, 64, 64) embeddings of the batch's planes (with or without gradients).
    corrections
        Correcting clicks after the first prompt.
    box_probability
        Chance that an object's first prompt is a box rather than a point.
    focal_weight
        See :func:`.losses.sam_loss`.

    Returns
    -------
    (loss, first_iou)
        The scalar loss, and the mean IoU (on the mask grid) of the first round's trained
        mask, a cheap figure for progress reports.
    """
    device = features.device
    size = len(batch)
    truth, valid, stride = batch.truth, batch.valid, batch.stride
    is_box = torch.rand(size, generator=generator) < box_probability
    points, _ = sample_points(truth, stride, generator)
    boxes = sample_boxes(truth, stride, generator)
    plane_of = batch.plane_of.to(device)
    truth_d, valid_d = truth.to(device), valid.to(device)
    # point starts: [point, pad] (the prompt encoder pads points without a box);
    # box starts: [corner, corner]. Both are two tokens, and stay equal in length as
    # every round adds one click to each object.
    clicks = torch.zeros((size, 0, 2))
    click_labels = torch.zeros((size, 0), dtype=torch.int)
    mask_input = None
    losses = []
    first_iou = 0.0
    for round_index in range(corrections + 1):
        sparse, dense = _encode_prompts(
            sam, is_box, points, boxes, clicks, click_labels, mask_input, device
        )
        logits, iou = decode_batch(sam, features, plane_of, sparse, dense)
        allowed = torch.zeros((size, 4), dtype=torch.bool, device=device)
        multimask = (~is_box).to(device) if round_index == 0 else torch.zeros_like(allowed[:, 0])
        allowed[:, 0] = ~multimask
        allowed[:, 1:] = multimask[:, None]
        loss, best = sam_loss(logits, iou, truth_d, valid_d, allowed, focal_weight=focal_weight)
        losses.append(loss)
        trained = logits.detach()[torch.arange(size, device=device), best]  # (B, G, G)
        predicted = (trained > 0).cpu()
        if round_index == 0:
            hits = (predicted & (truth > 0.5) & (valid > 0.5)).sum((1, 2)).float()
            union = ((predicted & (valid > 0.5)) | (truth > 0.5)).sum((1, 2)).float()
            first_iou = float((hits / union.clamp(min=1)).mean())
        if round_index == corrections:
            break
        click, label = correction_clicks(predicted, truth > 0.5, valid > 0.5, stride, generator)
        clicks = torch.cat([clicks, click[:, None, :]], dim=1)
        click_labels = torch.cat([click_labels, label[:, None].int()], dim=1)
        mask_input = trained[:, None]
    return torch.stack(losses).mean(), first_iou


def _encode_prompts(
    sam: Any,
    is_box: torch.Tensor,
    points: torch.Tensor,
    boxes: torch.Tensor,
    clicks: torch.Tensor,
    click_labels: torch.Tensor,
    mask_input: torch.Tensor | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse and dense prompt embeddings of every object, point and box starts together."""
    encoder = sam.prompt_encoder
    size = len(is_box)
    sparse = torch.empty((size, 2 + clicks.shape[1], encoder.embed_dim), device=device)
    dense_parts: dict[bool, torch.Tensor] = {}
    for box_start in (False, True):
        rows = (is_box == box_start).nonzero()[:, 0]
        if len(rows) == 0:
            continue
        coords, labels = clicks[rows], click_labels[rows]
        if not box_start:
            coords = torch.cat([points[rows, None, :], coords], dim=1)
            labels = torch.cat([torch.ones((len(rows), 1), dtype=torch.int), labels], dim=1)
        has_points = coords.shape[1] > 0
        part_sparse, part_dense = encoder(
            points=(coords.to(device), labels.to(device)) if has_points else None,
            boxes=boxes[rows].to(device) if box_start else None,
            masks=None if mask_input is None else mask_input[rows.to(mask_input.device)],
        )
        sparse = sparse.index_put((rows.to(device),), part_sparse)
        dense_parts[box_start] = part_dense
    if mask_input is None:  # the "no mask" embedding, the same for every object
        dense = next(iter(dense_parts.values()))[:1].expand(size, -1, -1, -1)
    else:
        dense = torch.empty((size, *next(iter(dense_parts.values())).shape[1:]), device=device)
        for box_start, part in dense_parts.items():
            rows = (is_box == box_start).nonzero()[:, 0].to(device)
            dense = dense.index_put((rows,), part)
    return sparse, dense


def augmented_batch(
    sam: Any,
    planes: Sequence[TrainingPlane],
    rng: np.random.Generator,
    augment: bool,
    geometry: Geometry,
) -> tuple[torch.Tensor, list[PlaneTargets]]:
    """Encode (randomly flipped and turned) planes with gradients; their targets."""
    rgbs, targets = [], []
    for plane in planes:
        rgb, labels = plane.rgb, plane.labels
        if augment:
            turns = int(rng.integers(0, 4))
            rgb, labels = np.rot90(rgb, turns), np.rot90(labels, turns)
            if rng.random() < 0.5:
                rgb, labels = rgb[:, ::-1], labels[:, ::-1]
            rgb, labels = np.ascontiguousarray(rgb), np.ascontiguousarray(labels)
        rgbs.append(rgb)
        targets.append(geometry.targets(labels, plane.object_ids()))
    return encode_planes(sam, rgbs), targets


__all__ = [
    "PAD_LABEL",
    "ObjectBatch",
    "augmented_batch",
    "decode_batch",
    "encode_planes",
    "interactive_loss",
    "object_batch",
]
