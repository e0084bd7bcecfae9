"""Evaluation through every model family: MobileSAM and SAM 2.1 give the IoUs of their own
reference predictors driven with the same clicks (the evaluator only uses the engine's
public calls)."""

from __future__ import annotations

import numpy as np
import pytest
from familykit import mobilesam_reference, sam2_reference

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.sam.prompts import to_sam_prompts
from napari_promptseg.core.workflows.evaluation import (
    EvaluationSettings,
    evaluate_plane,
    first_prompt,
    mask_iou,
    next_click,
)
from napari_promptseg.core.workflows.evaluation.ground_truth import plane_objects

pytestmark = pytest.mark.slow  # a real encoder run per family, twice


def scene():
    rng = np.random.default_rng(4)
    gray = (rng.random((150, 210)) * 50).astype(np.uint8)
    labels = np.zeros(gray.shape, np.uint16)
    rows, cols = np.mgrid[:150, :210]
    labels[(rows - 50) ** 2 + (cols - 60) ** 2 < 30**2] = 1
    labels[90:135, 110:190] = 2
    gray[labels > 0] += 170
    return np.repeat(gray[..., None], 3, axis=2), labels


def reference_ious(predictor, truth, settings):
    """The evaluation loop written on a family's own predictor (same clicks, same choice)."""
    prompts, _ = first_prompt(truth, settings.start)
    ious = []
    while True:
        sam = to_sam_prompts(prompts, truth.shape)
        points = 0 if sam.point_coords is None else len(sam.point_coords)
        masks, scores, logits = predictor.predict(
            point_coords=sam.point_coords,
            point_labels=sam.point_labels,
            box=sam.box,
            mask_input=sam.mask_input,
            multimask_output=sam.box is None and points <= 1,
        )
        best = int(np.argmax(scores))
        ious.append(mask_iou(truth, masks[best]))
        click = next_click(truth, masks[best])
        if len(ious) == settings.clicks or click is None:
            return tuple(ious) + (ious[-1],) * (settings.clicks - len(ious))
        prompts = prompts.with_point((click.row, click.col), click.label)
        prompts = type(prompts)(
            points=prompts.points, labels=prompts.labels, box=prompts.box,
            mask_input=logits[best][None],
        )  # fmt: skip


def check_family(model, family, predictor):
    rgb, labels = scene()
    settings = EvaluationSettings(clicks=3)
    segmenter = PromptSegmenter(model, f"{family}-random", family=family)
    results = evaluate_plane(segmenter, rgb, labels, settings)
    predictor.set_image(rgb)
    expected = [
        reference_ious(predictor, obj.mask(labels), settings) for obj in plane_objects(labels)
    ]
    assert [r.label_id for r in results] == [1, 2]
    assert [r.ious for r in results] == expected


def test_mobilesam_evaluates_like_its_predictor():
    pytest.importorskip("mobile_sam")
    from mobile_sam import SamPredictor

    model = mobilesam_reference(seed=1)
    check_family(model, "mobilesam", SamPredictor(model))


def test_sam2_evaluates_like_its_image_predictor():
    pytest.importorskip("sam2", reason="SAM 2.1 needs the [sam2] extra")
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    model = sam2_reference(seed=1)
    check_family(model, "sam2.1", SAM2ImagePredictor(model))
