"""``promptseg segment --checkpoint FILE --model-type vit_t|sam2.1_hiera_t`` end to end.

Random-weight checkpoints saved in each family's own format; the labels the command writes
must be the reference predictor's mask for the same prompts, pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from familykit import mobilesam_reference, sam2_reference, save_mobilesam, save_sam2

from napari_promptseg.cli import main
from napari_promptseg.core.storage.export import read_objects_csv

pytestmark = pytest.mark.slow  # one real encoder run per family


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    rgb = np.random.default_rng(3).integers(0, 256, (150, 211, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("img") / "cells.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    return path, rgb


def _segment(tmp_path, image_path, checkpoint, model_type):
    points = tmp_path / "points.csv"
    points.write_text("object,row,col,label\n1,40,50,1\n1,120,180,0\n")
    out = tmp_path / "labels.tif"
    code = main(["segment", str(image_path), "--checkpoint", str(checkpoint),
                 "--model-type", model_type, "--points", str(points), "-o", str(out)])  # fmt: skip
    assert code == 0
    return tifffile.imread(out), read_objects_csv(tmp_path / "labels_objects.csv")


def test_segment_with_a_mobilesam_checkpoint(tmp_path, image):
    pytest.importorskip("mobile_sam")
    from mobile_sam import SamPredictor

    reference = mobilesam_reference(seed=1)
    checkpoint = save_mobilesam(reference, tmp_path / "mobile_sam.pt")
    labels, rows = _segment(tmp_path, image[0], checkpoint, "vit_t")
    predictor = SamPredictor(reference)
    predictor.set_image(image[1])
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[50.0, 40.0], [180.0, 120.0]]),
        point_labels=np.array([1, 0]),
        multimask_output=False,
    )
    assert masks[0].any()
    np.testing.assert_array_equal(labels == 1, masks[0])
    assert float(rows[0]["predicted_iou"]) == pytest.approx(float(scores[0]), abs=1e-6)


def test_segment_with_a_sam2_checkpoint(tmp_path, image):
    pytest.importorskip("sam2", reason="SAM 2.1 needs the [sam2] extra")
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    reference = sam2_reference(seed=1)
    checkpoint = save_sam2(reference, tmp_path / "sam2.1_hiera_tiny.pt")
    labels, rows = _segment(tmp_path, image[0], checkpoint, "sam2.1_hiera_t")
    predictor = SAM2ImagePredictor(reference)
    predictor.set_image(image[1])
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[50.0, 40.0], [180.0, 120.0]]),
        point_labels=np.array([1, 0]),
        multimask_output=False,
    )
    assert masks[0].any()
    np.testing.assert_array_equal(labels == 1, masks[0])
    assert float(rows[0]["predicted_iou"]) == pytest.approx(float(scores[0]), abs=1e-6)


def test_sam2_checkpoint_given_as_vit_b_is_refused(tmp_path, image, capsys):
    pytest.importorskip("sam2", reason="SAM 2.1 needs the [sam2] extra")
    checkpoint = save_sam2(sam2_reference(), tmp_path / "sam2.1_hiera_tiny.pt")
    before = checkpoint.read_bytes()
    points = tmp_path / "points.csv"
    points.write_text("object,row,col\n1,40,50\n")
    out = tmp_path / "labels.tif"
    code = main(["segment", str(image[0]), "--checkpoint", str(checkpoint), "--model-type",
                 "vit_b", "--points", str(points), "-o", str(out)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "does not fit model type 'vit_b'" in err
    assert "SAM 2.1 checkpoint (sam2.1_hiera_t)" in err and "--model-type sam2.1_hiera_t" in err
    assert not out.exists() and checkpoint.read_bytes() == before


@pytest.mark.parametrize("family", ["vit_t", "sam2.1_hiera_t"])
def test_the_command_line_prints_our_messages_only(tmp_path, image, family):
    """No third-party deprecation warning (timm inside MobileSAM, hydra and iopath in sam2)
    reaches the user: a fresh interpreter, Python's default warning filters, the DeprecationWarnings
    of every module shown (-W default), stderr read whole."""
    import subprocess
    import sys

    pytest.importorskip("mobile_sam" if family == "vit_t" else "sam2")
    save = (
        save_mobilesam(mobilesam_reference(), tmp_path / "m.pt")
        if family == "vit_t"
        else (save_sam2(sam2_reference(), tmp_path / "m.pt"))
    )
    points = tmp_path / "points.csv"
    points.write_text("object,row,col\n1,40,50\n")
    command = [sys.executable, "-W", "default", "-m", "napari_promptseg.cli", "segment",
               str(image[0]), "--checkpoint", str(save), "--points", str(points),
               "-o", str(tmp_path / "out.tif")]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_plain_env())
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "Warning" in line or "warn(" in line]
    assert not lines, "\n".join(lines)
    assert "wrote" in run.stdout


def _plain_env():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    env["PYTHONWARNINGS"] = ""
    return env
