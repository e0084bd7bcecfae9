"""``promptseg evaluate``: the report files, the same numbers as the function API, bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.workflows.evaluation import EvaluationSettings, evaluate
from napari_promptseg.core.workflows.evaluation.report import object_rows, summary_rows


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(5)
    image = (rng.random((40, 56)) * 50).astype(np.uint8)
    labels = np.zeros((40, 56), np.uint16)
    labels[3:15, 4:20] = 3
    labels[20:36, 25:50] = 8
    image[labels > 0] += 150
    tifffile.imwrite(tmp_path / "cells.tif", image)
    tifffile.imwrite(tmp_path / "truth.tif", labels)
    return tmp_path, image, labels


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def as_text(rows, drop=("seconds", "seconds_per_object", "embedding_seconds")):
    return [{k: str(v) for k, v in row.items() if k not in drop} for row in rows]


def test_cli_writes_the_report_with_the_numbers_of_the_function_api(files, checkpoint, capsys):
    folder, image, labels = files
    (folder / "truth_objects.csv").write_text("id,class\n3,round\n8,long\n")
    code = main([
        "evaluate", str(folder / "cells.tif"), str(folder / "truth.tif"),
        "--checkpoint", str(checkpoint), "--model-type", "vit_tiny", "--clicks", "3",
        "--no-store", "-o", str(folder / "report.csv"),
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "round" in out  # the summary table, per class

    segmenter = PromptSegmenter.load(checkpoint=checkpoint, model_type="vit_tiny")
    report = evaluate(
        [segmenter], image, labels, EvaluationSettings(clicks=3), classes={3: "round", 8: "long"}
    )
    assert as_text(read_csv(folder / "report.csv")) == as_text(object_rows(report))
    assert as_text(read_csv(folder / "report_summary.csv")) == as_text(summary_rows(report))
    assert (folder / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_models_side_by_side_in_command_line_order(files, checkpoint, tmp_path):
    folder, _, _ = files
    other = tmp_path / "other"
    other.mkdir()
    second = other / "tiny-b.pth"
    second.write_bytes(checkpoint.read_bytes())
    code = main([
        "evaluate", str(folder / "cells.tif"), str(folder / "truth.tif"),
        "--checkpoint", str(second), "--checkpoint", str(checkpoint), "--model-type", "vit_tiny",
        "--clicks", "2", "--start", "box", "--no-mask-input", "--no-store",
        "-o", str(folder / "two.csv"),
    ])  # fmt: skip
    assert code == 0
    summary = read_csv(folder / "two_summary.csv")
    assert [row["model"] for row in summary] == ["tiny-b.pth", "tiny.pth"]
    assert summary[0]["miou_1"] == summary[1]["miou_1"]  # the same weights
    objects = read_csv(folder / "two.csv")
    assert {row["start"] for row in objects} == {"box"} and {
        row["mask_input"] for row in objects
    } == {"0"}


def write(path, array):
    tifffile.imwrite(path, array)
    return str(path)


@pytest.mark.parametrize(
    ("make_truth", "extra", "message"),
    [
        (lambda f: write(f / "g.tif", np.zeros((40, 55), np.uint16)), [], "shape (40, 55)"),
        (lambda f: write(f / "g.tif", np.zeros((40, 56), np.uint16)), [], "holds no object"),
        (lambda f: write(f / "g.tif", np.ones((40, 56), np.float32)), [], "integer ids"),
        (
            lambda f: write(f / "g.tif", np.full((40, 56), 4, np.uint8)),
            [],
            "covers the whole image",
        ),
        (lambda f: str(f / "missing.tif"), [], "does not exist"),
        (lambda f: str(f / "truth.tif"), ["--clicks", "0"], "clicks must be 1 to"),
        (lambda f: str(f / "truth.tif"), ["--model-type", "vit_b"], "describes a --checkpoint"),
        (lambda f: str(f / "truth.tif"), ["--checkpoint", "nope.pth"], "nope.pth does not exist"),
        (lambda f: str(f / "truth.tif"), ["--classes", "nope.csv"], "nope.csv does not exist"),
        (lambda f: str(f / "truth.tif"), ["--model", "vit_zz"], "vit_zz"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    files, make_truth, extra, message, capsys
):
    folder, _, _ = files
    truth = make_truth(folder)
    code = main(["evaluate", str(folder / "cells.tif"), truth, "--model", "vit_b", *extra,
                 "--offline", "--no-store", "-o", str(folder / "r.csv")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert not (folder / "r.csv").exists()


def test_a_report_path_that_is_not_csv_is_refused(files, capsys):
    folder, _, _ = files
    code = main(["evaluate", str(folder / "cells.tif"), str(folder / "truth.tif"),
                 "-o", str(folder / "r.png")])  # fmt: skip
    assert code == 2 and "must end in .csv" in capsys.readouterr().err


def test_a_class_table_without_the_class_column_is_refused(files, capsys):
    folder, _, _ = files
    (folder / "t.csv").write_text("id,area\n3,10\n")
    code = main(["evaluate", str(folder / "cells.tif"), str(folder / "truth.tif"),
                 "--classes", str(folder / "t.csv"), "-o", str(folder / "r.csv")])  # fmt: skip
    assert code == 2 and "needs the columns id and class" in capsys.readouterr().err
