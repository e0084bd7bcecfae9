"""How well AIS found the annotated objects: matching, mean matched IoU, F1 at IoU 0.5.

Used by the instance-decoder training's validation (:mod:`.instance_training`), the demo
model's evaluation (``scripts/train_demo.py``) and its tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MATCH_IOU = 0.5


@dataclass(frozen=True)
class InstanceFigures:
    """AIS on the held-out objects: loss, mean matched IoU, F1 at IoU 0.5."""

    loss: float
    mean_iou: float
    f1: float
    objects: int
    predicted: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def inside_zone(predicted: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """Predicted objects with most of their pixels in ``zone``; the others erased."""
    ids, total = np.unique(predicted, return_counts=True)
    within = np.bincount(predicted[zone].ravel().astype(np.int64), minlength=int(ids.max()) + 1)
    keep = [int(i) for i, n in zip(ids, total, strict=True) if i and within[int(i)] * 2 > n]
    return np.where(np.isin(predicted, keep), predicted, 0)


def match_instances(truth: np.ndarray, predicted: np.ndarray) -> tuple[list[float], int, int]:
    """Each annotated object's best IoU with a predicted one, the matches at IoU > 0.5
    (one-to-one by construction), and the number of predicted objects."""
    t_ids, t_inv = np.unique(truth, return_inverse=True)
    p_ids, p_inv = np.unique(predicted, return_inverse=True)
    t_inv, p_inv = t_inv.ravel(), p_inv.ravel()
    overlap = np.zeros((len(t_ids), len(p_ids)), np.int64)
    np.add.at(overlap, (t_inv, p_inv), 1)
    t_fg, p_fg = t_ids != 0, p_ids != 0
    overlap = overlap[np.ix_(t_fg, p_fg)]
    if not overlap.shape[0]:
        return [], 0, int(overlap.shape[1])
    sizes_t = np.bincount(t_inv, minlength=len(t_ids))[t_fg][:, None]
    sizes_p = np.bincount(p_inv, minlength=len(p_ids))[p_fg][None]
    union = sizes_t + sizes_p - overlap
    iou = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
    best = iou.max(1) if iou.shape[1] else np.zeros(iou.shape[0])
    return [float(b) for b in best], int((iou > MATCH_IOU).sum()), int(iou.shape[1])
