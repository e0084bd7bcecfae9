"""COCO export: compressed RLE (checked against pycocotools), annotations from labels and
objects rows, nD planes, atomic writes, and the npe2 writer."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from napari_promptseg.core.errors import ExportError
from napari_promptseg.core.labels import object_row
from napari_promptseg.core.storage.coco import (
    compress_counts,
    decode_rle,
    decompress_counts,
    encode_rle,
    labels_to_coco,
    write_coco_json,
)
from napari_promptseg.core.storage.export import read_objects_csv, write_objects_csv

# pycocotools' own decoder trips numpy 2's copy-keyword deprecation; not our code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def edge_case_masks():
    rng = np.random.default_rng(7)
    for shape in [(1, 1), (1, 7), (7, 1), (5, 3), (33, 64), (101, 57)]:
        yield f"empty{shape}", np.zeros(shape, dtype=bool)
        yield f"full{shape}", np.ones(shape, dtype=bool)
        for density in (0.02, 0.5, 0.97):
            yield f"random{density}{shape}", rng.random(shape) < density
        for row, col in [(0, 0), (shape[0] - 1, shape[1] - 1), (shape[0] // 2, shape[1] // 2)]:
            single = np.zeros(shape, dtype=bool)
            single[row, col] = True
            yield f"pixel({row},{col}){shape}", single
    blobs = np.zeros((300, 211), dtype=bool)  # long runs: large, negative count differences
    blobs[20:280, 5:9] = blobs[150, :] = blobs[:, 200] = True
    yield "long runs", blobs


CASES = list(edge_case_masks())


@pytest.mark.parametrize("mask", [m for _, m in CASES], ids=[n for n, _ in CASES])
def test_rle_matches_pycocotools_both_ways(mask):
    coco_mask = pytest.importorskip("pycocotools.mask")
    ours = encode_rle(mask)
    theirs = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["size"] == list(mask.shape)
    assert ours["counts"] == theirs["counts"].decode("ascii")  # byte for byte
    np.testing.assert_array_equal(coco_mask.decode(ours).astype(bool), mask)
    np.testing.assert_array_equal(decode_rle(ours), mask)
    np.testing.assert_array_equal(decode_rle(theirs), mask)
    assert coco_mask.area(ours) == mask.sum()


def test_rle_by_hand_without_pycocotools():
    # column-major runs: [[0, 1], [1, 1]] reads 0, 1, 1, 1 → one zero, three ones
    assert encode_rle(np.array([[0, 1], [1, 1]], bool)) == {"size": [2, 2], "counts": "13"}
    assert encode_rle(np.zeros((3, 2), bool))["counts"] == "6"
    assert encode_rle(np.ones((2, 2), bool))["counts"] == "04"
    mask = np.array([[1, 0, 0], [1, 0, 1]], bool)  # column-major: 1 1 0 0 0 1
    assert decompress_counts(encode_rle(mask)["counts"]) == [0, 2, 3, 1]
    # counts of any size and sign of difference survive the 5-bit string form
    counts = [0, 5, 100000, 1, 31, 32, 17, 16, 3000000, 2]
    assert decompress_counts(compress_counts(counts)) == counts
    assert decode_rle({"size": [2, 3], "counts": [0, 2, 3, 1]}).tolist() == mask.tolist()
    with pytest.raises(ExportError, match="do not add up"):
        decode_rle({"size": [2, 3], "counts": [0, 2, 3]})


@pytest.fixture
def labels_2d():
    labels = np.zeros((40, 60), dtype=np.uint16)
    labels[5:15, 10:30] = 1
    labels[20:38, 40:41] = 2  # a one-pixel-wide object
    labels[39, 59] = 7  # a single pixel in the corner
    labels[12:18, 25:35] = 3  # overlaps where 1 was: 1 keeps only what is left
    return labels


def rows_for(labels, scores):
    return [
        object_row(i, labels == i, predicted_iou=iou, stability=stab, model="tiny")
        for i, (iou, stab) in scores.items()
    ]


def test_two_d_labels_become_one_image_with_one_annotation_per_object(labels_2d):
    rows = rows_for(labels_2d, {1: (0.91, 0.97), 2: (0.5, 0.8), 3: (0.75, 0.9), 9: (0.1, 0.1)})
    coco = labels_to_coco(labels_2d, rows, image_name="cells.tif")
    assert coco["images"] == [{"id": 1, "file_name": "cells.tif", "height": 40, "width": 60}]
    assert coco["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    by_object = {a["object_id"]: a for a in coco["annotations"]}
    assert sorted(by_object) == [1, 2, 3, 7]  # row 9 has no pixels: no annotation
    assert len({a["id"] for a in coco["annotations"]}) == 4
    for label_id, ann in by_object.items():
        mask = labels_2d == label_id
        np.testing.assert_array_equal(decode_rle(ann["segmentation"]), mask)
        assert ann["area"] == mask.sum() and ann["image_id"] == 1 and ann["iscrowd"] == 0
        rows_, cols = np.nonzero(mask)
        x, y = cols.min(), rows_.min()
        assert ann["bbox"] == [x, y, cols.max() - x + 1, rows_.max() - y + 1]
    assert by_object[1]["score"] == pytest.approx(0.91)
    assert by_object[1]["stability"] == pytest.approx(0.97)
    assert by_object[2]["bbox"] == [40, 20, 1, 18]
    assert by_object[7]["bbox"] == [59, 39, 1, 1]
    assert "score" not in by_object[7] and "stability" not in by_object[7]  # no row for it
    json.dumps(coco)  # plain JSON types only


def test_bbox_and_area_agree_with_pycocotools(labels_2d):
    coco_mask = pytest.importorskip("pycocotools.mask")
    for ann in labels_to_coco(labels_2d)["annotations"]:
        np.testing.assert_array_equal(coco_mask.toBbox(ann["segmentation"]), ann["bbox"])
        assert coco_mask.area(ann["segmentation"]) == ann["area"]


def test_nd_labels_give_one_image_per_plane_with_objects():
    labels = np.zeros((3, 20, 30), dtype=np.uint32)
    labels[0, 2:8, 3:9] = 1
    labels[2, 10:15, 10:25] = 2
    labels[2, 1:4, 1:4] = 1  # the same id on another plane: one annotation per plane
    rows = rows_for(labels, {1: (0.8, 0.9), 2: (0.6, 0.7)})
    rows[0]["slice"] = "0"
    coco = labels_to_coco(labels, rows, image_name="stack.tif")
    assert [(im["id"], im["plane"]) for im in coco["images"]] == [(1, [0]), (2, [2])]
    pairs = [(a["image_id"], a["object_id"]) for a in coco["annotations"]]
    assert pairs == [(1, 1), (2, 1), (2, 2)]
    for ann in coco["annotations"]:
        plane = coco["images"][ann["image_id"] - 1]["plane"][0]
        np.testing.assert_array_equal(
            decode_rle(ann["segmentation"]), labels[plane] == ann["object_id"]
        )
        assert ann["score"] == pytest.approx({1: 0.8, 2: 0.6}[ann["object_id"]])
    every = labels_to_coco(labels, all_planes=True)
    assert [im["plane"] for im in every["images"]] == [[0], [1], [2]]
    assert {a["image_id"] for a in every["annotations"]} == {1, 3}
    four_d = np.zeros((2, 2, 5, 6), dtype=np.uint16)
    four_d[1, 0, 1:3, 2:4] = 5
    coco4 = labels_to_coco(four_d)
    assert [im["plane"] for im in coco4["images"]] == [[1, 0]]
    assert coco4["annotations"][0]["area"] == 4


def test_scores_from_csv_rows_and_categories(tmp_path, labels_2d):
    rows = rows_for(labels_2d, {1: (0.91, 0.97), 2: (0.5, 0.8), 3: (0.75, 0.9)})
    rows[1]["category"] = "nucleus"
    rows[2]["category"] = "debris"
    rows[2]["predicted_iou"] = float("nan")  # written as "": no score
    table = write_objects_csv(tmp_path / "objects.csv", rows)
    coco = labels_to_coco(labels_2d, read_objects_csv(table), categories=["cell", "nucleus"])
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [
        (1, "cell"),
        (2, "nucleus"),
        (3, "debris"),
    ]
    by_object = {a["object_id"]: a for a in coco["annotations"]}
    assert {i: a["category_id"] for i, a in by_object.items()} == {1: 1, 2: 2, 3: 3, 7: 1}
    assert isinstance(by_object[2]["score"], float) and by_object[2]["score"] == 0.5
    assert "score" not in by_object[3] and by_object[3]["stability"] == 0.9


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros(10, dtype=np.uint8), r"\(H, W\)"),
        (np.full((4, 4), 1.5), "integer ids"),
        (np.full((4, 4), -1, dtype=np.int16), "negative"),
    ],
)
def test_bad_labels_are_refused_by_name(labels, match):
    with pytest.raises(ExportError, match=match):
        labels_to_coco(labels)


def test_write_is_atomic_and_keeps_the_previous_file(tmp_path, labels_2d, monkeypatch):
    path = tmp_path / "coco.json"
    write_coco_json(path, labels_2d, image_name="a.tif")
    before = path.read_bytes()
    assert json.loads(before)["images"][0]["file_name"] == "a.tif"
    with pytest.raises(ExportError, match="integer ids"):
        write_coco_json(path, labels_2d.astype(float))
    with pytest.raises(ExportError, match=r"\.json"):
        write_coco_json(tmp_path / "coco.txt", labels_2d)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ExportError, match="No space left"):
        write_coco_json(path, labels_2d, image_name="b.tif")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco.json"]  # no temp file left


def test_pycocotools_coco_api_reads_the_file(tmp_path, labels_2d):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    path = write_coco_json(tmp_path / "coco.json", labels_2d, rows_for(labels_2d, {1: (0.9, 1)}))
    coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) == 4
    for ann in anns:
        np.testing.assert_array_equal(coco.annToMask(ann), labels_2d == ann["object_id"])


def test_npe2_writer_takes_rows_from_the_layer_features(tmp_path, labels_2d):
    from napari_promptseg._writer_coco import write_coco

    rows = rows_for(labels_2d, {1: (0.91, 0.97), 3: (0.75, 0.9)})
    features = pd.DataFrame(rows)
    features.insert(0, "index", features["id"])  # as the plugin stores them on the layer
    meta = {"name": "objects", "features": features, "metadata": {"image_file": "cells.tif"}}
    written = write_coco(str(tmp_path / "out.json"), labels_2d, meta)
    assert written == [str(tmp_path / "out.json")]
    coco = json.loads((tmp_path / "out.json").read_text())
    assert coco["images"][0]["file_name"] == "cells.tif"
    scores = {a["object_id"]: a.get("score") for a in coco["annotations"]}
    assert scores == {1: pytest.approx(0.91), 2: None, 3: pytest.approx(0.75), 7: None}
    # without features or image file: no scores, the layer name as file_name
    write_coco(str(tmp_path / "plain.json"), [labels_2d, labels_2d[::2, ::2]], {"name": "L"})
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert plain["images"][0]["file_name"] == "L" and plain["images"][0]["height"] == 40
    assert not any("score" in a for a in plain["annotations"])
