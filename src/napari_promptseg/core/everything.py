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
points, so the floats are the same (checked by tests/core/test_everything.py).

Overlaps: SAM's masks overlap. In the label image each pixel belongs to the most confident
mask covering it: masks are pasted in order of decreasing predicted IoU (ties: upstream's
order) without overwriting; ids are 1, 2, ... in that order; a mask left with no pixel of
its own gets no id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, fields
from numbers import Integral, Real

import numpy as np
import torch
from segment_anything.utils.amg import (
    batch_iterator,
    batched_mask_to_box,
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
)
from segment_anything.utils.transforms import ResizeLongestSide
from torch.nn import functional as F
from torchvision.ops.boxes import batched_nms, box_area

from .embedding import EmbeddingKey, ImageEmbedding, _check_rgb, run_steps
from .errors import PromptError
from .labels import LabelsError, object_row

Box = tuple[int, int, int, int]  # (row0, col0, row1, col1), end exclusive


@dataclass(frozen=True)
class EverythingParams:
    """``SamAutomaticMaskGenerator``'s parameters, with its defaults and meanings."""

    points_per_side: int = 32  # grid of points_per_side² single-point prompts
    points_per_batch: int = 64  # points decoded together (memory vs speed)
    pred_iou_thresh: float = 0.88  # keep masks whose predicted IoU is above this
    stability_score_thresh: float = 0.95  # keep masks at least this stable
    stability_score_offset: float = 1.0  # logit offset of the stability score
    box_nms_thresh: float = 0.7  # box IoU above which a less confident mask is a duplicate
    crop_n_layers: int = 0  # run again on (2^i)² crops for i = 1..crop_n_layers
    crop_nms_thresh: float = 0.7  # duplicates across crops (smaller crops win)
    crop_overlap_ratio: float = 512 / 1500  # overlap of the first crop layer's crops
    crop_n_points_downscale_factor: int = 1  # crop layer i gets points_per_side / factor^i
    min_mask_region_area: int = 0  # fill holes and drop islands smaller than this (pixels)

    def validate(self) -> None:
        """Raise :class:`PromptError` naming the first bad parameter."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise PromptError(f"segment everything: {message}")

        for item in fields(self):
            value = getattr(self, item.name)
            integer = item.type in ("int", int)
            need(
                isinstance(value, Integral if integer else Real) and not isinstance(value, bool),
                f"{item.name} must be {'an integer' if integer else 'a number'}; got {value!r}.",
            )
            need(math.isfinite(value), f"{item.name} must be finite; got {value!r}.")
        need(self.points_per_side >= 1, f"points_per_side must be ≥ 1; got {self.points_per_side}.")
        need(self.points_per_batch >= 1, "points_per_batch must be ≥ 1.")
        for name in ("pred_iou_thresh", "stability_score_thresh"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1].")
        for name in ("box_nms_thresh", "crop_nms_thresh"):
            need(0 < getattr(self, name) <= 1, f"{name} must be in (0, 1].")
        need(self.stability_score_offset > 0, "stability_score_offset must be > 0.")
        need(self.crop_n_layers >= 0, "crop_n_layers must be ≥ 0.")
        need(0 <= self.crop_overlap_ratio < 1, "crop_overlap_ratio must be in [0, 1).")
        need(
            self.crop_n_points_downscale_factor >= 1, "crop_n_points_downscale_factor must be ≥ 1."
        )
        last = self.points_per_side // self.crop_n_points_downscale_factor**self.crop_n_layers
        need(
            last >= 1,
            f"crop layer {self.crop_n_layers} would get no points: points_per_side "
            f"{self.points_per_side} / {self.crop_n_points_downscale_factor}^{self.crop_n_layers} < 1.",
        )
        need(self.min_mask_region_area >= 0, "min_mask_region_area must be ≥ 0.")

    def upstream_kwargs(self) -> dict:
        """Keyword arguments for ``SamAutomaticMaskGenerator`` giving the same results."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


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
    segmenter,
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
    Cancelled
        ``should_cancel()`` returned True; nothing is returned and nothing half-done is cached.
    """
    return run_steps(iter_segment_everything(segmenter, rgb, params), progress, should_cancel)


def count_steps(segmenter, rgb: np.ndarray, params: EverythingParams | None = None) -> int:
    """How many (done, total) steps :func:`iter_segment_everything` will yield."""
    params = params or EverythingParams()
    params.validate()
    _check_rgb(rgb)
    return sum(
        _crop_steps(segmenter, rgb, params, box, layer) for box, layer in _crops(rgb, params)
    )


def iter_segment_everything(
    segmenter, rgb: np.ndarray, params: EverythingParams | None = None
) -> Generator[tuple[int, int], None, EverythingResult]:
    """Like :func:`segment_everything`, as a generator yielding (done, total) once per step.

    Each yield advances ``done`` by one (as napari's progress bars count). Closing the
    generator cancels the work. The return value is the :class:`EverythingResult`.
    """
    params = params or EverythingParams()
    params.validate()
    _check_rgb(rgb)
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
        crop_masks = _CropMasks(crop_box)
        points = grids[layer] * np.array(crop.shape[:2])[None, ::-1]  # (n, 2) x, y in the crop
        for (batch,) in batch_iterator(params.points_per_batch, points):
            with torch.inference_mode():
                _process_batch(segmenter, embedding, batch, crop_masks, params, (height, width))
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


def _crop_steps(segmenter, rgb, params, crop_box, layer) -> int:
    x0, y0, x1, y1 = crop_box
    n_points = int(params.points_per_side / (params.crop_n_points_downscale_factor**layer)) ** 2
    batches = math.ceil(n_points / params.points_per_batch)
    if segmenter.cached(np.ascontiguousarray(rgb[y0:y1, x0:x1])) is not None:
        return batches
    return batches + len(segmenter.sam.image_encoder.blocks) + 2


class _CropMasks:
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


def _process_batch(segmenter, embedding, points, out: _CropMasks, params, orig_size) -> None:
    """Upstream's ``_process_batch`` for (n, 2) (x, y) points, keeping only what passes."""
    sam = segmenter.sam
    crop_size = embedding.original_size
    transform = ResizeLongestSide(sam.image_encoder.img_size)
    coords = torch.as_tensor(transform.apply_coords(points, crop_size), device=sam.device)
    labels = torch.ones(coords.shape[0], dtype=torch.int, device=sam.device)
    sparse, _ = sam.prompt_encoder(
        points=(coords[:, None, :], labels[:, None]), boxes=None, masks=None
    )
    hs, keys = _transformer(sam, segmenter.decoder.prepare(embedding), sparse)
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
    low_res = _low_res_masks(sam, hs[needed], keys[needed])[:, 1:]  # (m, 3, 256, 256)
    slot = torch.empty(len(iou), dtype=torch.long, device=device)
    slot[needed] = torch.arange(len(needed), device=device)
    low_res = low_res[slot[kept // 3], kept % 3]  # (k, 256, 256) in upstream's order
    logits = _upscale(sam, low_res, embedding.input_size, crop_size)
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


# -- the mask decoder, split where upstream repeats image-only work -------------------------


def _transformer(sam, prepared, sparse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaskDecoder.predict_masks`` up to the transformer output, for a batch of prompts.

    Returns the (B, 1 + 4 + P, C) output tokens and the (B, N, C) image tokens. The first
    block's image-only projections come from ``prepared`` (one image, broadcast over B).
    """
    decoder = sam.mask_decoder
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    queries = query_pe = torch.cat((output_tokens, sparse), dim=1)
    keys, key_pe = prepared.keys, prepared.key_pe
    for index, layer in enumerate(decoder.transformer.layers):
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        q = queries + query_pe
        t2i = layer.cross_attn_token_to_image
        if index == 0:
            q_heads = t2i._separate_heads(t2i.q_proj(q), t2i.num_heads)
            out = _attend(t2i, q_heads, prepared.token_to_image_k, prepared.token_to_image_v)
        else:
            out = t2i(q=q, k=keys + key_pe, v=keys)
        queries = layer.norm2(queries + out)
        queries = layer.norm3(queries + layer.mlp(queries))
        q = queries + query_pe
        i2t = layer.cross_attn_image_to_token
        if index == 0:
            k_heads = i2t._separate_heads(i2t.k_proj(q), i2t.num_heads)
            v_heads = i2t._separate_heads(i2t.v_proj(queries), i2t.num_heads)
            out = _attend(i2t, prepared.image_to_token_q, k_heads, v_heads)
        else:
            out = i2t(q=keys + key_pe, k=q, v=queries)
        keys = layer.norm4(keys + out)
    transformer = decoder.transformer
    q, k = queries + query_pe, keys + key_pe
    queries = queries + transformer.final_attn_token_to_image(q=q, k=k, v=keys)
    return transformer.norm_final_attn(queries), keys


def _low_res_masks(sam, hs: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The rest of ``MaskDecoder.predict_masks``: (B, 4, 256, 256) logits of all mask tokens."""
    decoder = sam.mask_decoder
    b = hs.shape[0]
    c = keys.shape[-1]
    h, w = sam.prompt_encoder.image_embedding_size
    src = keys.transpose(1, 2).view(b, c, h, w)
    upscaled = decoder.output_upscaling(src)
    mask_tokens = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    hyper_in = torch.stack(
        [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
        dim=1,
    )
    b, c, h, w = upscaled.shape
    return (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)


def _attend(attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``segment_anything`` Attention.forward after the q/k/v projections."""
    attn = q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1])
    out = torch.softmax(attn, dim=-1) @ v
    return attention.out_proj(attention._recombine_heads(out))


def _upscale(sam, low_res: torch.Tensor, input_size, original_size) -> torch.Tensor:
    """``Sam.postprocess_masks`` for (K, 256, 256) logits, without the padding it crops away.

    Bilinear upsampling by 4 reads source rows up to ceil(h / 4); upsampling only those by
    the same factor gives the same numbers for every kept pixel. Returns (K, H, W).
    """
    size = sam.image_encoder.img_size
    factor = size // low_res.shape[-1]
    rows = min(low_res.shape[-2], math.ceil(input_size[0] / factor) + 1)
    cols = min(low_res.shape[-1], math.ceil(input_size[1] / factor) + 1)
    part = low_res[None, :, :rows, :cols]
    masks = F.interpolate(
        part, (rows * factor, cols * factor), mode="bilinear", align_corners=False
    )
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)[0]


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
