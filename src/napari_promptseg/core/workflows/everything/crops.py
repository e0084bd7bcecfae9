"""The automatic mask generator's per-crop work, on a cached embedding.

``segment_anything``'s ``SamAutomaticMaskGenerator`` internals, computing the same numbers
with less work (see :mod:`core.everything`, which drives them crop by crop):

* :func:`process_batch` decodes a batch of single-point prompts with the decoder split of
  :mod:`core.decode` (image-only work once per crop), filters by predicted IoU before any
  upscaling, runs the upscaling head only for points with a kept mask and upscales without
  the padding; it keeps each mask as a patch inside its box;
* :class:`CropMasks` collects one crop's masks and runs box NMS over them;
* :func:`clean_small_regions` is upstream's ``postprocess_small_regions`` with scipy
  instead of OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.utils.amg import (
    batched_mask_to_box,
    calculate_stability_score,
    is_box_near_crop_edge,
)
from segment_anything.utils.transforms import ResizeLongestSide
from torchvision.ops.boxes import batched_nms

from ...sam.decode import mask_logits, run_transformer, upscale_logits
from ...sam.embedding import ImageEmbedding
from ...sam.engine import PromptSegmenter
from .params import EverythingParams

Box = tuple[int, int, int, int]  # (row0, col0, row1, col1), end exclusive


@dataclass(eq=False)
class FoundMask:
    """One mask kept by the generator (one record of upstream's ``generate``).

    Attributes
    ----------
    box
        (row0, col0, row1, col1) of the mask in the image, end exclusive.
    patch
        (row1 - row0, col1 - col0) bool: the mask inside ``box``.
    predicted_iou, stability
        SAM's predicted IoU and the stability score, as upstream reports them.
    point
        (row, col) of the prompt point that produced it, in image pixels.
    crop_box
        (row0, col0, row1, col1) of the crop it was found in.
    candidate
        Which of SAM's three masks for that point (0..2).
    """

    box: Box
    patch: np.ndarray
    predicted_iou: float
    stability: float
    point: tuple[float, float]
    crop_box: Box
    candidate: int

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.patch))

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask as an (H, W) bool image of ``shape``."""
        mask = np.zeros(shape, dtype=bool)
        r0, c0, r1, c1 = self.box
        mask[r0:r1, c0:c1] = self.patch
        return mask


class CropMasks:
    """Masks kept from the batches of one crop, in the crop's frame, in upstream's order."""

    def __init__(self, crop_box: list[int]) -> None:
        self.crop_box = crop_box
        self.boxes: list[torch.Tensor] = []  # (k, 4) int64 xyxy, inclusive, crop frame
        self.iou: list[torch.Tensor] = []
        self.stability: list[torch.Tensor] = []
        self.points: list[np.ndarray] = []  # (k, 2) x, y crop frame
        self.patches: list[np.ndarray] = []
        self.candidates: list[int] = []

    def finish(self, nms_thresh: float) -> tuple[list[FoundMask], torch.Tensor]:
        """Box NMS within the crop; the kept masks and their (k, 4) image-frame xyxy boxes."""
        if not self.patches:
            return [], torch.zeros((0, 4), dtype=torch.int64)
        boxes = torch.cat(self.boxes)
        iou, stability = torch.cat(self.iou), torch.cat(self.stability)
        keep = batched_nms(boxes.float(), iou, torch.zeros(len(boxes)), iou_threshold=nms_thresh)
        points = np.concatenate(self.points)
        x0, y0, x1, y1 = self.crop_box
        crop = (y0, x0, y1, x1)
        kept = []
        for i in keep.tolist():
            bx0, by0 = int(boxes[i, 0]), int(boxes[i, 1])
            patch = self.patches[i]
            kept.append(
                FoundMask(
                    box=(by0 + y0, bx0 + x0, by0 + y0 + patch.shape[0], bx0 + x0 + patch.shape[1]),
                    patch=patch,
                    predicted_iou=float(iou[i]),
                    stability=float(stability[i]),
                    point=(float(points[i, 1] + y0), float(points[i, 0] + x0)),
                    crop_box=crop,
                    candidate=self.candidates[i],
                )
            )
        offset = torch.tensor([[x0, y0, x0, y0]])
        return kept, boxes[keep] + offset


def process_batch(
    segmenter: PromptSegmenter,
    embedding: ImageEmbedding,
    points: np.ndarray,
    out: CropMasks,
    params: EverythingParams,
    orig_size: tuple[int, int],
) -> None:
    """Upstream's ``_process_batch`` for (n, 2) (x, y) points, keeping only what passes.

    ``points`` are in the crop's frame, ``embedding`` is the crop's, ``orig_size`` is the
    whole image's (H, W). The masks that pass go into ``out``. Call under
    ``torch.inference_mode()``.
    """
    sam = segmenter.sam
    crop_size = embedding.original_size
    transform = ResizeLongestSide(sam.image_encoder.img_size)
    coords = torch.as_tensor(transform.apply_coords(points, crop_size), device=sam.device)
    labels = torch.ones(coords.shape[0], dtype=torch.int, device=sam.device)
    sparse, _ = sam.prompt_encoder(
        points=(coords[:, None, :], labels[:, None]), boxes=None, masks=None
    )
    hs, keys = run_transformer(sam, segmenter.decoder.prepare(embedding), sparse)
    iou = sam.mask_decoder.iou_prediction_head(hs[:, 0, :])[:, 1:]  # (n, 3) multimask

    flat_iou = iou.flatten(0, 1)  # (3n,) point-major, as upstream flattens
    device = flat_iou.device
    if params.pred_iou_thresh > 0.0:
        kept = torch.nonzero(flat_iou > params.pred_iou_thresh)[:, 0]
    else:
        kept = torch.arange(len(flat_iou), device=device)
    if len(kept) == 0:
        return
    # The upscaling head runs only for points with a kept mask (same per-point numbers).
    needed = torch.unique(kept // 3)
    low_res = mask_logits(sam, hs[needed], keys[needed])[:, 1:]  # (m, 3, 256, 256)
    slot = torch.empty(len(iou), dtype=torch.long, device=device)
    slot[needed] = torch.arange(len(needed), device=device)
    low_res = low_res[slot[kept // 3], kept % 3]  # (k, 256, 256) in upstream's order
    logits = upscale_logits(sam, low_res[None], embedding.input_size, crop_size)[0]
    stability = calculate_stability_score(logits, sam.mask_threshold, params.stability_score_offset)
    if params.stability_score_thresh > 0.0:
        stable = stability >= params.stability_score_thresh
        logits, kept, stability = logits[stable], kept[stable], stability[stable]
    masks = logits > sam.mask_threshold
    del logits
    boxes = batched_mask_to_box(masks)
    near_edge = is_box_near_crop_edge(boxes, out.crop_box, [0, 0, orig_size[1], orig_size[0]])
    for j in torch.nonzero(~near_edge)[:, 0].tolist():
        x0, y0, x1, y1 = (int(v) for v in boxes[j])
        index = int(kept[j])
        # a copy: a view would keep the whole (k, H, W) batch alive
        out.patches.append(masks[j, y0 : y1 + 1, x0 : x1 + 1].cpu().numpy().copy())
        out.candidates.append(index % 3)
        out.points.append(points[index // 3][None, :])
    good = ~near_edge
    out.boxes.append(boxes[good].cpu())
    out.iou.append(flat_iou[kept[good]].cpu())
    out.stability.append(stability[good].cpu())


# -- small regions (upstream's postprocess_small_regions, without OpenCV) -------------------


def clean_small_regions(
    masks: list[FoundMask], min_area: int, nms_thresh: float, shape: tuple[int, int]
) -> list[FoundMask]:
    """Fill holes and drop islands under ``min_area`` pixels, then NMS again (unchanged first)."""
    cleaned, boxes, scores = [], [], []
    for mask in masks:
        full = mask.full(shape)
        full, changed_holes = remove_small_regions(full, min_area, "holes")
        full, changed_islands = remove_small_regions(full, min_area, "islands")
        box = batched_mask_to_box(torch.as_tensor(full)[None])[0]
        boxes.append(box)
        scores.append(float(not (changed_holes or changed_islands)))
        cleaned.append((full, box))
    keep = batched_nms(
        torch.stack(boxes).float(),
        torch.as_tensor(scores),
        torch.zeros(len(boxes)),
        iou_threshold=nms_thresh,
    )
    out = []
    for i in keep.tolist():
        mask = masks[i]
        if scores[i] == 0.0:
            full, box = cleaned[i]
            x0, y0, x1, y1 = (int(v) for v in box)
            mask = FoundMask(
                box=(y0, x0, y1 + 1, x1 + 1),
                patch=full[y0 : y1 + 1, x0 : x1 + 1].copy(),
                predicted_iou=mask.predicted_iou,
                stability=mask.stability,
                point=mask.point,
                crop_box=mask.crop_box,
                candidate=mask.candidate,
            )
        out.append(mask)
    return out


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """``segment_anything.utils.amg.remove_small_regions`` with scipy instead of OpenCV.

    8-connected components, as OpenCV finds them. ``mode``
    "holes" fills background regions under ``area_thresh``; "islands" drops foreground
    regions under it (keeping the largest if all are). Returns the mask and whether it changed.
    """
    from scipy import ndimage

    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands'; got {mode!r}.")
    correct_holes = mode == "holes"
    working = correct_holes ^ mask
    regions, n_regions = ndimage.label(working, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(regions.ravel(), minlength=n_regions + 1)[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    fill = [0, *small]
    if not correct_holes:
        fill = [i for i in range(n_regions + 1) if i not in fill]
        if not fill:  # every island is small: keep the largest
            fill = [_first_largest(regions, sizes)]
    return np.isin(regions, fill), True


def _first_largest(regions: np.ndarray, sizes: np.ndarray) -> int:
    """The label of the largest region; among equals, the one OpenCV numbers first.

    OpenCV's 8-connected labelling scans 2x2 blocks in raster order, so it numbers regions
    by the first block they touch (not by their first pixel, as scipy does).
    """
    from scipy import ndimage

    largest = np.flatnonzero(sizes == sizes.max()) + 1
    if len(largest) == 1:
        return int(largest[0])
    rows, cols = np.indices(regions.shape)
    blocks = (rows // 2) * ((regions.shape[1] + 1) // 2) + cols // 2
    first_block = ndimage.minimum(blocks, regions, largest)
    return int(largest[int(np.argmin(first_block))])
