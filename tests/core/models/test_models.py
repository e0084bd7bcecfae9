"""Reading checkpoints safely and building models from them (no network)."""

from __future__ import annotations

import os
import pickle
import time

import pytest
import torch

from napari_promptseg.core import models
from napari_promptseg.core.errors import ModelError
from napari_promptseg.testing import (
    TINY_MODEL_TYPE,
    build_tiny_sam,
    save_tiny_checkpoint,
)


@pytest.fixture(scope="module")
def tiny_state():
    return build_tiny_sam(seed=0).state_dict()


@pytest.fixture
def tiny_file(tmp_path):
    return save_tiny_checkpoint(tmp_path / "tiny.pth")


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- load_state_dict -------------------------------------------------------------------


def test_plain_state_dict(tiny_file, tiny_state):
    assert _same_weights(models.load_state_dict(tiny_file), tiny_state)


def test_build_tiny_sam_loads_through_safe_loader(tiny_file, tiny_state):
    assert _same_weights(build_tiny_sam(tiny_file, seed=1).state_dict(), tiny_state)


@pytest.mark.parametrize(
    "wrap",
    [
        # micro-sam / torch_em training checkpoint, with the extra decoder and trainer state
        lambda sd: {
            "model_state": {f"sam.{k}": v for k, v in sd.items()},
            "decoder_state": {"base.weight": torch.zeros(2)},
            "optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-5}]},
            "epoch": 3,
        },
        # micro-sam export with a segmentation decoder
        lambda sd: {"model_state": dict(sd), "decoder_state": {"x": torch.ones(1)}},
        # trained with DistributedDataParallel
        lambda sd: {"model_state": {f"module.sam.{k}": v for k, v in sd.items()}},
        lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 2},
        lambda sd: {"model": dict(sd), "iteration": 10},
    ],
    ids=["torch_em", "export_with_decoder", "ddp", "lightning", "model_key"],
)
def test_known_layouts_are_unwrapped(tmp_path, tiny_state, wrap):
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(tiny_state), path)
    assert _same_weights(models.load_state_dict(path), tiny_state)


def test_truncated_file(tmp_path, tiny_file):
    path = tmp_path / "truncated.pth"
    path.write_bytes(tiny_file.read_bytes()[: tiny_file.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated or not a PyTorch checkpoint") as info:
        models.load_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content", [os.urandom(4096), b"", b"hello\n" * 100], ids=["random", "empty", "text"]
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="truncated or not a PyTorch checkpoint"):
        models.load_state_dict(path)


class _Malicious:
    """Unpickling this runs ``os.system`` (writes a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("container", ["torch_zip", "legacy_pickle"])
def test_malicious_pickle_is_refused(tmp_path, tiny_state, container):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    payload = {"evil": _Malicious(marker), **tiny_state}
    if container == "torch_zip":
        torch.save(payload, path)
    else:  # a bare pickle, as a hand-crafted attack file would be
        with open(path, "wb") as stream:
            pickle.dump(payload, stream, protocol=2)

    with pytest.raises(ModelError, match="refused as unsafe") as info:
        models.load_state_dict(path)
    assert "system" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ModelError, match="unsafe"):
        models.load_model(checkpoint=path)
    assert not marker.exists()


def test_malicious_pickle_is_real(tmp_path):
    """Control: without weights_only the payload above does run (so the test is meaningful)."""
    marker = tmp_path / "pwned.txt"
    pickle.loads(pickle.dumps({"evil": _Malicious(marker)}, protocol=2))
    assert marker.exists()


def test_non_tensor_objects_are_refused(tmp_path, tiny_state):
    path = tmp_path / "objects.pth"
    torch.save({"model_state": tiny_state, "config": _Config()}, path)
    with pytest.raises(ModelError, match="refused as unsafe"):
        models.load_state_dict(path)


class _Config:
    pass


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(ModelError, match="not found") as info:
        models.load_state_dict(path)
    assert str(path) in str(info.value)
    with pytest.raises(ModelError, match="is a folder"):
        models.load_state_dict(tmp_path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelError, match="not a state dict"):
        models.load_state_dict(path)
    torch.save({"epoch": 1, "name": "x"}, path)
    with pytest.raises(ModelError, match="no model weights"):
        models.load_state_dict(path)


# --- model types -----------------------------------------------------------------------


def _fake_encoder_state(width, depth):
    state = {"image_encoder.patch_embed.proj.weight": torch.empty(width, 3, 16, 16)}
    for i in range(depth):
        state[f"image_encoder.blocks.{i}.norm1.weight"] = torch.empty(width)
    return state


@pytest.mark.parametrize(
    ("width", "depth", "expected"),
    [(768, 12, "vit_b"), (1024, 24, "vit_l"), (1280, 32, "vit_h"), (768, 5, None), (64, 12, None)],
)
def test_infer_model_type(width, depth, expected):
    assert models.infer_model_type(_fake_encoder_state(width, depth)) == expected


def test_infer_tiny(tiny_state):
    assert models.infer_model_type(tiny_state) == TINY_MODEL_TYPE
    assert models.infer_model_type({"foo": torch.zeros(1)}) is None


# --- load_model ------------------------------------------------------------------------


def test_load_local_checkpoint_infers_type(tiny_file, tiny_state):
    loaded = models.load_model(checkpoint=tiny_file, device="cpu")
    assert loaded.model_type == TINY_MODEL_TYPE
    assert loaded.name == "tiny.pth"
    assert loaded.checkpoint == tiny_file
    assert loaded.device == torch.device("cpu")
    assert not loaded.sam.training
    assert not any(t.is_meta for t in loaded.sam.parameters())
    assert _same_weights(loaded.sam.state_dict(), tiny_state)
    assert "ImageEncoderViT" not in repr(loaded)  # no giant module repr


def test_loaded_model_runs(tiny_file):
    sam = models.load_model(checkpoint=tiny_file).sam
    with torch.no_grad():
        features = sam.image_encoder(torch.zeros(1, 3, 1024, 1024))
    assert features.shape == (1, 32, 64, 64) and torch.isfinite(features).all()


def test_local_model_id_is_stable_and_tracks_the_file(tiny_file, tmp_path):
    first = models.load_model(checkpoint=tiny_file).model_id
    assert models.load_model(checkpoint=str(tiny_file)).model_id == first
    assert first.startswith(f"{TINY_MODEL_TYPE}@file:")

    stat = tiny_file.stat()
    os.utime(tiny_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert models.load_model(checkpoint=tiny_file).model_id != first

    copy = tmp_path / "copy.pth"
    copy.write_bytes(tiny_file.read_bytes())
    assert models.load_model(checkpoint=copy).model_id != first


def test_micro_sam_layout_loads_as_model(tmp_path, tiny_state):
    path = tmp_path / "microsam.pt"
    torch.save(
        {"model_state": {f"sam.{k}": v for k, v in tiny_state.items()}, "decoder_state": {}}, path
    )
    loaded = models.load_model(checkpoint=path, model_type=TINY_MODEL_TYPE)
    assert _same_weights(loaded.sam.state_dict(), tiny_state)


def test_half_precision_checkpoint_becomes_float32(tmp_path, tiny_state):
    path = tmp_path / "half.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in tiny_state.items()}, path)
    sam = models.load_model(checkpoint=path).sam
    assert all(p.dtype == torch.float32 for p in sam.parameters())


def test_wrong_model_type_is_explained(tiny_file):
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        models.load_model(checkpoint=tiny_file, model_type="vit_b")
    message = str(info.value)
    assert f"checkpoint {tiny_file} does not fit model type 'vit_b'" in message
    assert f"looks like {TINY_MODEL_TYPE}" in message
    assert time.perf_counter() - start < 10  # the empty vit_b is built without weights


def test_unknown_architecture(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ModelError, match="cannot tell which SAM architecture"):
        models.load_model(checkpoint=path)
    with pytest.raises(ModelError, match="not a SAM architecture this plugin knows"):
        models.load_model(checkpoint=path, model_type=TINY_MODEL_TYPE)
    with pytest.raises(ModelError, match="unknown model type 'vit_q'"):
        models.load_model(checkpoint=path, model_type="vit_q")


def test_missing_checkpoint_names_path(tmp_path):
    path = tmp_path / "missing.pth"
    with pytest.raises(ModelError) as info:
        models.load_model(checkpoint=path)
    assert str(path) in str(info.value)


def test_name_and_checkpoint_together_is_an_error(tiny_file):
    with pytest.raises(ModelError, match="not both"):
        models.load_model("vit_b", checkpoint=tiny_file)


def test_registry_model_with_other_type_is_an_error():
    with pytest.raises(ModelError, match="vit_b model"):
        models.load_model("vit_b", model_type="vit_h", offline=True)


def test_unavailable_device_fails_before_any_download(tiny_file):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="cuda"):
        models.load_model(checkpoint=tiny_file, device="cuda")


def test_wrap_model():
    sam = build_tiny_sam(seed=0).train()
    loaded = models.wrap_model(sam, model_id="tiny-seed0")
    assert loaded.sam is sam and not sam.training
    assert (loaded.model_id, loaded.name, loaded.model_type) == ("tiny-seed0", "custom", "custom")
    assert loaded.device == torch.device("cpu") and loaded.checkpoint is None
    assert models.wrap_model(sam, model_id="x", device="cpu", name="tiny").name == "tiny"
    with pytest.raises(ModelError, match="model_id"):
        models.wrap_model(sam, model_id="")


def test_list_models_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_PROMPTSEG_CACHE", str(tmp_path))
    spec = models.MODELS["vit_b"]
    (tmp_path / spec.filename).write_bytes(b"too short")  # wrong size: not counted as cached
    rows = {row["name"]: row for row in models.list_models()}
    assert set(rows) == set(models.MODELS)
    row = rows["vit_b"]
    assert row["model_type"] == "vit_b" and row["size_text"] == "358 MiB"
    assert row["size"] == spec.size_bytes
    assert row["path"] == str(tmp_path / spec.filename)
    assert row["cached"] is False
    assert rows["vit_b_lm"]["size"] is None and rows["vit_b_lm"]["size_text"] == "unknown"
    assert rows["vit_b_lm"]["description"]
