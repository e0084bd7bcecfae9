"""Model families: recognising weights, refusing the wrong type or family, the [sam2] extra.

Every refusal is one message naming both sides (what the file is, what it was given as), and
leaves the file as it was.
"""

from __future__ import annotations

import pytest
import torch
from familykit import mobilesam_reference, sam2_reference, save_mobilesam, save_sam2

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.errors import ModelError
from napari_promptseg.core.models import MODELS, describe_weights, families, load_model, speed


@pytest.fixture(scope="module")
def vit_t_file(tmp_path_factory):
    pytest.importorskip("mobile_sam")
    return save_mobilesam(mobilesam_reference(), tmp_path_factory.mktemp("t") / "mobile.pt")


@pytest.fixture(scope="module")
def sam2_file(tmp_path_factory):
    pytest.importorskip("sam2", reason="SAM 2.1 needs the [sam2] extra")
    return save_sam2(sam2_reference(), tmp_path_factory.mktemp("s2") / "sam2.1_hiera_tiny.pt")


def _state(path):
    from napari_promptseg.core.models import load_state_dict

    return load_state_dict(path)


@pytest.mark.slow  # builds and saves random-weight models
def test_weights_are_recognised_by_family(vit_t_file, sam2_file, checkpoint):
    assert describe_weights(_state(vit_t_file)).model_type == "vit_t"
    assert describe_weights(_state(vit_t_file)).family == "mobilesam"
    info = describe_weights(_state(sam2_file))  # {"model": state_dict}, the official layout
    assert (info.family, info.model_type) == ("sam2.1", "sam2.1_hiera_t")
    assert describe_weights(_state(checkpoint)).family == "sam"


@pytest.mark.slow  # builds and saves random-weight models
def test_sam2_0_checkpoint_is_named_as_such(sam2_file, tmp_path):
    state = {k: v for k, v in _state(sam2_file).items() if k not in families._SAM2_1_ONLY_KEYS}
    path = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": state}, path)
    with pytest.raises(ModelError, match=r"version 2\.0, not 2\.1"):
        load_model(checkpoint=path, model_type="sam2.1_hiera_t", device="cpu")
    with pytest.raises(ModelError, match="cannot tell which SAM architecture"):
        load_model(checkpoint=path, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("given", "fixture", "expected"),
    [
        ("vit_b", "sam2_file", "a SAM 2.1 checkpoint (sam2.1_hiera_t), not a SAM vit_b one"),
        ("vit_t", "sam2_file", "a SAM 2.1 checkpoint (sam2.1_hiera_t), not a MobileSAM vit_t"),
        ("sam2.1_hiera_s", "sam2_file", "sam2.1_hiera_t), not a SAM 2.1 sam2.1_hiera_s one"),
        ("vit_b", "vit_t_file", "a MobileSAM checkpoint (vit_t), not a SAM vit_b one"),
        ("sam2.1_hiera_t", "vit_t_file", "MobileSAM checkpoint (vit_t), not a SAM 2.1"),
        ("vit_t", "checkpoint", "a SAM checkpoint (vit_tiny), not a MobileSAM vit_t one"),
    ],
)
def test_wrong_type_names_both_sides(request, given, fixture, expected):
    path = request.getfixturevalue(fixture)
    before = path.read_bytes()
    with pytest.raises(ModelError) as info:
        load_model(checkpoint=path, model_type=given, device="cpu")
    message = str(info.value)
    assert f"does not fit model type '{given}'" in message and expected in message
    assert "\n" not in message
    assert path.read_bytes() == before  # nothing on disk changed


@pytest.mark.slow  # builds and saves random-weight models
def test_missing_sam2_extra_says_how_to_install(monkeypatch, sam2_file):
    monkeypatch.setattr(families, "is_installed", lambda family: family.name != "sam2.1")
    with pytest.raises(ModelError) as info:
        load_model(checkpoint=sam2_file, device="cpu")
    assert "SAM 2.1 model" in str(info.value)
    assert "pip install 'napari-promptseg[sam2]'" in str(info.value)
    # a registry name fails before any download is tried
    with pytest.raises(ModelError, match=r"napari-promptseg\[sam2\]"):
        load_model("sam2.1_hiera_t", device="cpu", offline=True)


def test_registry_entries_of_the_new_families():
    assert MODELS["vit_t"].family == "mobilesam" and MODELS["vit_t"].size_bytes == 40_728_226
    # micro-sam's own URLs and xxh128 hashes (micro_sam/util.py, models())
    assert MODELS["vit_t_lm"].hash == "xxh128:72ec5074774761a6e5c05a08942f981e"
    assert MODELS["vit_t_lm"].url.endswith("/faithful-chicken/1.1/files/vit_t.pt")
    assert MODELS["vit_t_em_organelles"].hash == "xxh128:253474720c497cce605e57c9b1d18fd9"
    assert MODELS["vit_t_em_organelles"].url.endswith("/greedy-whale/1/files/vit_t.pt")
    for size in ("t", "s", "b+", "l"):
        spec = MODELS[f"sam2.1_hiera_{size}"]
        assert spec.family == "sam2.1" and spec.model_type == spec.name
        assert spec.url.startswith("https://dl.fbaipublicfiles.com/segment_anything_2/092824/")
        assert spec.hash.startswith("sha256:") and spec.size_bytes


def test_speed_hint_is_measured_by_the_engine(tiny_sam, rgb_300x517):
    assert speed.speed_hint("speed-test-model") == "not measured yet"
    segmenter = PromptSegmenter(tiny_sam, "tiny-speed", name="speed-test-model")
    segmenter.embed(rgb_300x517)
    segmenter.embed(rgb_300x517)  # cached: not a measurement
    seconds, device = speed.embed_seconds("speed-test-model")
    assert device == "cpu" and 0 < seconds < 60
    assert speed.speed_hint("speed-test-model").startswith("≈ ")
    assert speed.speed_hint("speed-test-model").endswith("s / image here (cpu)")
    data = speed._read()
    assert len(data["speed-test-model@cpu"]["seconds"]) == 1


def test_unreadable_speed_file_is_ignored(tmp_path, monkeypatch):
    speed.speed_file().parent.mkdir(parents=True, exist_ok=True)
    speed.speed_file().write_text("{not json")
    assert speed.speed_hint("vit_b") == "not measured yet"
    speed.record_embed_seconds("vit_b", "cuda:0", 0.25)
    assert speed.speed_hint("vit_b") == "≈ 0.25 s / image here (cuda)"


def test_model_menu_groups_families_with_size_and_speed(monkeypatch):
    from napari_promptseg.core.models.menu import model_menu

    speed.record_embed_seconds("vit_t", "cpu", 1.234)
    monkeypatch.setattr(families, "is_installed", lambda family: family.name != "sam2.1")
    menu = dict(model_menu())
    assert list(menu) == [
        "Demo (offline)", "SAM", "MobileSAM", "SAM 2.1", "micro-sam microscopy models"
    ]  # fmt: skip
    (demo,) = menu["Demo (offline)"]
    assert demo.name == "demo" and demo.available and "available offline" in demo.tooltip
    (vit_t,) = menu["MobileSAM"]
    assert vit_t.text == "vit_t  ·  39 MiB  ·  ≈ 1.2 s / image here (cpu)"
    assert {e.name for e in menu["micro-sam microscopy models"]} >= {"vit_t_lm", "vit_b_lm"}
    hiera_t = menu["SAM 2.1"][0]
    assert hiera_t.name == "sam2.1_hiera_t" and not hiera_t.available
    assert hiera_t.text.endswith("needs the [sam2] extra")
    assert "napari-promptseg[sam2]" in hiera_t.tooltip
