"""Automatic prompt generation (APG): point prompts from the decoder maps, masks from SAM.

micro-sam 1.8.14's ``AutomaticPromptGenerator.generate``: seeds as in AIS (without
smoothing), one positive point per seed at its most interior pixel, SAM's mask decoder on
those points in batches (``micro_sam.inference.batched_inference``), optionally once more on
boxes around the masks, then mask NMS by predicted IoU x stability and the masks pasted
largest first (``util.apply_nms``, ``mask_data_to_segmentation``). Same operations in the
same order, on the cached embedding, so the label image equals micro-sam's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from segment_anything.utils import amg as amg_utils
from segment_anything.utils.transforms import ResizeLongestSide
from skimage.measure import regionprops
from skimage.segmentation import find_boundaries

from ...sam.embedding import ImageEmbedding
from ...sam.threads import torch_work
from . import blockwise
from .ais import InstanceMaps
from .mask_threshold import AUTO, local_otsu_thresholds


@dataclass(frozen=True)
class APGParams:
    """micro-sam's APG parameters, with its defaults.

    ``mask_threshold``: None for SAM's 0, a logit, or ``"auto"`` for one threshold per mask
    from a local Otsu of its logits (:mod:`.mask_threshold`)."""

    min_size: int = 25
    center_distance_threshold: float = 0.5
    boundary_distance_threshold: float = 0.5
    foreground_threshold: float = 0.5
    multimasking: bool = False
    batch_size: int = 32
    nms_threshold: float = 0.9
    intersection_over_min: bool = False
    mask_threshold: float | str | None = None
    refine_with_box_prompts: bool = False


#: micro-sam's defaults (frozen: safe as a default argument).
DEFAULT_APG = APGParams()


def point_prompts(maps: InstanceMaps, params: APGParams = DEFAULT_APG) -> np.ndarray | None:
    """(N, 1, 2) (x, y) points, one per seed component, or None without seeds."""
    seeds = np.logical_and(
        maps.center_distances < params.center_distance_threshold,
        maps.boundary_distances < params.boundary_distance_threshold,
    )
    seeds[maps.foreground < params.foreground_threshold] = 0
    centers = _centers(blockwise.label(seeds))
    if len(centers) == 0:
        return None
    return centers[:, None, ::-1]


def _centers(segmentation: np.ndarray) -> np.ndarray:
    """(N, 2) (row, col) of each object's maximum distance to its outer boundary."""
    inside = find_boundaries(segmentation, mode="outer") == 0
    inside[0, :] = inside[:, 0] = inside[-1, :] = inside[:, -1] = False
    distances = blockwise.distance_transform(inside)
    centers = []
    for prop in regionprops(segmentation):
        box = np.s_[prop.bbox[0] : prop.bbox[2], prop.bbox[1] : prop.bbox[3]]
        dist = distances[box].copy()
        dist[segmentation[box] != prop.label] = 0
        center = np.unravel_index(np.argmax(dist), dist.shape)
        centers.append(tuple(c + b.start for c, b in zip(center, box, strict=True)))
    return np.array(centers)


@torch.no_grad()
def batched_masks(
    sam: Any,
    embedding: ImageEmbedding,
    params: APGParams,
    points: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """SAM's masks for N prompts in batches (``batched_inference`` without its extras)."""
    device = embedding.features.device
    transform = ResizeLongestSide(1024)
    size = embedding.original_size
    if points is not None:
        n = len(points)
        coords = torch.tensor(transform.apply_coords(points, size), dtype=torch.float32).to(device)
        labels = torch.tensor(np.ones((n, 1)), dtype=torch.float32).to(device)
    else:
        assert boxes is not None
        n = len(boxes)
        box_t = torch.tensor(transform.apply_boxes(boxes, size), dtype=torch.float32).to(device)
    fixed = sam.mask_threshold if params.mask_threshold is None else params.mask_threshold
    data = amg_utils.MaskData()
    dense_pe = sam.prompt_encoder.get_dense_pe()
    for start in range(0, n, params.batch_size):
        stop = min(start + params.batch_size, n)
        sparse, dense = sam.prompt_encoder(
            points=(coords[start:stop], labels[start:stop]) if points is not None else None,
            boxes=box_t[start:stop] if points is None else None,
            masks=None,
        )
        low_res, ious = sam.mask_decoder(
            image_embeddings=embedding.features,
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=params.multimasking,
        )
        masks = sam.postprocess_masks(low_res, embedding.input_size, size)
        if params.multimasking:
            _, best = ious.max(axis=1)
            masks = torch.cat([masks[i, b][None] for i, b in enumerate(best)]).unsqueeze(1)
            ious = torch.cat([ious[i, b][None] for i, b in enumerate(best)]).unsqueeze(1)
            low_res = torch.cat([low_res[i, b][None] for i, b in enumerate(best)]).unsqueeze(1)
        # "auto": thresholds from the low-resolution logits, applied to the full-size ones
        threshold = local_otsu_thresholds(low_res) if fixed == AUTO else fixed
        batch = amg_utils.MaskData(masks=masks.flatten(0, 1), iou_preds=ious.flatten(0, 1))
        batch["stability_scores"] = amg_utils.calculate_stability_score(
            batch["masks"], threshold, 1.0
        )
        batch["masks"] = (batch["masks"] > threshold).type(torch.bool)
        batch["boxes"] = amg_utils.batched_mask_to_box(batch["masks"])
        data.cat(batch)
    return [
        {
            "segmentation": data["masks"][i],
            "bbox": amg_utils.box_xyxy_to_xywh(data["boxes"][i]).tolist(),
            "predicted_iou": data["iou_preds"][i].item(),
            "stability_score": data["stability_scores"][i].item(),
        }
        for i in range(len(data["masks"]))
    ]


def box_prompts(predictions: list[dict[str, Any]], extension: float = 0.01) -> np.ndarray:
    shape = predictions[0]["segmentation"].shape
    return np.array(
        [
            [
                max(x - w * extension, 0),
                max(y - h * extension, 0),
                min(x + (1 + extension) * w, shape[0]),
                min(y + (1 + extension) * h, shape[1]),
            ]
            for (x, y, w, h) in (p["bbox"] for p in predictions)
        ]
    )


def _ious(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Pairwise mask IoU where boxes overlap (micro-sam ``_calculate_ious_between_pred_masks``)."""
    n = masks.shape[0]
    x1 = torch.max(boxes[:, None, 0], boxes[:, 0])
    y1 = torch.max(boxes[:, None, 1], boxes[:, 1])
    x2 = torch.min(boxes[:, None, 2], boxes[:, 2])
    y2 = torch.min(boxes[:, None, 3], boxes[:, 3])
    overlap = (torch.clamp(x2 - x1, min=0) * torch.clamp(y2 - y1, min=0)) > 0
    m = torch.zeros((n, n))
    for i in range(n):
        js = torch.where(overlap[i])[0]
        js = js[js > i]
        if len(js) > 0:
            inter = torch.logical_and(masks[i], masks[js]).sum(dim=(1, 2))
            union = torch.logical_or(masks[i], masks[js]).sum(dim=(1, 2))
            m[i, js] = inter / union
    m = m + m.T
    m.fill_diagonal_(1)
    return m


def _iomin(masks: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    x1 = torch.max(boxes[:, None, 0], boxes[:, 0])
    y1 = torch.max(boxes[:, None, 1], boxes[:, 1])
    x2 = torch.min(boxes[:, None, 2], boxes[:, 2])
    y2 = torch.min(boxes[:, None, 3], boxes[:, 3])
    overlap = (torch.clamp(x2 - x1, min=0) * torch.clamp(y2 - y1, min=0)) > 0
    flat = masks.reshape(masks.shape[0], -1).float()
    areas = flat.sum(dim=1)
    iomin = (flat @ flat.t()) / (torch.minimum(areas[:, None], areas[None, :]) + eps)
    iomin[~overlap] = 0
    return iomin


def _nms(
    predictions: list[dict[str, Any]], shape: tuple[int, int], params: APGParams
) -> np.ndarray:
    """micro-sam ``util.apply_nms`` (untiled, mask NMS) → (H, W) uint32 labels."""
    masks = [p["segmentation"] for p in predictions]
    areas = [int(m.sum()) for m in masks]
    keep = (
        [i for i, a in enumerate(areas) if a > params.min_size]
        if params.min_size > 0
        else list(range(len(masks)))
    )
    if not keep:
        return np.zeros(shape, dtype="uint32")
    stack = torch.cat([masks[i][None] for i in keep], dim=0).cpu()
    ious = torch.tensor([predictions[i]["predicted_iou"] for i in keep])
    stability = torch.tensor([predictions[i]["stability_score"] for i in keep])
    boxes = torch.tensor(np.array([predictions[i]["bbox"] for i in keep])).to(torch.float32)
    boxes[:, 2] += boxes[:, 0]
    boxes[:, 3] += boxes[:, 1]
    scores = ious * stability
    matrix = _iomin(stack, boxes) if params.intersection_over_min else _ious(stack, boxes)
    order = torch.argsort(scores, descending=True)
    kept = []
    while len(order) > 0:
        i = order[0]
        kept.append(int(i))
        if len(order) == 1:
            break
        order = order[1:][matrix[i, order[1:]] <= params.nms_threshold]
    chosen = [(stack[k], areas[keep[k]]) for k in kept]
    return _paste(chosen, shape, params.min_size)


def _paste(
    masks: list[tuple[torch.Tensor, int]], shape: tuple[int, int], min_size: int
) -> np.ndarray:
    """micro-sam ``mask_data_to_segmentation``: largest first, never over earlier masks,
    then connected components, small pieces removed, ids made consecutive."""
    segmentation = np.zeros(shape, dtype="uint32")
    seg_id = 1
    for mask, area in sorted(masks, key=lambda item: item[1], reverse=True):
        if area < min_size:
            continue
        this = np.logical_and(mask.cpu().numpy(), segmentation == 0)
        segmentation[this] = seg_id
        seg_id += 1
    return finish_labels(segmentation, min_size)


def finish_labels(segmentation: np.ndarray, min_size: int) -> np.ndarray:
    """The end of ``mask_data_to_segmentation``: connected components, pieces under
    ``min_size`` removed, ids made consecutive."""
    segmentation = blockwise.label(segmentation)
    ids, sizes = np.unique(segmentation, return_counts=True)
    segmentation[np.isin(segmentation, ids[sizes < min_size])] = 0
    values = np.unique(segmentation)  # elf relabel_consecutive: rank among the values
    return np.searchsorted(values, segmentation).astype("uint32")


def check_mask_threshold(params: APGParams) -> None:
    """``ValueError`` for a ``mask_threshold`` that is neither None, a number nor "auto"."""
    value = params.mask_threshold
    if isinstance(value, str) and value != AUTO:
        raise ValueError(
            f"mask_threshold={value!r}: give a logit (a number), None for SAM's 0, or "
            f"{AUTO!r} (micro-sam's local Otsu per mask)"
        )


def prompt_generation(
    segmenter: Any,
    embedding: ImageEmbedding,
    maps: InstanceMaps,
    params: APGParams = DEFAULT_APG,
) -> np.ndarray:
    """APG labels for one embedded image.

    Parameters
    ----------
    segmenter
        The :class:`~...sam.engine.PromptSegmenter` whose model made ``embedding``.
    embedding : ImageEmbedding
    maps : InstanceMaps
        The decoder maps of the same image.
    params : APGParams

    Returns
    -------
    numpy.ndarray
        (H, W) uint32 labels; all zeros when no seed is found.
    """
    check_mask_threshold(params)
    points = point_prompts(maps, params)
    if points is None:
        return np.zeros(maps.shape, dtype="uint32")
    with torch_work():
        predictions = batched_masks(segmenter.sam, embedding, params, points=points)
        if params.refine_with_box_prompts:
            predictions = batched_masks(
                segmenter.sam, embedding, params, boxes=box_prompts(predictions)
            )
    return _nms(predictions, maps.shape, params)
