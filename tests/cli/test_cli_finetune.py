"""``promptseg finetune``: folders in, a model of "my models" out that segments; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.models.my_models import read_my_models
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells


@pytest.fixture
def pairs(tmp_path):
    """Six synthetic nuclei images with their labels, in images/ and masks/."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for index in range(6):
        sample = synthetic_cells(100 + index, (96, 128), kind="nuclei")
        tifffile.imwrite(images / f"img_{index}.tif", sample.image)
        tifffile.imwrite(masks / f"img_{index}.tif", sample.labels.astype(np.uint16))
    return images, masks


@pytest.mark.slow
def test_finetune_from_folders_then_segment_with_the_new_model(pairs, checkpoint, tmp_path, capsys):
    images, masks = pairs
    code = main([
        "finetune", str(images), "--labels", str(masks), "--checkpoint", str(checkpoint),
        "--name", "mine", "--steps", "4", "--eval-every", "2", "--objects-per-step", "4",
        "--corrections", "1", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "saved model 'mine'" in out and "validation mIoU@1" in out
    (model,) = read_my_models()
    assert model.name == "mine" and model.model_type == "vit_tiny"
    assert model.metadata["data"]["planes"] == 6 and model.metadata["steps"] == 4

    main(["models"])
    listed = capsys.readouterr().out
    assert any(line.startswith("mine ") for line in listed.splitlines())

    points = tmp_path / "points.csv"
    points.write_text("object,row,col\na,40,60\n")
    output = tmp_path / "labels.tif"
    code = main([
        "segment", str(images / "img_0.tif"), "--model", "mine", "--points", str(points),
        "-o", str(output), "--device", "cpu",
    ])  # fmt: skip
    assert code == 0 and tifffile.imread(output).shape == (96, 128)


def run_refused(args, capsys) -> str:
    code = main(["finetune", *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_too_few_objects_names_the_minimum(tmp_path, checkpoint, capsys):
    labels = np.zeros((64, 64), np.uint16)
    labels[10:30, 10:30] = 1
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 64), np.uint8))
    tifffile.imwrite(tmp_path / "a_labels.tif", labels)
    line = run_refused([str(tmp_path), "--checkpoint", str(checkpoint), "--name", "x"], capsys)
    assert "at least 10 annotated objects" in line and "found 1 in 1 plane" in line
    assert not read_my_models()


def test_labels_of_another_shape_are_refused(pairs, checkpoint, capsys):
    images, masks = pairs
    tifffile.imwrite(masks / "img_0.tif", np.zeros((50, 50), np.uint16))
    line = run_refused(
        [str(images), "--labels", str(masks), "--checkpoint", str(checkpoint), "--name", "x"],
        capsys,
    )
    assert "img_0.tif: the labels are 50 x 50, the image 96 x 128" in line


@pytest.mark.parametrize("name", ["vit_b", "../up"])
def test_bad_model_name_is_refused_before_any_work(pairs, capsys, name):
    images, masks = pairs
    line = run_refused([str(images), "--labels", str(masks), "--name", name], capsys)
    assert name in line


def test_missing_folder(tmp_path, capsys):
    line = run_refused([str(tmp_path / "nope"), "--name", "x"], capsys)
    assert "does not exist" in line
