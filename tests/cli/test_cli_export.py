"""``promptseg export``: label image (+ objects table) → COCO JSON, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.labels import object_row
from napari_promptseg.core.storage.coco import decode_rle
from napari_promptseg.core.storage.export import write_labels_tif, write_objects_csv


@pytest.fixture
def labels():
    labels = np.zeros((50, 70), dtype=np.uint16)
    labels[5:20, 5:30] = 1
    labels[30:45, 40:66] = 2
    labels[0, 69] = 3
    return labels


@pytest.fixture
def saved(tmp_path, labels):
    """labels.tif with labels_objects.csv beside it, as the plugin and `segment` write them."""
    path = write_labels_tif(tmp_path / "labels.tif", labels)
    rows = [
        object_row(i, labels == i, predicted_iou=iou, stability=0.9, model="tiny")
        for i, iou in ((1, 0.93), (2, 0.61))
    ]
    write_objects_csv(tmp_path / "labels_objects.csv", rows)
    return path


def test_export_finds_the_objects_table_beside_the_labels(tmp_path, saved, labels, capsys):
    out = tmp_path / "coco.json"
    assert main(["export", str(saved), "--coco", str(out)]) == 0
    coco = json.loads(out.read_text())
    assert coco["images"] == [{"id": 1, "file_name": "labels.tif", "height": 50, "width": 70}]
    by_object = {a["object_id"]: a for a in coco["annotations"]}
    assert sorted(by_object) == [1, 2, 3]
    for label_id, ann in by_object.items():
        np.testing.assert_array_equal(decode_rle(ann["segmentation"]), labels == label_id)
    assert by_object[1]["score"] == pytest.approx(0.93)
    assert by_object[2]["score"] == pytest.approx(0.61)
    assert "score" not in by_object[3]
    printed = capsys.readouterr().out
    assert "1 image(s), 3 object(s), 2 with a score" in printed
    assert "labels_objects.csv" in printed


def test_export_with_explicit_table_names_and_a_stack(tmp_path, labels):
    stack = np.stack([labels, np.zeros_like(labels), labels * 2])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    table = write_objects_csv(
        tmp_path / "scores.csv",
        [{"id": 4, "predicted_iou": 0.7, "stability": 0.8, "category": "nucleus"}],
    )
    out = tmp_path / "stack.json"
    code = main(["export", str(tmp_path / "stack.tif"), "--objects", str(table), "--coco", str(out),
                 "--image-name", "raw_stack.tif", "--category", "cell"])  # fmt: skip
    assert code == 0
    coco = json.loads(out.read_text())
    assert [(im["plane"], im["file_name"]) for im in coco["images"]] == [
        ([0], "raw_stack.tif"),
        ([2], "raw_stack.tif"),
    ]
    assert [c["name"] for c in coco["categories"]] == ["cell", "nucleus"]
    four = [a for a in coco["annotations"] if a["object_id"] == 4]
    assert len(four) == 1 and four[0]["image_id"] == 2 and four[0]["category_id"] == 2
    assert four[0]["score"] == pytest.approx(0.7)
    assert len(coco["annotations"]) == 6

    assert main(["export", str(tmp_path / "stack.tif"), "--coco", str(out), "--all-planes"]) == 0
    assert [im["plane"] for im in json.loads(out.read_text())["images"]] == [[0], [1], [2]]


def test_bad_input_names_the_problem_and_keeps_earlier_files(tmp_path, saved, capsys):
    out = tmp_path / "coco.json"
    out.write_text("earlier export")
    cases = [
        (["export", str(tmp_path / "missing.tif"), "--coco", str(out)], "does not exist"),
        (["export", str(saved), "--coco", str(tmp_path / "coco.txt")], "must end in .json"),
        (["export", str(saved), "--coco", str(tmp_path / "no" / "c.json")], "does not exist"),
        (["export", str(saved), "--objects", str(tmp_path / "nope.csv"), "--coco", str(out)],
         "objects table"),
    ]  # fmt: skip
    tifffile.imwrite(tmp_path / "float.tif", np.full((5, 5), 0.5, dtype=np.float32))
    cases.append((["export", str(tmp_path / "float.tif"), "--coco", str(out)], "integer ids"))
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("promptseg: error:") and message in err
    assert out.read_text() == "earlier export"
    assert not (tmp_path / "coco.txt").exists()


def test_export_runs_as_a_command(tmp_path, saved):
    out = tmp_path / "c.json"
    done = subprocess.run(
        [sys.executable, "-m", "napari_promptseg.cli", "export", str(saved), "--coco", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["annotations"]) == 3


def test_export_takes_categories_from_a_class_list_and_the_class_column(tmp_path, labels):
    from napari_promptseg.core.storage.classes import ClassList, save_class_list

    write_labels_tif(tmp_path / "cells.tif", labels)
    write_objects_csv(
        tmp_path / "cells_objects.csv",
        [
            object_row(1, labels == 1, predicted_iou=0.9, stability=0.9, class_name="nucleus"),
            object_row(2, labels == 2, predicted_iou=0.8, stability=0.9, class_name="cell"),
        ],
    )
    classes = save_class_list(tmp_path / "classes.json", ClassList.from_names(["cell", "nucleus"]))
    out = tmp_path / "cells.json"
    code = main(
        ["export", str(tmp_path / "cells.tif"), "--classes", str(classes), "--coco", str(out)]
    )
    assert code == 0
    coco = json.loads(out.read_text())
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "cell"), (2, "nucleus")]
    by_object = {a["object_id"]: a["category_id"] for a in coco["annotations"]}
    assert by_object == {1: 2, 2: 1, 3: 1}  # id 3 has no row: the first category
