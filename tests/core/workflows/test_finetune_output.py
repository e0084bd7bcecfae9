"""Finetuned models on disk: weights-only checkpoint + entry, "my models", failures harmless."""

from __future__ import annotations

import errno
import hashlib
import json

import numpy as np
import pytest
import torch

from napari_promptseg.core import ExportError, ModelError, Prompts, PromptSegmenter
from napari_promptseg.core.models import list_models, load_model
from napari_promptseg.core.models.my_models import METADATA_KEY, my_models_dir, read_my_models
from napari_promptseg.core.workflows.finetune import (
    FinetuneError,
    FinetuneResult,
    output,
    save_finetuned,
)
from napari_promptseg.testing import build_tiny_sam


def result(seed: int = 1) -> FinetuneResult:
    metadata = {
        "base_model": "tiny-test",
        "family": "sam",
        "model_type": "vit_tiny",
        "data": {"objects": 42},
        "validation": {"before": {"miou_at_1": 0.1}, "after": {"miou_at_1": 0.5}},
        "nan_is_fine": float("nan"),
    }
    return FinetuneResult(sam=build_tiny_sam(seed=seed), metadata=metadata)


def files() -> list[str]:
    return sorted(p.name for p in my_models_dir().iterdir())


def test_saved_model_is_listed_and_loads_through_the_normal_loader():
    saved = save_finetuned(result(), "nuclei")
    digest = hashlib.sha256(saved.path.read_bytes()).hexdigest()
    assert saved.sha256 == digest and saved.path.parent == my_models_dir()
    payload = torch.load(saved.path, weights_only=True)  # weights only: no pickled objects
    assert payload[METADATA_KEY]["data"] == {"objects": 42}
    assert payload[METADATA_KEY]["nan_is_fine"] is None
    entry = json.loads(saved.entry.read_text())
    assert entry["sha256"] == digest and entry["file"] == saved.path.name

    row = next(r for r in list_models() if r["name"] == "nuclei")
    assert row["group"] == "my models" and row["shipped"] and row["cached"]
    assert "0.10 -> 0.50" in row["description"]

    model = load_model("nuclei", device="cpu")
    assert model.model_type == "vit_tiny" and model.model_id.startswith("nuclei@")
    reference = build_tiny_sam(seed=1).state_dict()
    for key, value in model.sam.state_dict().items():
        torch.testing.assert_close(value, reference[key])
    segmenter = PromptSegmenter.from_model(model)
    rgb = np.zeros((64, 80, 3), np.uint8)
    assert segmenter.segment(rgb, Prompts.from_points([[30, 40]])).masks.shape[1:] == (64, 80)


def test_saving_again_replaces_the_old_checkpoint():
    first = save_finetuned(result(1), "again")
    second = save_finetuned(result(2), "again")
    assert first.path != second.path and not first.path.exists() and second.path.exists()
    assert [m.path for m in read_my_models() if m.name == "again"] == [second.path]


def test_disk_full_while_writing_the_checkpoint_keeps_the_previous_model(monkeypatch):
    previous = save_finetuned(result(1), "full")
    before = files()

    def full_disk(payload, file):
        file.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(output.torch, "save", full_disk)
        with pytest.raises(ExportError, match="No space left on device"):
            save_finetuned(result(2), "full")
    assert files() == before  # no partial file, old entry and checkpoint untouched
    assert load_model("full", device="cpu").model_id == f"full@{previous.sha256[:16]}"


def test_failure_writing_the_entry_removes_the_new_checkpoint(monkeypatch):
    save_finetuned(result(1), "entry")
    before = files()
    real = output.atomic_write

    def failing(path, write):
        if str(path).endswith(".model.json"):
            raise ExportError(f"cannot write {path}: No space left on device.")
        return real(path, write)

    monkeypatch.setattr(output, "atomic_write", failing)
    with pytest.raises(ExportError):
        save_finetuned(result(2), "entry")
    assert files() == before


@pytest.mark.parametrize("name", ["vit_b", "../escape", "", "a b", "x" * 80])
def test_bad_names_are_refused(name):
    with pytest.raises(FinetuneError):
        save_finetuned(result(), name)


def test_finetuned_checkpoint_loaded_as_another_family_or_type_is_refused():
    saved = save_finetuned(result(), "family")
    with pytest.raises(ModelError, match=r"model 'family' is a vit_tiny model, not 'vit_t'"):
        load_model("family", model_type="vit_t")
    with pytest.raises(ModelError, match=r"SAM checkpoint \(vit_tiny\).*not a MobileSAM vit_t"):
        load_model(checkpoint=saved.path, model_type="vit_t")


def test_a_damaged_checkpoint_is_refused_by_its_hash():
    saved = save_finetuned(result(), "damaged")
    data = bytearray(saved.path.read_bytes())
    data[-100] ^= 0xFF
    saved.path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="changed or damaged"):
        load_model("damaged")
