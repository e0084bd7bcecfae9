"""The SAM paper's training loss: focal + dice on the masks, MSE on the IoU head.

SAM (Kirillov et al. 2023, appendix A) supervises masks with a linear combination of focal
loss and dice loss in a 20:1 ratio, and the IoU prediction head with the mean squared error
between its prediction and the IoU of the predicted mask with the ground truth. With
several candidate masks (an ambiguous single point) only the candidate with the lowest
mask loss is trained; the IoU head is trained on every candidate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0
DICE_WEIGHT = 1.0
IOU_WEIGHT = 1.0
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


def focal_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss averaged over pixels: (B, K, h, w), (B, 1, h, w) -> (B, K)."""
    truth = truth.expand_as(logits)
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
    p_t = prob * truth + (1 - prob) * (1 - truth)
    alpha_t = FOCAL_ALPHA * truth + (1 - FOCAL_ALPHA) * (1 - truth)
    return (alpha_t * ce * (1 - p_t) ** FOCAL_GAMMA).mean(dim=(2, 3))


def dice_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Soft dice loss: (B, K, h, w), (B, 1, h, w) -> (B, K)."""
    prob = torch.sigmoid(logits)
    truth = truth.expand_as(logits)
    numerator = 2 * (prob * truth).sum(dim=(2, 3))
    denominator = prob.sum(dim=(2, 3)) + truth.sum(dim=(2, 3))
    return 1 - (numerator + 1) / (denominator + 1)


def mask_iou(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded masks (logit > 0) with the truth: (B, K, h, w) -> (B, K)."""
    predicted = logits > 0
    truth = truth.expand_as(logits) > 0.5
    intersection = (predicted & truth).sum(dim=(2, 3)).float()
    union = (predicted | truth).sum(dim=(2, 3)).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def sam_loss(
    logits: torch.Tensor, iou_predictions: torch.Tensor, truth: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one decode, and which candidate mask it trained.

    Parameters
    ----------
    logits
        (B, K, h, w) mask logits, cropped to the image.
    iou_predictions
        (B, K) the IoU head's output.
    truth
        (B, h, w) 0/1 ground truth.

    Returns
    -------
    (loss, chosen)
        Scalar loss (mean over the batch) and the (B,) index of the trained candidate.
    """
    truth = truth[:, None]
    per_mask = FOCAL_WEIGHT * focal_loss(logits, truth) + DICE_WEIGHT * dice_loss(logits, truth)
    best = per_mask.detach().argmin(dim=1)
    mask_term = per_mask.gather(1, best[:, None])[:, 0]
    actual = mask_iou(logits.detach(), truth)
    iou_term = ((iou_predictions - actual) ** 2).mean(dim=1)
    return (mask_term + IOU_WEIGHT * iou_term).mean(), best
