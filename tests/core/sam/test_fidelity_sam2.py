"""SAM 2.1: our embeddings, masks, scores and logits equal ``SAM2ImagePredictor``'s.

The reference is ``build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=None)`` with
random weights; ours is loaded from the saved ``{"model": state_dict}`` checkpoint (the
official format) through our loader. Skipped, with the reason, where the ``[sam2]`` extra is
not installed; CI installs it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip(
    "sam2", reason="SAM 2.1 needs the [sam2] extra: pip install 'napari-promptseg[sam2]'"
)

from familykit import SIZES, images, prompt_sets, sam2_reference, save_sam2

from napari_promptseg.core import Prompts, PromptSegmenter, SamPrompts
from napari_promptseg.core.models import load_model
from napari_promptseg.core.sam.families.sam2_decode import image_tokens

pytestmark = pytest.mark.slow  # four hiera_t encodings (about 4 s each on a laptop CPU)


@pytest.fixture(scope="module")
def setups(tmp_path_factory):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    reference = sam2_reference()
    path = save_sam2(reference, tmp_path_factory.mktemp("sam2") / "sam2.1_random.pt")
    loaded = load_model(checkpoint=path, device="cpu")  # model type recognised from weights
    segmenter = PromptSegmenter.from_model(loaded)
    out = {}
    for size, rgb in images().items():
        predictor = SAM2ImagePredictor(reference)
        predictor.set_image(rgb)
        out[size] = (rgb, predictor, segmenter.embed(rgb))
    return loaded, segmenter, out


def test_checkpoint_loads_as_sam2(setups):
    loaded, segmenter, _ = setups
    assert (loaded.model_type, loaded.family) == ("sam2.1_hiera_t", "sam2.1")
    assert segmenter.encode_steps == 12 + 2  # patch embedding, 1+2+7+2 Hiera blocks, neck


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_embedding_equals_set_image(setups, size):
    _, segmenter, out = setups
    _rgb, predictor, embedding = out[size]
    features = predictor._features
    # we keep the backbone map; the image predictor's embedding adds the "no memory" embedding
    assert torch.equal(image_tokens(segmenter.sam, embedding), features["image_embed"])
    assert not torch.equal(embedding.features, features["image_embed"])
    assert len(embedding.high_res_features) == 2
    for ours, theirs in zip(embedding.high_res_features, features["high_res_feats"], strict=True):
        assert torch.equal(ours, theirs)
    assert [tuple(t.shape) for t in embedding.high_res_features] == [
        (1, 32, 256, 256),
        (1, 64, 128, 128),
    ]
    assert embedding.key.family == "sam2.1"
    assert embedding.nbytes == 4 * (256 * 64 * 64 + 32 * 256 * 256 + 64 * 128 * 128)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("kind", ["one point", "points", "box", "points and box"])
def test_decode_equals_sam2_image_predictor(setups, size, multimask, kind):
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
def test_refinement_with_mask_input_equals_sam2_image_predictor(setups, size):
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
    assert np.abs(result.low_res_logits).max() <= 32.0  # clamped, as the predictor returns them


def test_napari_prompts_through_the_engine(setups):
    """The engine's (row, col) path gives the predictor's result for (x=col, y=row)."""
    _, segmenter, out = setups
    rgb, predictor, _ = out[(517, 300)]
    prompts = Prompts(points=[[400.0, 40.0], [30.0, 250.0]], labels=[1, 0], box=[300, 20, 500, 120])
    result = segmenter.segment(rgb, prompts, multimask=False)
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[40.0, 400.0], [250.0, 30.0]]),
        point_labels=np.array([1, 0]),
        box=np.array([20.0, 300.0, 120.0, 500.0]),
        multimask_output=False,
    )
    np.testing.assert_array_equal(result.masks, masks)
    np.testing.assert_array_equal(result.iou, scores)
    assert segmenter.encoder_calls == len(SIZES)
