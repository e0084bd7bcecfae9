"""Clicks that select AIS objects (the demo model's click path), on known objects and maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_promptseg.core.errors import PromptError
from napari_promptseg.core.sam.embedding import EmbeddingKey, ImageEmbedding
from napari_promptseg.core.sam.prompts import Prompts
from napari_promptseg.core.workflows.instances.ais import InstanceMaps
from napari_promptseg.core.workflows.instances.clicks import (
    InstanceClickDecoder,
    use_instance_clicks,
    wants_instance_clicks,
)

H, W = 60, 90  # not square: rows and columns must not be swapped


def _objects() -> np.ndarray:
    labels = np.zeros((H, W), np.int32)
    labels[5:20, 5:25] = 1
    labels[5:20, 25:40] = 2  # touches 1
    labels[35:55, 60:85] = 3  # apart
    return labels


class _FakeInstances:
    """What the decoder reads of an InstanceSegmenter: AIS labels and maps, counted."""

    def __init__(self, labels: np.ndarray, foreground: np.ndarray) -> None:
        self.labels, self.foreground, self.ais_calls = labels, foreground, 0

    def ais(self, embedding):
        self.ais_calls += 1
        return self.labels

    def maps(self, embedding):
        zeros = np.zeros_like(self.foreground)
        return InstanceMaps(self.foreground, zeros, zeros)


def _decoder(extra_foreground: bool = False):
    labels = _objects()
    foreground = np.where(labels > 0, 0.9, 0.1).astype(np.float32)
    foreground[labels == 3] = 0.7
    if extra_foreground:  # a bright region AIS left without an object
        foreground[40:50, 10:20] = 0.8
    embedding = ImageEmbedding(
        features=torch.zeros(1, 64, 64, 64),
        original_size=(H, W),
        input_size=(683, 1024),
        key=EmbeddingKey("img", "demo"),
    )
    fake = _FakeInstances(labels, foreground)
    return InstanceClickDecoder(fake), embedding, labels, fake


def test_a_click_selects_the_object_under_it_with_alternatives():
    decoder, embedding, labels, fake = _decoder()
    result = decoder.predict(embedding, Prompts.from_points([[10, 30]]))  # (row, col) in 2
    assert result.masks.shape == (3, H, W) and result.best == 0
    np.testing.assert_array_equal(result.mask, labels == 2)
    np.testing.assert_array_equal(result.masks[1], np.isin(labels, [1, 2]))  # + touching 1
    np.testing.assert_array_equal(result.masks[2], np.isin(labels, [1, 2]))  # its clump
    assert result.iou[0] == pytest.approx(0.9)
    assert result.low_res_logits.shape == (3, 256, 256)
    # the mask in SAM's padded 256 frame: 60 x 90 -> 171 x 256 (x 2.84), padding below
    logits = result.low_res_logits[0]
    assert logits[30, 90] > 0 and logits[30, 40] < 0 and logits[150, 90] < 0
    assert (logits[171:] < 0).all()
    decoder.predict(embedding, Prompts.from_points([[40, 70]]))
    assert fake.ais_calls == 1  # AIS once per image, then cached


def test_box_negative_clicks_and_positive_clicks_on_two_objects():
    decoder, embedding, labels, _ = _decoder()
    two = decoder.predict(embedding, Prompts.from_points([[10, 10], [45, 70]], [1, 1]))
    assert two.masks.shape == (1, H, W)
    np.testing.assert_array_equal(two.mask, np.isin(labels, [1, 3]))
    box = decoder.predict(embedding, Prompts(box=np.array([0, 0, 30, 45])))  # rows, cols
    np.testing.assert_array_equal(box.mask, np.isin(labels, [1, 2]))
    excluded = Prompts(
        box=np.array([0, 0, 30, 45]), points=np.array([[10, 10]]), labels=np.array([0])
    )
    np.testing.assert_array_equal(decoder.predict(embedding, excluded).mask, labels == 2)
    # a negative click inside the object split off the part nearer to it
    split = decoder.predict(embedding, Prompts.from_points([[10, 6], [10, 22]], [1, 0]))
    mask = split.mask
    assert mask[10, 6] and not mask[10, 22] and not mask[labels != 1].any()
    assert mask[labels == 1].sum() < (labels == 1).sum()


def test_background_click_takes_the_foreground_region_or_nothing():
    decoder, embedding, _, _ = _decoder(extra_foreground=True)
    region = decoder.predict(embedding, Prompts.from_points([[45, 15]]))
    assert region.mask[40:50, 10:20].all() and region.mask.sum() == 100
    empty = decoder.predict(embedding, Prompts.from_points([[58, 45]]))  # dark background
    assert not empty.masks.any() and empty.iou[0] == 0.0
    with pytest.raises(PromptError, match="only negative"):
        decoder.predict(embedding, Prompts.from_points([[10, 10]], [0]))


def test_only_checkpoints_that_ask_for_it_get_instance_clicks(tmp_path):
    from napari_promptseg.core import PromptSegmenter
    from napari_promptseg.core.models.my_models import METADATA_KEY
    from napari_promptseg.testing import build_tiny_sam

    plain, asking = tmp_path / "plain.pt", tmp_path / "asking.pt"
    torch.save({"model_state": {}}, plain)
    torch.save({"model_state": {}, METADATA_KEY: {"prompts": "instances"}}, asking)
    assert not wants_instance_clicks(None) and not wants_instance_clicks(plain)
    assert wants_instance_clicks(asking)
    segmenter = PromptSegmenter(build_tiny_sam(seed=0), "tiny")
    segmenter.checkpoint = plain
    before = segmenter.decoder
    assert not use_instance_clicks(segmenter) and segmenter.decoder is before
