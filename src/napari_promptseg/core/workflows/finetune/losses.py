"""The SAM paper's training loss: focal + dice on the masks, MSE on the IoU head.

SAM (Kirillov et al. 2023, appendix A) supervises masks with a linear combination of focal
loss and dice loss in a 20:1 ratio, and the IoU prediction head with the mean squared error
between its prediction and the IoU of the predicted mask with the ground truth. With
several candidate masks (an ambiguous single point) only the candidate with the lowest
mask loss is trained; the IoU head is trained on every candidate.

Masks of a batch come from planes of different sizes: each is compared with its object
inside ``valid``, the part of SAM's (256, 256) mask grid that covers its plane.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0
DICE_WEIGHT = 1.0
IOU_WEIGHT = 1.0
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


def focal_loss(logits: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss averaged over valid pixels: (B, K, h, w) -> (B, K).

    ``truth`` and ``valid`` are (B, 1, h, w) float 0/1.
    """
    truth = truth.expand_as(logits)
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
    p_t = prob * truth + (1 - prob) * (1 - truth)
    alpha_t = FOCAL_ALPHA * truth + (1 - FOCAL_ALPHA) * (1 - truth)
    loss = alpha_t * ce * (1 - p_t) ** FOCAL_GAMMA * valid
    return loss.sum(dim=(2, 3)) / valid.sum(dim=(2, 3)).clamp(min=1)


def dice_loss(logits: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Soft dice loss over valid pixels: (B, K, h, w) -> (B, K)."""
    prob = torch.sigmoid(logits) * valid
    truth = truth.expand_as(logits)
    numerator = 2 * (prob * truth).sum(dim=(2, 3))
    denominator = prob.sum(dim=(2, 3)) + truth.sum(dim=(2, 3))
    return 1 - (numerator + 1) / (denominator + 1)


def mask_iou(logits: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded masks (logit > 0) with the truth, inside ``valid``: (B, K)."""
    predicted = (logits > 0) & (valid > 0.5)
    truth = truth.expand_as(logits) > 0.5
    intersection = (predicted & truth).sum(dim=(2, 3)).float()
    union = (predicted | truth).sum(dim=(2, 3)).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def sam_loss(
    logits: torch.Tensor,
    iou_predictions: torch.Tensor,
    truth: torch.Tensor,
    valid: torch.Tensor,
    allowed: torch.Tensor,
    *,
    focal_weight: float = FOCAL_WEIGHT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one decode round, and which candidate mask it trained.

    Parameters
    ----------
    logits
        (B, 4, h, w) logits of all four mask tokens (token 0: the single-mask output,
        tokens 1-3: the three candidates of an ambiguous prompt).
    iou_predictions
        (B, 4) the IoU head's output.
    truth, valid
        (B, h, w) 0/1 ground truth, and the part of the grid covering each plane.
    allowed
        (B, 4) bool: the candidates each prompt returns (as ``multimask_output`` picks
        them); only those are trained.
    focal_weight
        Weight of the focal loss against the dice loss (1); the paper's 20 by default, 0
        for dice alone (as micro-sam trains). Averaged over the whole mask grid, the focal
        loss first teaches an untrained model to predict nothing: with small objects a
        model learns from random weights far faster with dice alone.

    Returns
    -------
    (loss, chosen)
        Scalar loss (mean over the batch) and the (B,) index of the trained candidate.
    """
    truth, valid = truth[:, None], valid[:, None]
    per_mask = DICE_WEIGHT * dice_loss(logits, truth, valid)
    if focal_weight:
        per_mask = per_mask + focal_weight * focal_loss(logits, truth, valid)
    ranked = torch.where(allowed, per_mask.detach(), torch.inf)
    best = ranked.argmin(dim=1)
    mask_term = per_mask.gather(1, best[:, None])[:, 0]
    actual = mask_iou(logits.detach(), truth, valid)
    squared = torch.where(allowed, (iou_predictions - actual) ** 2, 0.0)
    iou_term = squared.sum(dim=1) / allowed.sum(dim=1)
    return (mask_term + IOU_WEIGHT * iou_term).mean(), best
