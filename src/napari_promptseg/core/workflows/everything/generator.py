"""Segment everything: automatic instance segmentation of one 2D image with a grid of points.

The same algorithm, parameters and results as ``segment_anything.SamAutomaticMaskGenerator``
(a grid of single-point prompts, 3 masks each, filtered by predicted IoU, stability and
crop edges, box NMS within and across crops, optional small-region clean-up), with the
masks and scores equal to its ``generate`` output for the same model, image and
parameters. What changes is the work done to get there:

* the embedding of the whole image comes from the :class:`PromptSegmenter` cache (upstream
  recomputes it: 10-25 s for vit_b on a CPU); the crops of ``crop_n_layers > 0`` are
  embedded through the segmenter too, so they are cached for the next run;
* the decoder's image-only work of its first block is done once per image
  (:meth:`SamDecoder.prepare`), not once per point;
* the predicted IoU is known before the masks are upscaled, so masks below
  ``pred_iou_thresh`` are never upscaled, points whose three masks all fail never run the
  decoder's upscaling head, and the upscaling skips the padding upstream crops away.

Every tensor operation that produces a kept number is upstream's, on the same batch of
points, so the floats are the same (checked by tests/core/test_everything.py). This
module plans the crops and turns the masks into objects; the per-crop decoding, NMS and
small-region clean-up are in :mod:`core.amg`.

Overlaps: SAM's masks overlap. In the label image each pixel belongs to the most confident
mask covering it: masks are pasted in order of decreasing predicted IoU (ties: upstream's
order) without overwriting; ids are 1, 2, ... in that order; a mask left with no pixel of
its own gets no id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import torch
from segment_anything.utils.amg import (
    batch_iterator,
    build_all_layer_point_grids,
    generate_crop_boxes,
)
from torchvision.ops.boxes import batched_nms, box_area

from ...labels import LabelsError, object_row
from ...sam.embedding import EmbeddingKey, ImageEmbedding, check_rgb, run_steps
from ...sam.engine import PromptSegmenter
from ...sam.families import EVERYTHING
from .crops import (
    Box,
    CropMasks,
    FoundMask,
    clean_small_regions,
    process_batch,
    remove_small_regions,
)
from .params import EverythingParams


@dataclass(eq=False)
class EverythingResult:
    """Masks of one image and the instance label image made of them.

    Attributes
    ----------
    masks
        The kept masks, in upstream's order.
    labels
        (H, W) uint32 instance labels: 0 background, ids 1..N (see the module's overlap rule).
    rows
        One objects-table row per id, in id order (``core.labels.object_row``; ``prompts`` is
        ``"everything"``).
    order
        ``masks[order[i]]`` became id i + 1.
    key
        The embedding key of the whole image (image + model) it belongs to.
    """

    masks: list[FoundMask]
    labels: np.ndarray
    rows: list[dict]
    order: list[int]
    key: EmbeddingKey
    params: EverythingParams = field(default_factory=EverythingParams)
    mode: str = "grid"  # or "ais" / "apg": masks from an instance decoder (instances.as_masks)


@dataclass(eq=False)
class Placement:
    """Where new objects go in an existing labels plane: ``plane[rows, cols] = values``."""

    rows: np.ndarray  # (P,) intp
    cols: np.ndarray  # (P,) intp
    values: np.ndarray  # (P,) ids
    objects: list[dict]  # one objects-table row per new id
    sources: list[int]  # objects[i] is masks[sources[i]]


# -- public entry points --------------------------------------------------------------------


def segment_everything(
    segmenter: PromptSegmenter,
    rgb: np.ndarray,
    params: EverythingParams | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> EverythingResult:
    """Segment every object of ``rgb`` ((H, W, 3) uint8) in one call.

    ``progress(done, total)`` is called after each step (a batch of points, or an encoder
    block of a crop not yet embedded); ``should_cancel()`` is polled between steps.

    Raises
    ------
    ImageError, PromptError
        Bad image or parameters (before any work).
    FamilyError
        The model's family cannot segment everything (SAM 2.1; before any work).
    Cancelled
        ``should_cancel()`` returned True; nothing is returned and nothing half-done is cached.
    """
    return run_steps(iter_segment_everything(segmenter, rgb, params), progress, should_cancel)


def count_steps(
    segmenter: PromptSegmenter, rgb: np.ndarray, params: EverythingParams | None = None
) -> int:
    """How many (done, total) steps :func:`iter_segment_everything` will yield."""
    segmenter.require(EVERYTHING)
    params = params or EverythingParams()
    params.validate()
    check_rgb(rgb)
    return sum(
        _crop_steps(segmenter, rgb, params, box, layer) for box, layer in _crops(rgb, params)
    )


def iter_segment_everything(
    segmenter: PromptSegmenter, rgb: np.ndarray, params: EverythingParams | None = None
) -> Generator[tuple[int, int], None, EverythingResult]:
    """Like :func:`segment_everything`, as a generator yielding (done, total) once per step.

    Each yield advances ``done`` by one (as napari's progress bars count). Closing the
    generator cancels the work. The return value is the :class:`EverythingResult`.
    """
    segmenter.require(EVERYTHING)  # batches SAM's own mask decoder (SAM and MobileSAM)
    params = params or EverythingParams()
    params.validate()
    check_rgb(rgb)
    crops = _crops(rgb, params)
    grids = build_all_layer_point_grids(
        params.points_per_side, params.crop_n_layers, params.crop_n_points_downscale_factor
    )
    total = sum(_crop_steps(segmenter, rgb, params, box, layer) for box, layer in crops)
    done = 0
    height, width = rgb.shape[:2]
    full_key: EmbeddingKey | None = None
    found: list[FoundMask] = []
    boxes, crop_boxes = [], []  # per crop: (n, 4) int64 xyxy image frame; (n, 4) crop xyxy
    for crop_box, layer in crops:
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        steps = segmenter.iter_embed(crop)  # no steps when cached
        try:
            while True:
                try:
                    next(steps)
                except StopIteration as finished:
                    embedding: ImageEmbedding = finished.value
                    break
                done += 1
                yield done, max(total, done)
        finally:
            steps.close()  # cancelled: stop the encoder, cache nothing
        full_key = full_key or embedding.key
        crop_masks = CropMasks(crop_box)
        points = grids[layer] * np.array(crop.shape[:2])[None, ::-1]  # (n, 2) x, y in the crop
        for (batch,) in batch_iterator(params.points_per_batch, points):
            with torch.inference_mode():
                process_batch(segmenter, embedding, batch, crop_masks, params, (height, width))
            done += 1
            yield done, max(total, done)
        kept, crop_xyxy = crop_masks.finish(params.box_nms_thresh)
        found += kept
        boxes.append(crop_xyxy)
        crop_boxes.append(torch.tensor([list(crop_box)] * len(kept), dtype=torch.int64))

    if len(crops) > 1 and found:  # duplicates between crops: prefer masks from smaller crops
        all_boxes = torch.cat(boxes).reshape(-1, 4)
        scores = 1 / box_area(torch.cat(crop_boxes).reshape(-1, 4))
        keep = batched_nms(
            all_boxes.float(), scores, torch.zeros(len(all_boxes)), params.crop_nms_thresh
        )
        found = [found[int(i)] for i in keep]
    if params.min_mask_region_area > 0 and found:
        nms = max(params.box_nms_thresh, params.crop_nms_thresh)
        found = clean_small_regions(found, params.min_mask_region_area, nms, (height, width))

    if full_key is None:  # cannot happen: generate_crop_boxes yields the whole image first
        raise RuntimeError("segment everything ran on no crop")
    order = confidence_order(found)
    placement = place_objects(np.zeros((height, width), np.uint32), found, order, first_id=1)
    labels = np.zeros((height, width), dtype=np.uint32)
    labels[placement.rows, placement.cols] = placement.values
    return EverythingResult(found, labels, placement.objects, placement.sources, full_key, params)


# -- objects into labels --------------------------------------------------------------------


def confidence_order(masks: list[FoundMask]) -> list[int]:
    """Indices of ``masks`` by decreasing predicted IoU; ties keep their order."""
    scores = np.array([m.predicted_iou for m in masks], dtype=np.float64)
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def place_objects(
    plane: np.ndarray,
    masks: list[FoundMask],
    order: list[int],
    *,
    first_id: int,
    model: str = "",
    slice_index: tuple[int, ...] | None = None,
) -> Placement:
    """Paste ``masks[order[0]], masks[order[1]], ...`` into a copy of ``plane`` as new objects.

    Nothing is overwritten: neither ``plane``'s objects nor earlier masks of ``order``. Each
    mask left with at least one pixel gets the next id from ``first_id``; one left with none
    is skipped. ``plane`` ((H, W) int labels) itself is not modified.

    Raises
    ------
    LabelsError
        The ids would not fit ``plane``'s dtype (nothing is placed).
    """
    taken = np.asarray(plane) != 0
    limit = np.iinfo(plane.dtype).max if np.issubdtype(plane.dtype, np.integer) else 0
    if first_id + len(order) - 1 > limit:
        raise LabelsError(
            f"{len(order)} new objects from id {first_id} do not fit the labels' dtype "
            f"{plane.dtype} (ids up to {limit}); convert the labels to uint32."
        )
    rows, cols, values, objects, sources = [], [], [], [], []
    label_id = first_id
    for index in order:
        mask = masks[index]
        r0, c0, r1, c1 = mask.box
        free = mask.patch & ~taken[r0:r1, c0:c1]
        where = np.nonzero(free)
        if len(where[0]) == 0:
            continue
        taken[r0:r1, c0:c1] |= free
        rows.append(where[0] + r0)
        cols.append(where[1] + c0)
        values.append(np.full(len(where[0]), label_id, dtype=plane.dtype))
        row = object_row(
            label_id,
            free,
            predicted_iou=mask.predicted_iou,
            stability=mask.stability,
            prompts="everything",
            candidate=mask.candidate,
            model=model,
            slice_index=slice_index,
        )
        for key, offset in (
            ("bbox_row0", r0),
            ("bbox_col0", c0),
            ("bbox_row1", r0),
            ("bbox_col1", c0),
        ):
            row[key] += offset
        objects.append(row)
        sources.append(index)
        label_id += 1
    return Placement(
        np.concatenate(rows) if rows else np.zeros(0, np.intp),
        np.concatenate(cols) if cols else np.zeros(0, np.intp),
        np.concatenate(values) if values else np.zeros(0, plane.dtype),
        objects,
        sources,
    )


# -- one crop ------------------------------------------------------------------------------


def _crops(rgb: np.ndarray, params: EverythingParams) -> list[tuple[list[int], int]]:
    boxes, layers = generate_crop_boxes(
        rgb.shape[:2], params.crop_n_layers, params.crop_overlap_ratio
    )
    return list(zip(boxes, layers, strict=True))


def _crop_steps(
    segmenter: PromptSegmenter,
    rgb: np.ndarray,
    params: EverythingParams,
    crop_box: list[int],
    layer: int,
) -> int:
    x0, y0, x1, y1 = crop_box
    n_points = int(params.points_per_side / (params.crop_n_points_downscale_factor**layer)) ** 2
    batches = math.ceil(n_points / params.points_per_batch)
    if segmenter.cached(np.ascontiguousarray(rgb[y0:y1, x0:x1])) is not None:
        return batches
    return batches + segmenter.encode_steps


__all__ = [
    "Box",
    "EverythingParams",
    "EverythingResult",
    "FoundMask",
    "Placement",
    "clean_small_regions",
    "confidence_order",
    "count_steps",
    "iter_segment_everything",
    "place_objects",
    "remove_small_regions",
    "segment_everything",
]
