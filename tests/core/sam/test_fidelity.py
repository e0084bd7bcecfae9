"""Our masks, scores and logits equal upstream SamPredictor's, bit for bit.

Non-square odd sizes catch coordinate-order, resizing and padding mistakes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from napari_promptseg.core import Prompts, PromptSegmenter, SamPrompts
from napari_promptseg.core.sam.embedding import encode

SIZES = [(300, 517), (517, 300), (31, 1001)]


@pytest.fixture(scope="module")
def setups(tiny_sam):
    rng = np.random.default_rng(7)
    out = {}
    for size in SIZES:
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        predictor = SamPredictor(tiny_sam)
        predictor.set_image(rgb)
        out[size] = (rgb, predictor, encode(tiny_sam, rgb, "tiny"))
    return out


def _prompt_sets(height, width):
    points = np.array(
        [[0.2 * width, 0.3 * height], [0.7 * width, 0.6 * height], [width - 1, height - 1]]
    )
    labels = np.array([1, 0, 1])
    box = np.array([0.1 * width, 0.15 * height, 0.8 * width, 0.9 * height])
    return {
        "one point": dict(point_coords=points[:1], point_labels=labels[:1]),
        "points": dict(point_coords=points, point_labels=labels),
        "box": dict(box=box),
        "points and box": dict(point_coords=points, point_labels=labels, box=box),
    }


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("kind", ["one point", "points", "box", "points and box"])
def test_decode_equals_sam_predictor(setups, size, multimask, kind, tiny_sam):
    from napari_promptseg.core import SamDecoder

    _rgb, predictor, embedding = setups[size]
    assert torch.equal(embedding.features, predictor.features)
    prompt = _prompt_sets(*size)[kind]
    masks, scores, logits = predictor.predict(multimask_output=multimask, **prompt)
    result = SamDecoder(tiny_sam).decode(
        embedding,
        SamPrompts(prompt.get("point_coords"), prompt.get("point_labels"), prompt.get("box"), None),
        multimask=multimask,
    )
    assert result.masks.shape == (3 if multimask else 1, *size)
    assert masks.any() and not masks.all(), "test prompts should give non-trivial masks"
    np.testing.assert_array_equal(result.masks, masks)
    np.testing.assert_array_equal(result.iou, scores)
    np.testing.assert_array_equal(result.low_res_logits, logits)
    assert result.best == int(np.argmax(scores))


@pytest.mark.parametrize("size", SIZES[:2], ids=lambda s: f"{s[0]}x{s[1]}")
def test_refinement_with_mask_input_equals_upstream(setups, size, tiny_sam):
    from napari_promptseg.core import SamDecoder

    _, predictor, embedding = setups[size]
    prompt = _prompt_sets(*size)["points"]
    _, _, first_logits = predictor.predict(multimask_output=False, **prompt)
    masks, scores, logits = predictor.predict(
        mask_input=first_logits, multimask_output=False, **prompt
    )
    result = SamDecoder(tiny_sam).decode(
        embedding,
        SamPrompts(prompt["point_coords"], prompt["point_labels"], None, first_logits),
        multimask=False,
    )
    np.testing.assert_array_equal(result.masks, masks)
    np.testing.assert_array_equal(result.iou, scores)
    np.testing.assert_array_equal(result.low_res_logits, logits)


def test_napari_row_col_prompts_map_to_sam_xy(setups, tiny_sam):
    """A napari (row, col) point and box give upstream's result for (x=col, y=row)."""
    size = (300, 517)
    rgb, predictor, _ = setups[size]
    segmenter = PromptSegmenter(tiny_sam, "tiny")
    prompts = Prompts(points=[[40.0, 400.0], [250.0, 30.0]], labels=[1, 0], box=[20, 300, 120, 500])
    result = segmenter.segment(rgb, prompts, multimask=False)
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[400.0, 40.0], [30.0, 250.0]]),
        point_labels=np.array([1, 0]),
        box=np.array([300.0, 20.0, 500.0, 120.0]),
        multimask_output=False,
    )
    np.testing.assert_array_equal(result.masks, masks)
    np.testing.assert_array_equal(result.iou, scores)


def test_stability_score_matches_upstream_definition(setups, tiny_sam):
    from segment_anything.utils.amg import calculate_stability_score

    _rgb, predictor, embedding = setups[(300, 517)]
    prompt = _prompt_sets(300, 517)["one point"]
    logits, _, _ = predictor.predict(multimask_output=True, return_logits=True, **prompt)
    expected = calculate_stability_score(torch.as_tensor(logits), 0.0, 1.0).numpy()
    segmenter = PromptSegmenter(tiny_sam, "tiny")
    result = segmenter.predict(embedding, Prompts.from_points([prompt["point_coords"][0][::-1]]))
    np.testing.assert_allclose(result.stability, expected, rtol=0, atol=0)
    assert ((result.stability >= 0) & (result.stability <= 1)).all()
