"""Segment everything equals upstream SamAutomaticMaskGenerator, reuses embeddings, cancels.

The tiny SAM's hypernetwork output is scaled up here so its logits cross ±1: stability
scores then spread over (0, 1) and the stability filter has something to do.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator

from napari_promptseg.core import Cancelled, ImageError, PromptError, PromptSegmenter
from napari_promptseg.core.labels import LabelsError
from napari_promptseg.core.workflows.everything.generator import (
    EverythingParams,
    FoundMask,
    confidence_order,
    count_steps,
    place_objects,
    remove_small_regions,
    segment_everything,
)
from napari_promptseg.testing import build_tiny_sam


@pytest.fixture(scope="module")
def sharp_sam():
    sam = build_tiny_sam(seed=0)
    with torch.no_grad():
        for mlp in sam.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(16.0)
    return sam


def _disks(shape=(300, 517)) -> np.ndarray:
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = 40 + 20 * rng.random(shape)
    for r, c, radius in [(80, 120, 40), (200, 350, 60), (150, 450, 30)]:
        image[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] += 150
    return np.repeat(image.astype(np.uint8)[:, :, None], 3, axis=2)


def _noise(shape) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)


# name: (image, params). The small image keeps every crop edge within 20 px of an image
# edge, so masks found in crops survive upstream's crop-edge filter and crops are compared.
CASES = {
    "filters 300x517": (
        lambda: _disks(),
        EverythingParams(
            points_per_side=5, pred_iou_thresh=0.05, stability_score_thresh=0.3, box_nms_thresh=1.0
        ),
    ),
    "nms 300x517": (
        lambda: _disks(),
        EverythingParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0),
    ),
    "crops 37x49": (
        lambda: _noise((37, 49)),
        EverythingParams(
            points_per_side=4,
            points_per_batch=7,
            pred_iou_thresh=0.0,
            stability_score_thresh=0.2,
            crop_n_layers=1,
        ),
    ),
    "crops downscaled 49x37": (
        lambda: _noise((49, 37)),
        EverythingParams(
            points_per_side=4,
            pred_iou_thresh=0.0,
            stability_score_thresh=0.0,
            box_nms_thresh=0.95,
            crop_n_layers=1,
            crop_n_points_downscale_factor=2,
            crop_nms_thresh=0.5,
        ),
    ),
}


@pytest.fixture(scope="module")
def runs(sharp_sam):
    """For each case: image, params, upstream records, our result."""
    out = {}
    for name, (make_image, params) in CASES.items():
        rgb = make_image()
        upstream = SamAutomaticMaskGenerator(sharp_sam, **params.upstream_kwargs()).generate(rgb)
        ours = segment_everything(PromptSegmenter(sharp_sam, "sharp-tiny"), rgb, params)
        out[name] = (rgb, params, upstream, ours)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_masks_and_scores_equal_upstream(runs, case):
    rgb, _params, upstream, ours = runs[case]
    assert len(upstream) > 0
    assert len(ours.masks) == len(upstream)
    for theirs, mine in zip(upstream, ours.masks, strict=True):
        np.testing.assert_array_equal(mine.full(rgb.shape[:2]), theirs["segmentation"])
        assert mine.predicted_iou == theirs["predicted_iou"]
        assert mine.stability == theirs["stability_score"]
        assert mine.area == theirs["area"]
        assert [mine.point[1], mine.point[0]] == theirs["point_coords"][0]  # (x, y)
        r0, c0, r1, c1 = mine.crop_box
        assert [c0, r0, c1 - c0, r1 - r0] == theirs["crop_box"]
        r0, c0, r1, c1 = mine.box
        if mine.area:
            assert [c0, r0, c1 - 1 - c0, r1 - 1 - r0] == theirs["bbox"]  # inclusive xywh


def test_crop_cases_really_use_crops(runs):
    for case in ("crops 37x49", "crops downscaled 49x37"):
        rgb, _params, _upstream, ours = runs[case]
        full = (0, 0, *rgb.shape[:2])
        assert any(m.crop_box != full for m in ours.masks), case


def test_filters_were_exercised(runs):
    _rgb, params, _upstream, ours = runs["filters 300x517"]
    assert len(ours.masks) < 3 * params.points_per_side**2  # some masks were dropped
    assert all(m.predicted_iou > params.pred_iou_thresh for m in ours.masks)
    assert all(m.stability >= params.stability_score_thresh for m in ours.masks)


@pytest.mark.parametrize("case", list(CASES))
def test_labels_follow_confidence_and_rows_describe_them(runs, case):
    rgb, _params, upstream, ours = runs[case]
    labels = ours.labels
    assert labels.shape == rgb.shape[:2] and labels.dtype == np.uint32
    ids = [row["id"] for row in ours.rows]
    assert ids == list(range(1, len(ids) + 1))
    assert set(np.unique(labels)) - {0} == set(ids)

    # the overlap rule: paste by decreasing predicted IoU, never overwrite
    expected = np.zeros(rgb.shape[:2], np.uint32)
    next_id = 1
    for index in confidence_order(ours.masks):
        free = ours.masks[index].full(rgb.shape[:2]) & (expected == 0)
        if free.any():
            expected[free] = next_id
            next_id += 1
    np.testing.assert_array_equal(labels, expected)

    ious = [row["predicted_iou"] for row in ours.rows]
    assert ious == sorted(ious, reverse=True)
    for row, index in zip(ours.rows, ours.order, strict=True):
        present = labels == row["id"]
        assert row["area"] == present.sum() > 0
        rows_, cols_ = np.nonzero(present)
        assert (row["bbox_row0"], row["bbox_col0"]) == (rows_.min(), cols_.min())
        assert (row["bbox_row1"], row["bbox_col1"]) == (rows_.max() + 1, cols_.max() + 1)
        assert row["prompts"] == "everything"
        assert 0.0 <= row["stability"] <= 1.0
        assert row["predicted_iou"] == round(upstream[index]["predicted_iou"], 6)
        assert row["stability"] == round(upstream[index]["stability_score"], 6)
        assert present[ours.masks[index].full(rgb.shape[:2])].any()


def test_reuses_the_cached_embedding_and_caches_crops(segmenter):
    rgb = _noise((64, 90))
    segmenter.embed(rgb)
    assert segmenter.encoder_calls == 1
    params = EverythingParams(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert count_steps(segmenter, rgb, params) == 1  # one batch, no encoder step
    segment_everything(segmenter, rgb, params)
    assert segmenter.encoder_calls == 1  # the whole image was not embedded again

    crops = EverythingParams(
        points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, crop_n_layers=1
    )
    blocks = len(segmenter.sam.image_encoder.blocks) + 2
    assert count_steps(segmenter, rgb, crops) == 5 + 4 * blocks
    seen = []
    first = segment_everything(segmenter, rgb, crops, progress=lambda d, t: seen.append((d, t)))
    assert segmenter.encoder_calls == 5  # the four crops
    assert [d for d, _ in seen] == list(range(1, 5 + 4 * blocks + 1))
    assert {t for _, t in seen} == {5 + 4 * blocks}
    again = segment_everything(segmenter, rgb, crops)
    assert segmenter.encoder_calls == 5  # crops come from the cache now
    np.testing.assert_array_equal(again.labels, first.labels)


def test_cancel_while_embedding_caches_nothing(segmenter):
    rgb = _noise((50, 70))
    calls = []
    with pytest.raises(Cancelled):
        segment_everything(
            segmenter,
            rgb,
            EverythingParams(points_per_side=2),
            should_cancel=lambda: calls.append(1) or len(calls) >= 2,
        )
    assert len(segmenter.cache) == 0 and segmenter.cached(rgb) is None


def test_cancel_between_batches_raises_and_returns_nothing(segmenter):
    rgb = _noise((50, 70))
    segmenter.embed(rgb)
    params = EverythingParams(
        points_per_side=4, points_per_batch=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    seen = []
    with pytest.raises(Cancelled):
        segment_everything(
            segmenter,
            rgb,
            params,
            progress=lambda d, t: seen.append(d),
            should_cancel=lambda: len(seen) >= 2,
        )
    assert seen == [1, 2]  # stopped after two of four batches
    # and a later run is complete
    assert len(segment_everything(segmenter, rgb, params).masks) > 0


@pytest.mark.parametrize(
    ("changes", "word"),
    [
        ({"points_per_side": 0}, "points_per_side"),
        ({"points_per_side": 2.5}, "points_per_side"),
        ({"points_per_batch": 0}, "points_per_batch"),
        ({"pred_iou_thresh": 1.5}, "pred_iou_thresh"),
        ({"stability_score_thresh": -0.1}, "stability_score_thresh"),
        ({"box_nms_thresh": 0.0}, "box_nms_thresh"),
        ({"crop_n_layers": -1}, "crop_n_layers"),
        ({"crop_overlap_ratio": 1.0}, "crop_overlap_ratio"),
        (
            {"points_per_side": 4, "crop_n_layers": 3, "crop_n_points_downscale_factor": 2},
            "no points",
        ),
        ({"min_mask_region_area": -5}, "min_mask_region_area"),
        ({"stability_score_offset": float("nan")}, "stability_score_offset"),
    ],
)
def test_bad_parameters_are_named_before_any_work(segmenter, changes, word):
    with pytest.raises(PromptError, match=word):
        segment_everything(segmenter, _noise((20, 20)), EverythingParams(**changes))
    assert segmenter.encoder_calls == 0


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((20, 30), np.uint8),
        np.zeros((20, 30, 3), np.float32),
        np.zeros((0, 5, 3), np.uint8),
    ],
)
def test_bad_image_is_refused(segmenter, image):
    with pytest.raises(ImageError):
        segment_everything(segmenter, image)


def _square(r0, c0, size, iou, shape=(20, 20)) -> FoundMask:
    return FoundMask(
        box=(r0, c0, r0 + size, c0 + size),
        patch=np.ones((size, size), bool),
        predicted_iou=iou,
        stability=0.9,
        point=(r0 + 1.0, c0 + 1.0),
        crop_box=(0, 0, *shape),
        candidate=0,
    )


def test_place_objects_spares_existing_objects_and_offsets_ids():
    plane = np.zeros((20, 20), np.uint16)
    plane[0:5, 0:5] = 7
    masks = [_square(2, 2, 6, 0.5), _square(4, 4, 6, 0.9), _square(0, 0, 4, 0.99)]
    placement = place_objects(plane, masks, confidence_order(masks), first_id=8, slice_index=(3,))
    out = plane.copy()
    out[placement.rows, placement.cols] = placement.values
    assert (out[0:5, 0:5] == 7).all()  # the existing object is untouched
    assert placement.sources == [1, 0]  # mask 2 lies wholly on object 7: no id
    assert [row["id"] for row in placement.objects] == [8, 9]
    np.testing.assert_array_equal(out[4:10, 4:10][1:, 1:], 8)  # the more confident mask won
    for row in placement.objects:
        assert row["area"] == (out == row["id"]).sum()
        assert row["slice"] == "3"
    assert placement.objects[1]["bbox_row0"] == 2 and placement.objects[1]["bbox_col0"] == 2


def test_place_objects_refuses_ids_beyond_the_dtype():
    plane = np.zeros((20, 20), np.uint8)
    with pytest.raises(LabelsError, match="uint8"):
        place_objects(plane, [_square(0, 0, 3, 0.5)] * 3, [0, 1, 2], first_id=254)


def test_remove_small_regions_fills_holes_and_drops_islands():
    mask = np.zeros((30, 30), bool)
    mask[5:20, 5:20] = True
    mask[10:12, 10:12] = False  # a 4-pixel hole
    mask[25:27, 25:27] = True  # a 4-pixel island
    filled, changed = remove_small_regions(mask, 10, "holes")
    assert changed and filled[10:12, 10:12].all() and filled[25:27, 25:27].all()
    cleaned, changed = remove_small_regions(filled, 10, "islands")
    assert changed and not cleaned[25:27, 25:27].any() and cleaned[5:20, 5:20].all()
    same, changed = remove_small_regions(cleaned, 10, "islands")
    assert not changed and same is cleaned
    # all islands small: the largest is kept (upstream's rule)
    two = np.zeros((30, 30), bool)
    two[0:2, 0:2] = True
    two[10:13, 10:13] = True
    kept, changed = remove_small_regions(two, 100, "islands")
    assert changed and kept[10:13, 10:13].all() and not kept[0:2, 0:2].any()
    # 8-connectivity, as OpenCV's: a diagonal touch joins two squares
    diagonal = np.zeros((10, 10), bool)
    diagonal[0:3, 0:3] = True
    diagonal[3:6, 3:6] = True
    assert not remove_small_regions(diagonal, 15, "islands")[1]


def test_min_mask_region_area_equals_upstream(sharp_sam):
    pytest.importorskip("cv2", reason="upstream's small-region clean-up needs OpenCV")
    rgb = _disks()
    params = EverythingParams(
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.3,
        box_nms_thresh=1.0,
        min_mask_region_area=2000,
    )
    upstream = SamAutomaticMaskGenerator(sharp_sam, **params.upstream_kwargs()).generate(rgb)
    ours = segment_everything(PromptSegmenter(sharp_sam, "sharp-tiny"), rgb, params)
    assert len(ours.masks) == len(upstream) > 0
    for theirs, mine in zip(upstream, ours.masks, strict=True):
        np.testing.assert_array_equal(mine.full(rgb.shape[:2]), theirs["segmentation"])
        assert mine.predicted_iou == theirs["predicted_iou"]
