"""APG on a tiled plane: micro-sam 1.8.14's ``TiledAutomaticPromptGenerator``.

The point prompts come from the stitched maps (:mod:`.tiles`), as in 2D. Each point goes to
the tile whose inner part holds it and is decoded there, on that tile's embedding, in the
tile's coordinates (``micro_sam.inference.batched_tiled_inference``). Masks stay tile-sized,
with a box in the tile and one in the plane; NMS compares two masks on the overlap of
their plane boxes (``util._calculate_tiled_mask_overlap_matrix``) and pasting copies each
mask's box into the plane (``mask_data_to_segmentation`` with ``global_bbox``).

Like micro-sam, the boxes are SAM's (x, y, w, h) with ``w = x1 - x0`` over inclusive
extremes, so a pasted mask loses its last row and column and the overlap crops are one
pixel short: replicated, since the label image must equal micro-sam's. Beyond micro-sam,
which refuses them for tiles, ``refine_with_box_prompts`` is run on each tile's own masks,
and ``mask_threshold`` is honoured (micro-sam's tiled APG drops it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ...sam.embedding import ImageEmbedding
from ...sam.threads import torch_work
from .ais import InstanceMaps
from .apg import APGParams, batched_masks, box_prompts, check_mask_threshold, finish_labels
from .apg import point_prompts as derive_points
from .tiles import TileLayout, tile_rgb


def tiled_prompt_generation(
    segmenter: Any,
    rgb: np.ndarray,
    layout: TileLayout,
    maps: InstanceMaps,
    params: APGParams,
    embed: Callable[[np.ndarray], ImageEmbedding],
) -> np.ndarray:
    """APG labels for a plane cut into ``layout``'s tiles.

    ``maps`` are the plane's stitched maps (:func:`.tiles.iter_tiled_maps`), ``embed`` the
    engine's (cached) embedding of a tile's pixels. All zeros when no seed is found.
    """
    check_mask_threshold(params)
    points = derive_points(maps, params)
    if points is None:
        return np.zeros(layout.shape, dtype="uint32")
    by_tile: dict[int, list[int]] = {}
    for index, (x, y) in enumerate(points[:, 0]):
        block = layout.block_at(int(np.round(y)), int(np.round(x)))
        by_tile.setdefault(block.index, []).append(index)
    predictions: list[dict[str, Any]] = []
    with torch_work():
        for tile_id in sorted(by_tile):
            block = layout.blocks[tile_id]
            embedding = embed(tile_rgb(rgb, block))
            row0, col0 = block.offset
            local = points[by_tile[tile_id]] - np.array([col0, row0])
            found = batched_masks(segmenter.sam, embedding, params, points=local)
            if params.refine_with_box_prompts:
                found = batched_masks(segmenter.sam, embedding, params, boxes=box_prompts(found))
            for prediction in found:
                x, y, w, h = prediction["bbox"]
                prediction["global_bbox"] = [x + col0, y + row0, w, h]
            predictions.extend(found)
    return _tiled_nms(predictions, layout.shape, params)


def _tiled_nms(
    predictions: list[dict[str, Any]], shape: tuple[int, int], params: APGParams
) -> np.ndarray:
    """micro-sam ``util.apply_nms`` for tiled predictions → (H, W) uint32 labels."""
    areas = [int(p["segmentation"].sum()) for p in predictions]
    keep = (
        [i for i, a in enumerate(areas) if a > params.min_size]
        if params.min_size > 0
        else list(range(len(predictions)))
    )
    if not keep:
        return np.zeros(shape, dtype="uint32")
    kept = [predictions[i] for i in keep]
    masks = [p["segmentation"].cpu() for p in kept]
    boxes = torch.tensor(np.array([p["bbox"] for p in kept]), dtype=torch.long)
    global_boxes = torch.tensor(np.array([p["global_bbox"] for p in kept]), dtype=torch.long)
    scores = torch.tensor([p["predicted_iou"] for p in kept]) * torch.tensor(
        [p["stability_score"] for p in kept]
    )
    matrix = _overlap_scores(masks, boxes, global_boxes, params.intersection_over_min)
    order = torch.argsort(scores, descending=True)
    chosen = []
    while len(order) > 0:
        i = int(order[0])
        chosen.append(i)
        if len(order) == 1:
            break
        order = order[1:][matrix[i, order[1:]] <= params.nms_threshold]
    segmentation = np.zeros(shape, dtype="uint32")
    seg_id = 1
    for i in sorted(chosen, key=lambda k: areas[keep[k]], reverse=True):
        if areas[keep[i]] < params.min_size:
            continue
        x, y, w, h = (int(v) for v in boxes[i])
        gx, gy = int(global_boxes[i, 0]), int(global_boxes[i, 1])
        piece = masks[i][y : y + h, x : x + w].numpy()
        target = segmentation[gy : gy + h, gx : gx + w]  # a view: written in place
        target[np.logical_and(piece, target == 0)] = seg_id
        seg_id += 1
    return finish_labels(segmentation, params.min_size)


def _xyxy(boxes: torch.Tensor) -> torch.Tensor:
    out = boxes.clone()
    out[:, 2] += out[:, 0]
    out[:, 3] += out[:, 1]
    return out


def _overlap_scores(
    masks: list[torch.Tensor],
    boxes: torch.Tensor,
    global_boxes: torch.Tensor,
    intersection_over_min: bool,
) -> torch.Tensor:
    """Pairwise IoU (or intersection over the smaller mask) of tile-sized masks, on the
    overlap of their plane boxes (micro-sam ``_calculate_tiled_mask_overlap_matrix``)."""
    n = len(masks)
    scores = torch.zeros((n, n))
    corners = _xyxy(global_boxes)
    x1 = torch.max(corners[:, None, 0], corners[:, 0])
    y1 = torch.max(corners[:, None, 1], corners[:, 1])
    x2 = torch.min(corners[:, None, 2], corners[:, 2])
    y2 = torch.min(corners[:, None, 3], corners[:, 3])
    touching = (torch.clamp(x2 - x1, min=0) * torch.clamp(y2 - y1, min=0)) > 0
    areas = torch.tensor([mask.sum() for mask in masks], dtype=torch.float32)
    offsets = global_boxes[:, :2] - boxes[:, :2]
    for i in range(n):
        js = torch.where(touching[i])[0]
        for j in js[js > i].tolist():
            left, top = int(x1[i, j]), int(y1[i, j])
            right, bottom = int(x2[i, j]), int(y2[i, j])
            (oxi, oyi), (oxj, oyj) = offsets[i].tolist(), offsets[j].tolist()
            mask_i = masks[i][top - oyi : bottom - oyi, left - oxi : right - oxi]
            mask_j = masks[j][top - oyj : bottom - oyj, left - oxj : right - oxj]
            intersection = torch.logical_and(mask_i, mask_j).sum()
            if intersection_over_min:
                denominator = torch.minimum(areas[i], areas[j])
            else:
                denominator = areas[i] + areas[j] - intersection
            scores[i, j] = intersection / denominator
    scores = scores + scores.T
    scores.fill_diagonal_(1)
    return scores
