"""Object classes: the class list file, the class column, COCO categories from classes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_promptseg.core.labels import OBJECT_COLUMNS, object_row
from napari_promptseg.core.storage.classes import (
    PALETTE,
    ClassList,
    ClassListError,
    ObjectClass,
    load_class_list,
    row_class,
    save_class_list,
)
from napari_promptseg.core.storage.coco import labels_to_coco
from napari_promptseg.core.storage.export import read_objects_csv, write_objects_csv


def test_a_class_list_round_trips_through_its_file(tmp_path):
    classes = ClassList.from_names(["nucleus", "cell", "Nucleus", " ", "debris"])
    classes = classes.recoloured("cell", "#ABCDEF").renamed("debris", "junk")
    assert classes.names == ["nucleus", "cell", "junk"]
    assert [c.colour for c in classes] == [PALETTE[0], "#abcdef", PALETTE[2]]
    path = save_class_list(tmp_path / "classes.json", classes)
    document = json.loads(path.read_text())
    assert document["format"] == "napari-promptseg classes" and document["version"] == 1
    assert document["classes"][1] == {"name": "cell", "colour": "#abcdef"}
    assert load_class_list(path) == classes


def test_lookups_keys_and_editing():
    classes = ClassList.from_names([f"c{i}" for i in range(1, 12)])
    assert classes.category_id("C3") == 3 and classes.category_id("nope") is None
    assert classes.for_key(1).name == "c1" and classes.for_key(9).name == "c9"
    assert classes.for_key(10) is None and classes.for_key(0) is None
    assert classes.without("c2").names[:2] == ["c1", "c3"]
    # the palette's ten colours are used before any repeats
    assert len({c.colour for c in list(classes)[:10]}) == 10
    with pytest.raises(ClassListError, match="listed twice"):
        classes.with_class("C1")
    with pytest.raises(ClassListError, match="no class 'x'"):
        classes.without("x")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"classes": []}, "not a class list"),
        ({"format": "napari-promptseg classes", "version": 2, "classes": []}, "newer"),
        ({"format": "napari-promptseg classes", "version": 1}, '"classes"'),
        (
            {
                "format": "napari-promptseg classes",
                "version": 1,
                "classes": [{"colour": "#000000"}],
            },
            "class 1",
        ),
        (
            {
                "format": "napari-promptseg classes",
                "version": 1,
                "classes": [{"name": "a", "colour": "red"}],
            },
            "#rrggbb",
        ),
        (
            {"format": "napari-promptseg classes", "version": 1, "classes": [{"name": ""}]},
            "non-empty",
        ),
    ],
)
def test_bad_class_files_name_the_problem(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ClassListError, match=message) as caught:
        load_class_list(path)
    assert str(path) in str(caught.value)


def test_unreadable_or_missing_class_files(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ClassListError, match="cannot read"):
        load_class_list(tmp_path / "broken.json")
    with pytest.raises(ClassListError, match="does not exist"):
        load_class_list(tmp_path / "missing.json")
    with pytest.raises(ClassListError, match=r"\.json"):
        save_class_list(tmp_path / "c.txt", ClassList())
    with pytest.raises(ClassListError):
        ObjectClass("a", "#12345")


def test_the_objects_table_has_a_class_column_and_old_tables_still_read(tmp_path):
    labels = np.zeros((10, 10), np.uint16)
    labels[1:4, 1:4] = 1
    row = object_row(1, labels == 1, predicted_iou=0.9, stability=0.8, class_name="nucleus")
    assert OBJECT_COLUMNS[-1] == "class" and row["class"] == "nucleus"
    assert object_row(1, labels == 1, predicted_iou=0.9, stability=0.8)["class"] == ""
    write_objects_csv(tmp_path / "t.csv", [row])
    assert read_objects_csv(tmp_path / "t.csv")[0]["class"] == "nucleus"
    (tmp_path / "old.csv").write_text("id,predicted_iou,stability\n1,0.9,0.8\n")
    old = read_objects_csv(tmp_path / "old.csv")
    assert row_class(old[0]) == "" and row_class({"category": "cell"}) == "cell"
    assert labels_to_coco(labels, old)["annotations"][0]["category_id"] == 1


def test_coco_categories_come_from_the_class_column():
    labels = np.zeros((10, 12), np.uint16)
    labels[1:3, 1:3] = 1
    labels[5:8, 5:8] = 2
    labels[8:10, 0:2] = 3
    rows = [{"id": 1, "class": "cell"}, {"id": 2, "class": "nucleus"}, {"id": 3, "class": "cell"}]
    coco = labels_to_coco(labels, rows)
    # every object has a class: no catch-all "object" category
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "cell"), (2, "nucleus")]
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2, 1]

    rows[2]["class"] = ""  # one without a class gets "object", listed first
    coco = labels_to_coco(labels, rows)
    assert [c["name"] for c in coco["categories"]] == ["object", "cell", "nucleus"]
    assert [a["category_id"] for a in coco["annotations"]] == [2, 3, 1]

    # a class list fixes the ids; objects without a class get its first
    classes = ClassList.from_names(["nucleus", "cell", "debris"])
    coco = labels_to_coco(labels, rows, categories=classes.names)
    assert [c["name"] for c in coco["categories"]] == ["nucleus", "cell", "debris"]
    assert [a["category_id"] for a in coco["annotations"]] == [2, 1, 1]
