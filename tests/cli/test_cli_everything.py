"""``promptseg everything`` end to end with a tiny SAM checkpoint file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core import PromptSegmenter, to_rgb_uint8
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.workflows.distributed.recipe import ModelRecipe
from napari_promptseg.core.workflows.everything.generator import (
    EverythingParams,
    segment_everything,
)
from napari_promptseg.testing import build_tiny_sam

FAST = ["--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
        "--box-nms-thresh", "1.0"]  # fmt: skip


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, rng.integers(0, 4000, (90, 131)).astype(np.uint16))
    return path


def _run(image, checkpoint, out, *extra):
    return main(["everything", str(image), "--checkpoint", str(checkpoint), "--model-type",
                 "vit_tiny", "-o", str(out), *extra])  # fmt: skip


def test_writes_labels_and_table_equal_to_the_engine(tmp_path, checkpoint, image_file, capsys):
    out = tmp_path / "labels.tif"
    assert _run(image_file, checkpoint, out, *FAST, "--contrast-limits", "0", "3000") == 0
    labels = tifffile.imread(out)
    rows = read_objects_csv(tmp_path / "labels_objects.csv")
    assert labels.shape == (90, 131) and labels.dtype == np.uint16
    assert len(rows) > 0 and [int(r["id"]) for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert int(row["area"]) == (labels == int(row["id"])).sum() > 0
        assert row["prompts"] == "everything"
        assert row["model"]
    # the same as the engine on the same pixels, model and parameters
    rgb = to_rgb_uint8(tifffile.imread(image_file), contrast_limits=(0, 3000))
    params = EverythingParams(
        points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0
    )
    expected = segment_everything(PromptSegmenter(build_tiny_sam(), "t"), rgb, params)
    np.testing.assert_array_equal(labels, expected.labels)
    assert [float(r["predicted_iou"]) for r in rows] == [r["predicted_iou"] for r in expected.rows]
    assert f"({len(rows)} objects)" in capsys.readouterr().out


def _no_model(*_args, **_kwargs):
    raise AssertionError("the model was loaded although the input was bad")


@pytest.mark.parametrize(
    ("extra", "output", "message"),
    [
        ([], "missing/l.tif", "does not exist"),
        ([], "l.png", "must end in"),
        (["--points-per-side", "0"], "l.tif", "points_per_side must be ≥ 1"),
        (["--pred-iou-thresh", "1.5"], "l.tif", r"pred_iou_thresh must be in \[0, 1\]"),
        (["--crop-overlap-ratio", "1"], "l.tif", "crop_overlap_ratio"),
    ],
)
def test_bad_input_is_refused_before_the_model_loads(
    tmp_path, checkpoint, image_file, capsys, monkeypatch, extra, output, message
):
    monkeypatch.setattr(ModelRecipe, "build", _no_model)
    out = tmp_path / output
    assert _run(image_file, checkpoint, out, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("promptseg: error:") and "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: tifffile.imwrite(p, np.zeros((20,), np.uint8)), "2D"),
    ],
)
def test_bad_image_is_refused_and_an_earlier_result_kept(
    tmp_path, checkpoint, capsys, monkeypatch, make, message
):
    monkeypatch.setattr(ModelRecipe, "build", _no_model)
    image = tmp_path / "in.tif"
    make(image)
    out = tmp_path / "labels.tif"
    out.write_bytes(b"earlier result")
    assert _run(image, checkpoint, out, *FAST) == 2
    assert message in capsys.readouterr().err
    assert out.read_bytes() == b"earlier result"


def test_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "everything" in capsys.readouterr().out
