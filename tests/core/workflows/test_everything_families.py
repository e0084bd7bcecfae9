"""Segment everything per model family: MobileSAM equals its upstream generator; SAM 2.1 refused."""

from __future__ import annotations

import numpy as np
import pytest
from familykit import mobilesam_reference, sam2_reference

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.sam.families import FamilyError
from napari_promptseg.core.workflows.everything import EverythingParams, segment_everything

pytestmark = pytest.mark.slow  # a real encoder run, or a SAM 2.1 model build


def test_mobilesam_equals_its_automatic_mask_generator():
    pytest.importorskip("mobile_sam")
    from mobile_sam import SamAutomaticMaskGenerator

    model = mobilesam_reference(seed=2)
    rgb = np.random.default_rng(5).integers(0, 256, (200, 331, 3), dtype=np.uint8)
    params = EverythingParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    upstream = SamAutomaticMaskGenerator(model, **params.upstream_kwargs()).generate(rgb)
    ours = segment_everything(
        PromptSegmenter(model, "vit_t-random", family="mobilesam"), rgb, params
    )
    assert len(upstream) > 0 and len(ours.masks) == len(upstream)
    for theirs, mine in zip(upstream, ours.masks, strict=True):
        np.testing.assert_array_equal(mine.full(rgb.shape[:2]), theirs["segmentation"])
        assert mine.predicted_iou == theirs["predicted_iou"]
        assert mine.stability == theirs["stability_score"]


def test_sam2_is_refused_with_one_message_before_any_work():
    pytest.importorskip("sam2", reason="SAM 2.1 needs the [sam2] extra")
    segmenter = PromptSegmenter(
        sam2_reference(), "sam2-random", name="sam2.1_hiera_t", family="sam2.1"
    )
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(FamilyError) as info:
        segment_everything(segmenter, rgb, EverythingParams(points_per_side=4))
    message = str(info.value)
    assert "segment everything is not available for SAM 2.1 models" in message
    assert "'sam2.1_hiera_t'" in message and "SAM or MobileSAM" in message
    assert segmenter.encoder_calls == 0
