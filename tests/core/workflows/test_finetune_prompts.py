"""Finetuning targets, sampled prompts and the SAM loss, on masks with known answers."""

from __future__ import annotations

import numpy as np
import torch

from napari_promptseg.core.workflows.finetune.forward import decode_batch
from napari_promptseg.core.workflows.finetune.losses import mask_iou, sam_loss
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells
from napari_promptseg.core.workflows.finetune.targets import (
    PAD_LABEL,
    correction_clicks,
    plane_targets,
    sample_boxes,
    sample_points,
)


def test_targets_sit_on_sams_mask_grid():
    labels = np.zeros((256, 512), np.int32)  # resized to 512 x 1024: grid 128 x 256, 2 px/cell
    labels[100:140, 200:260] = 5
    labels[10:12, 10:12] = 6  # 4 pixels: one cell at most, dropped
    targets = plane_targets(labels, [5, 6])
    assert targets.ids == [5] and targets.input_size == (512, 1024)
    assert targets.grid_size == (128, 256) and targets.stride == 4
    rows, cols = np.nonzero(targets.masks[0].numpy())
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (50, 70, 100, 130)


def test_points_fall_inside_their_masks():
    masks = torch.zeros((3, 32, 32))
    masks[0, 5:8, 5:8] = 1
    masks[1, 20, 30] = 1
    masks[2, 10:30, 0:4] = 1
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        coords, found = sample_points(masks, 4.0, generator)
        assert found.all()
        cells = (coords / 4.0).long()
        assert masks[torch.arange(3), cells[:, 1], cells[:, 0]].all()


def test_boxes_cover_their_masks_within_the_noise():
    masks = torch.zeros((1, 64, 64))
    masks[0, 10:20, 30:50] = 1  # input frame: x 120..200, y 40..80
    generator = torch.Generator().manual_seed(0)
    boxes = torch.cat([sample_boxes(masks, 4.0, generator) for _ in range(200)])
    exact = torch.tensor([120.0, 40.0, 200.0, 80.0])
    assert (boxes - exact).abs().max() <= 20.0  # noise capped at 20 input pixels
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes - exact).abs().mean() > 1.0  # and there is noise


def test_correction_clicks_are_positive_where_missed_negative_where_spilled():
    truth = torch.zeros((3, 16, 16), dtype=torch.bool)
    truth[:, 4:12, 4:12] = True
    predicted = truth.clone()
    predicted[0, 4:12, 4:8] = False  # missed the left half
    predicted[1, 0:2, :] = True  # spilled over the top
    generator = torch.Generator().manual_seed(0)
    valid = torch.ones_like(truth)
    coords, labels = correction_clicks(predicted, truth, valid, 4.0, generator)
    assert labels.tolist() == [1, 0, PAD_LABEL]  # object 3 is perfect: no click
    col, row = (coords[:2] / 4.0).long().unbind(1)
    assert 4 <= col[0] < 8 and 4 <= row[0] < 12
    assert row[1] < 2


def test_sam_loss_trains_the_best_allowed_candidate_and_the_iou_head():
    truth = torch.zeros((1, 16, 16))
    truth[0, 4:12, 4:12] = 1
    valid = torch.ones_like(truth)
    perfect = torch.where(truth[0] > 0, 10.0, -10.0)
    logits = torch.stack([perfect, -perfect, perfect, torch.full((16, 16), -10.0)])[None]
    actual = mask_iou(logits, truth[:, None], valid[:, None])
    assert actual.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    candidates = torch.tensor([[False, True, True, True]])  # a lone point: tokens 1-3
    loss, best = sam_loss(logits, actual, truth, valid, candidates)
    assert best.tolist() == [2] and float(loss) < 1e-3
    single = torch.tensor([[True, False, False, False]])  # token 0 only
    loss, best = sam_loss(logits, actual, truth, valid, single)
    assert best.tolist() == [0] and float(loss) < 1e-3
    wrong_iou_loss, _ = sam_loss(logits, 1 - actual, truth, valid, candidates)
    assert float(wrong_iou_loss) > 0.5  # the IoU head is trained on every candidate


def test_padding_outside_the_plane_is_not_trained():
    truth = torch.zeros((1, 16, 16))
    truth[0, 2:6, 2:6] = 1
    valid = torch.zeros_like(truth)
    valid[0, :8, :8] = 1
    inside = torch.where(truth[0] > 0, 10.0, -10.0)
    spilled = inside.clone()
    spilled[8:, :] = 10.0  # "mask" in the padding only
    logits = torch.stack([inside, spilled, inside, inside])[None]
    allowed = torch.tensor([[True, True, False, False]])
    losses = [
        float(
            sam_loss(
                logits[:, [k, k, k, k]],
                mask_iou(logits, truth[:, None], valid[:, None])[:, [k] * 4],
                truth,
                valid,
                allowed,
            )[0]
        )
        for k in (0, 1)
    ]
    assert abs(losses[0] - losses[1]) < 1e-6


def test_batched_decoder_equals_the_mask_decoder(tiny_sam):
    """decode_batch on two planes gives upstream MaskDecoder's masks and scores for each."""
    torch.manual_seed(0)
    features = torch.randn(2, 32, 64, 64)
    coords = torch.rand(3, 2, 2) * 1024
    labels = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.int)
    plane_of = torch.tensor([0, 1, 1])
    with torch.no_grad():
        sparse, dense = tiny_sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        masks, iou = decode_batch(tiny_sam, features, plane_of, sparse, dense)
        for b in range(3):
            for multimask, tokens in ((False, [0]), (True, [1, 2, 3])):
                ref_masks, ref_iou = tiny_sam.mask_decoder(
                    image_embeddings=features[plane_of[b] : plane_of[b] + 1],
                    image_pe=tiny_sam.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse[b : b + 1],
                    dense_prompt_embeddings=dense[b : b + 1],
                    multimask_output=multimask,
                )
                torch.testing.assert_close(masks[b, tokens], ref_masks[0], rtol=1e-4, atol=1e-4)
                torch.testing.assert_close(iou[b, tokens], ref_iou[0], rtol=1e-4, atol=1e-5)


def test_synthetic_images_are_reproducible_and_labelled():
    first, again = synthetic_cells(7, (200, 240)), synthetic_cells(7, (200, 240))
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert first.image.shape == first.labels.shape == (200, 240)
    ids = np.unique(first.labels)
    assert ids[0] == 0 and list(ids[1:]) == list(range(1, len(ids)))  # consecutive
    assert len(ids) > 3
    inside = first.image[first.labels > 0].astype(float).mean()
    outside = first.image[first.labels == 0].astype(float).mean()
    assert inside > outside  # objects are brighter than the background
