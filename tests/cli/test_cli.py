"""The promptseg command line, end to end with a tiny SAM checkpoint file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.storage.export import read_objects_csv


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, rng.integers(0, 4000, (150, 211)).astype(np.uint16))
    return path


def _write(path, text):
    path.write_text(text)
    return path


def test_segment_writes_labels_and_table(tmp_path, checkpoint, image_file, capsys):
    points = _write(
        tmp_path / "points.csv",
        "object,row,col,label\n1,40,50,1\n1,45,60,positive\n2,120,180,1\n2,100,20,0\n",
    )
    boxes = _write(tmp_path / "boxes.csv", "object,row0,col0,row1,col1\n3,10,100,60,200\n")
    out = tmp_path / "labels.tif"
    code = main(["segment", str(image_file), "--checkpoint", str(checkpoint), "--model-type", "vit_tiny",
                 "--points", str(points), "--boxes", str(boxes), "-o", str(out)])  # fmt: skip
    assert code == 0
    labels = tifffile.imread(out)
    assert labels.shape == (150, 211) and labels.dtype == np.uint16
    rows = read_objects_csv(tmp_path / "labels_objects.csv")
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    for row in rows:
        present = labels == int(row["id"])
        assert int(row["area"]) == int(present.sum())
        assert 0 <= float(row["stability"]) <= 1
    assert rows[2]["prompts"] == "box"
    assert rows[0]["prompts"] == "2+"
    assert "object 1: id 1, predicted IoU" in capsys.readouterr().out


def test_later_objects_never_overwrite_earlier_ones(tmp_path, checkpoint, image_file):
    # two objects with the same prompt: the second gets only what the first left free
    points = _write(tmp_path / "p.csv", "object,row,col\na,75,100\nb,75,100\n")
    out = tmp_path / "l.tif"
    assert (
        main(
            [
                "segment",
                str(image_file),
                "--checkpoint",
                str(checkpoint),
                "--points",
                str(points),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    rows = read_objects_csv(tmp_path / "l_objects.csv")
    assert [r["object"] for r in rows] == ["a", "b"]
    assert int(rows[0]["area"]) > 0 and int(rows[1]["area"]) == 0


@pytest.mark.parametrize(
    ("points_text", "extra", "message"),
    [
        ("object,row,col\n1,500,10\n", [], "object '1'.*outside"),
        ("object,col\n1,10\n", [], "missing column"),
        ("object,row,col,label\n1,10,10,maybe\n", [], "label 'maybe'"),
        ("object,row,col,label\n1,10,10,0\n", [], "only negative"),
        ("object,row,col\n1,10,10\n", ["--model", "no_such_model"], "unknown model"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    tmp_path, checkpoint, image_file, capsys, points_text, extra, message
):
    points = _write(tmp_path / "p.csv", points_text)
    out = tmp_path / "out.tif"
    model = extra or ["--checkpoint", str(checkpoint)]
    code = main(["segment", str(image_file), *model, "--points", str(points), "-o", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("promptseg: error:")
    assert "Traceback" not in err
    import re

    assert re.search(message, err, re.IGNORECASE), err
    assert not out.exists()


def test_bad_output_path_is_refused_before_any_work(tmp_path, checkpoint, image_file, capsys):
    points = _write(tmp_path / "p.csv", "object,row,col\n1,10,10\n")
    for out, message in [
        (tmp_path / "missing" / "l.tif", "does not exist"),
        (tmp_path / "l.png", "must end in"),
    ]:
        assert (
            main(
                [
                    "segment",
                    str(image_file),
                    "--checkpoint",
                    str(checkpoint),
                    "--points",
                    str(points),
                    "-o",
                    str(out),
                ]
            )
            == 2
        )
        assert message in capsys.readouterr().err


def test_truncated_checkpoint_is_named(tmp_path, checkpoint, image_file, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(checkpoint.read_bytes()[:5000])
    points = _write(tmp_path / "p.csv", "object,row,col\n1,10,10\n")
    code = main(["segment", str(image_file), "--checkpoint", str(broken), "--model-type", "vit_b",
                 "--points", str(points), "-o", str(tmp_path / "l.tif")])  # fmt: skip
    assert code == 2
    assert "truncated" in capsys.readouterr().err


def test_models_command_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("vit_b", "vit_l", "vit_h", "vit_b_lm"):
        assert name in out
    assert "cache folder" in out


def test_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "napari_promptseg.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "segment" in done.stdout


def test_segment_stack_with_per_plane_prompts(tmp_path, checkpoint, capsys):
    from napari_promptseg.core import Prompts, PromptSegmenter
    from napari_promptseg.core.workflows.stack import planes_of
    from napari_promptseg.testing import build_tiny_sam

    rng = np.random.default_rng(1)
    stack = rng.integers(0, 3000, (4, 60, 71)).astype(np.uint16)
    image = tmp_path / "stack.tif"
    tifffile.imwrite(image, stack, photometric="minisblack")
    points = _write(
        tmp_path / "p.csv", "object,z,row,col\ncell,0,30,30\ncell,2,31,29\nother,1,10,60\n"
    )
    out = tmp_path / "stack_labels.tif"
    assert main(["segment", str(image), "--checkpoint", str(checkpoint), "--model-type", "vit_tiny",
                 "--points", str(points), "-o", str(out)]) == 0  # fmt: skip
    labels = tifffile.imread(out)
    assert labels.shape == (4, 60, 71)
    rows = read_objects_csv(tmp_path / "stack_labels_objects.csv")
    assert [(r["object"], r["id"], r["slice"]) for r in rows] == [
        ("cell", "1", "0"),
        ("cell", "1", "2"),
        ("other", "2", "1"),
    ]
    assert not labels[3].any()
    # each plane's mask is what the engine gives on that plane with the stack's contrast
    engine = PromptSegmenter(build_tiny_sam(), "x")
    planes = planes_of(stack)
    expected = engine.segment(planes.rgb((2,)), Prompts.from_points([[31, 29]]))
    np.testing.assert_array_equal(labels[2] == 1, expected.mask)
    assert int(rows[1]["area"]) == int((labels[2] == 1).sum())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("object,row,col\n1,10,10\n", "missing column.*z"),
        ("object,z,row,col\n1,9,10,10\n", "planes \\(4,\\)"),
        ("object,z,row,col\n1,1.5,10,10\n", "not a plane index"),
    ],
)
def test_stack_prompt_errors(tmp_path, checkpoint, capsys, text, message):
    import re

    image = tmp_path / "stack.tif"
    tifffile.imwrite(image, np.zeros((4, 20, 30), np.uint8), photometric="minisblack")
    points = _write(tmp_path / "p.csv", text)
    out = tmp_path / "l.tif"
    assert (
        main(
            [
                "segment",
                str(image),
                "--checkpoint",
                str(checkpoint),
                "--points",
                str(points),
                "-o",
                str(out),
            ]
        )
        == 2
    )
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()
