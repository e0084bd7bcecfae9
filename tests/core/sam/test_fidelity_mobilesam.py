"""MobileSAM (vit_t): our embeddings, masks, scores and logits equal ``mobile_sam.SamPredictor``'s.

The reference model is built by mobile_sam's own registry ("vit_t") with random weights; ours
is loaded from the saved checkpoint through the registry's loading code, as a user's file
would be. Odd non-square sizes catch coordinate-order, resizing and padding mistakes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mobile_sam", reason="MobileSAM needs the mobilesam-mirror package")

from familykit import SIZES, images, mobilesam_reference, prompt_sets, save_mobilesam

from napari_promptseg.core import Prompts, PromptSegmenter, SamPrompts
from napari_promptseg.core.models import load_model

pytestmark = pytest.mark.slow  # four TinyViT encodings (about 2 s each on a laptop CPU)


@pytest.fixture(scope="module")
def setups(tmp_path_factory):
    from mobile_sam import SamPredictor

    reference = mobilesam_reference()
    path = save_mobilesam(reference, tmp_path_factory.mktemp("vit_t") / "mobile_sam_random.pt")
    loaded = load_model(checkpoint=path, device="cpu")  # model type recognised from weights
    segmenter = PromptSegmenter.from_model(loaded)
    out = {}
    for size, rgb in images().items():
        predictor = SamPredictor(reference)
        predictor.set_image(rgb)
        out[size] = (rgb, predictor, segmenter.embed(rgb))
    return loaded, segmenter, out


def test_checkpoint_loads_as_mobilesam(setups):
    loaded, segmenter, _ = setups
    assert (loaded.model_type, loaded.family) == ("vit_t", "mobilesam")
    assert segmenter.encode_steps == 1 + 12 + 1  # patch embedding, 2+2+6+2 blocks, neck


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_embedding_equals_set_image(setups, size):
    _, _, out = setups
    _rgb, predictor, embedding = out[size]
    assert torch.equal(embedding.features, predictor.features)
    assert embedding.input_size == tuple(predictor.input_size)
    assert embedding.key.family == "mobilesam" and embedding.high_res_features == ()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("kind", ["one point", "points", "box", "points and box"])
def test_decode_equals_mobilesam_predictor(setups, size, multimask, kind):
    _, segmenter, out = setups
    _rgb, predictor, embedding = out[size]
    prompt = prompt_sets(*size)[kind]
    masks, scores, logits = predictor.predict(multimask_output=multimask, **prompt)
    result = segmenter.decoder.decode(
        embedding,
        SamPrompts(prompt.get("point_coords"), prompt.get("point_labels"), prompt.get("box"), None),
        multimask=multimask,
    )
    assert result.masks.shape == (3 if multimask else 1, *size)
    assert masks.any() and not masks.all(), "test prompts should give non-trivial masks"
    np.testing.assert_array_equal(result.masks, masks)
    np.testing.assert_array_equal(result.iou, scores)
    np.testing.assert_array_equal(result.low_res_logits, logits)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_refinement_with_mask_input_equals_mobilesam_predictor(setups, size):
    _, segmenter, out = setups
    _rgb, predictor, embedding = out[size]
    prompt = prompt_sets(*size)["points"]
    _, _, first = predictor.predict(multimask_output=False, **prompt)
    masks, scores, logits = predictor.predict(mask_input=first, multimask_output=False, **prompt)
    result = segmenter.decoder.decode(
        embedding,
        SamPrompts(prompt["point_coords"], prompt["point_labels"], None, first),
        multimask=False,
    )
    np.testing.assert_array_equal(result.masks, masks)
    np.testing.assert_array_equal(result.iou, scores)
    np.testing.assert_array_equal(result.low_res_logits, logits)


def test_napari_prompts_through_the_engine(setups):
    """The engine's (row, col) path gives the predictor's result for (x=col, y=row)."""
    _, segmenter, out = setups
    rgb, predictor, _ = out[(300, 517)]
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
    assert segmenter.encoder_calls == len(SIZES)  # segment() reused the cached embedding
