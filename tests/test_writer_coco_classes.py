"""The COCO writer numbers categories in the order of the class list kept with the layer."""

from __future__ import annotations

import json

import numpy as np

from napari_promptseg._writer_coco import write_coco
from napari_promptseg.core.storage.classes import ClassList


def test_categories_follow_the_layers_class_list(tmp_path):
    labels = np.zeros((8, 8), np.uint16)
    labels[1:3, 1:3] = 1
    labels[5:7, 5:7] = 2
    features = {"index": [1, 2], "id": [1, 2], "class": ["cell", "nucleus"]}
    classes = ClassList.from_names(["nucleus", "cell", "debris"])
    meta = {"features": features, "metadata": {"promptseg_classes": classes.to_dict()}}
    (path,) = write_coco(str(tmp_path / "objects.json"), labels, meta)
    document = json.loads((tmp_path / "objects.json").read_text())
    assert path.endswith("objects.json")
    names = {c["id"]: c["name"] for c in document["categories"]}
    assert names == {1: "nucleus", 2: "cell", 3: "debris"}
    by_area = {a["bbox"][0]: a["category_id"] for a in document["annotations"]}
    assert by_area == {1: 2, 5: 1}  # object 1 is a cell (2), object 2 a nucleus (1)

    meta["metadata"] = {"promptseg_classes": {"format": "something else"}}
    write_coco(str(tmp_path / "plain.json"), labels, meta)
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert [c["name"] for c in plain["categories"]] == ["cell", "nucleus"]  # from the rows
