"""The demo architecture (model type vit_demo): recognised from its weights, loaded through
the normal loader, its positional-encoding frequencies carried by the checkpoint."""

from __future__ import annotations

import torch

from napari_promptseg.core.models import infer_model_type, load_model
from napari_promptseg.core.models.demo import DEMO_MODEL_TYPE, build_demo_sam


def test_demo_architecture_is_recognised_and_loads_with_its_frequencies(tmp_path):
    sam = build_demo_sam(seed=3, pe_scale=12.0)
    state = sam.state_dict()
    assert infer_model_type(state) == DEMO_MODEL_TYPE
    matrix = state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    assert 8.0 < float(matrix.std()) < 16.0  # SAM's frequencies have scale 1
    path = tmp_path / "demo.pt"
    torch.save({"model_state": state}, path)
    loaded = load_model(checkpoint=path)  # model type guessed from the weights
    assert loaded.model_type == DEMO_MODEL_TYPE
    for key, value in loaded.sam.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_demo_builder_is_seeded():
    a, b = build_demo_sam(seed=1).state_dict(), build_demo_sam(seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build_demo_sam(seed=2).state_dict()
    assert not torch.equal(
        a["image_encoder.patch_embed.proj.weight"], c["image_encoder.patch_embed.proj.weight"]
    )
