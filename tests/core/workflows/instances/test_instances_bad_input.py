"""AIS / APG on bad input: no decoder, a decoder of another encoder, no objects, cancelling.

Fast: the tiny test SAM with a tiny decoder (4 features) whose output layer is set by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.errors import ModelError
from napari_promptseg.core.workflows.instances import (
    APGParams,
    InstanceDecoder,
    InstanceSegmenter,
    automatic_modes,
    build_decoder,
)


def _decoder(bias: tuple[float, float, float], embed_dim: int = 32) -> InstanceDecoder:
    torch.manual_seed(0)
    decoder = InstanceDecoder(embed_dim=embed_dim, initial_features=4)
    with torch.no_grad():
        decoder.out_conv.weight.zero_()
        decoder.out_conv.bias.copy_(torch.tensor(bias))
    return decoder.eval()


def _save(path, tiny_sam, decoder=None, model_state=None):
    content = {"model_state": model_state if model_state is not None else tiny_sam.state_dict()}
    if decoder is not None:
        content["decoder_state"] = decoder.state_dict()
    torch.save(content, path)
    return path


@pytest.fixture
def everywhere(tiny_sam):
    """Foreground and seeds everywhere: one object per plane."""
    return InstanceSegmenter(PromptSegmenter(tiny_sam, "tiny-test"), _decoder((8.0, -8.0, -8.0)))


def test_checkpoint_without_decoder_names_its_modes(checkpoint):
    with pytest.raises(ModelError) as info:
        InstanceSegmenter.load(checkpoint=checkpoint, device="cpu")
    message = str(info.value)
    assert "no instance decoder" in message and "'grid'" in message
    assert "vit_t_lm" in message  # where AIS is to be had
    assert automatic_modes(False) == ("grid",)
    assert automatic_modes(True) == ("ais", "apg", "grid")
    assert automatic_modes(True, "sam2.1") == ()


def test_segmenter_without_decoder_checkpoint(segmenter):
    with pytest.raises(ModelError, match="no instance decoder"):
        InstanceSegmenter.from_segmenter(segmenter, None)


def test_decoder_of_another_embedding_width(tmp_path, tiny_sam):
    path = _save(tmp_path / "wide.pt", tiny_sam, _decoder((0.0, 0.0, 0.0), embed_dim=256))
    with pytest.raises(ModelError, match=r"256-channel embeddings.*another encoder"):
        InstanceSegmenter.load(checkpoint=path, device="cpu")


def test_decoder_file_of_another_encoder(tmp_path, tiny_sam, checkpoint):
    from familykit import mobilesam_reference

    vit_t = {f"sam.{k}": v for k, v in mobilesam_reference(0).state_dict().items()}
    path = _save(tmp_path / "vit_t_decoder.pt", tiny_sam, _decoder((0, 0, 0)), model_state=vit_t)
    with pytest.raises(ModelError, match="trained with a vit_t encoder"):
        InstanceSegmenter.load(checkpoint=checkpoint, decoder=path, device="cpu")


def test_decoder_weights_that_do_not_fit():
    state = _decoder((0, 0, 0)).state_dict()
    del state["decoder_head.block.4.weight"]
    with pytest.raises(ModelError, match="1 weights missing"):
        build_decoder(state)
    with pytest.raises(ModelError, match="not a micro-sam instance decoder"):
        build_decoder({"weight": torch.zeros(3)})


def test_no_objects_gives_empty_labels(tiny_sam, rgb_300x517):
    inst = InstanceSegmenter(PromptSegmenter(tiny_sam, "tiny-test"), _decoder((-8.0, 0.0, 0.0)))
    ais = inst.ais(rgb_300x517)
    assert ais.shape == (300, 517) and not ais.any()
    apg = inst.apg(rgb_300x517, APGParams())
    assert apg.shape == (300, 517) and apg.dtype == np.uint32 and not apg.any()


def test_one_object_everywhere(everywhere, rgb_300x517):
    labels = everywhere.ais(rgb_300x517)
    assert set(np.unique(labels)) == {1}
    with pytest.raises(ValueError, match="unknown instance mode"):
        everywhere.segment(rgb_300x517, "amg")


def test_unknown_mask_threshold_names_the_choices(everywhere, rgb_300x517):
    with pytest.raises(ValueError, match=r"'otsu'.*'auto'"):
        everywhere.apg(rgb_300x517, APGParams(mask_threshold="otsu"))
    labels = everywhere.apg(rgb_300x517, APGParams(mask_threshold="auto"))
    assert labels.shape == (300, 517) and labels.dtype == np.uint32


def test_cancelled_stack_keeps_planes_done(everywhere):
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 256, (4, 64, 96, 3), dtype=np.uint8)
    done: list[int] = []
    result = everywhere.ais_stack(
        stack, progress=lambda i, n: done.append(i), should_cancel=lambda: len(done) >= 2
    )
    assert result.cancelled and result.planes_done == 2 and done == [1, 2]
    assert result.labels.shape == (4, 64, 96)
    assert result.labels[0].all() and result.labels[1].all()
    assert not result.labels[2:].any()
    nothing = everywhere.ais_stack(stack, should_cancel=lambda: True)
    assert nothing.planes_done == 0 and nothing.labels.shape == (4, 64, 96)
    assert not nothing.labels.any()


def test_stack_must_be_3d(everywhere):
    from napari_promptseg.core.errors import ImageError

    with pytest.raises(ImageError, match="stack"):
        everywhere.ais_stack(np.zeros((64, 96), np.uint8))


def test_merge_planes_links_overlapping_objects():
    from napari_promptseg.core.workflows.instances import merge_planes, offset_planes

    plane = np.zeros((20, 30), np.uint32)
    plane[2:12, 3:13] = 1
    plane[5:15, 18:28] = 2
    apart = np.zeros_like(plane)
    apart[16:20, 0:2] = 1  # overlaps nothing in plane 1
    stack = offset_planes([plane, plane, apart])
    assert set(np.unique(stack)) == set(range(6))
    merged = merge_planes(stack)
    assert merged[0, 5, 5] == merged[1, 5, 5] and merged[0, 10, 20] == merged[1, 10, 20]
    assert merged[0, 5, 5] != merged[0, 10, 20]
    assert len(np.unique(merged)) == 4  # 0, two objects through planes 0-1, one new one
    # micro-sam's overlap edges skip the first id of a plane without background: kept
    full = offset_planes([np.ones((4, 4), np.uint32), np.ones((4, 4), np.uint32)])
    assert set(np.unique(merge_planes(full))) == {1, 2}


def test_registry_model_decoder_is_fetched_on_request(checkpoint, tiny_sam):
    """A registry model whose file lacks ``decoder_state`` gets micro-sam's decoder file
    (downloaded, verified); offline, the message says which file to put where."""
    from types import SimpleNamespace

    from napari_promptseg.core.errors import CheckpointNotAvailable
    from napari_promptseg.core.workflows.instances import load_instance_decoder
    from napari_promptseg.core.workflows.instances.decoders import decoder_spec

    model = SimpleNamespace(
        name="vit_t_lm", checkpoint=checkpoint, sam=tiny_sam, device="cpu", family="mobilesam"
    )
    with pytest.raises(
        CheckpointNotAvailable, match=r"faithful-chicken/1\.1/files/vit_t_decoder\.pt"
    ):
        load_instance_decoder(model, offline=True)
    assert decoder_spec("vit_b_lm").hash == "xxh128:708b15ac620e235f90bb38612c4929ba"
    assert decoder_spec("vit_b") is None
