"""``promptseg classify``: train from examples, save, apply to an image, a stack, a folder
(here and on the Dask cluster); bad input is named and writes nothing."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.workflows.classify.classifier import load_classifier
from napari_promptseg.core.workflows.classify.synthetic import two_class_cells

MODEL = ["--model-type", "vit_tiny"]


def cli(*args):
    return main([str(a) for a in args])


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def cells_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    cells = two_class_cells(per_class=10, seed=3)
    tifffile.imwrite(folder / "cells.tif", cells.image)
    tifffile.imwrite(folder / "cells_labels.tif", cells.labels)
    examples = folder / "examples.csv"
    chosen = {
        name: [i for i, c in cells.classes.items() if c == name][:5] for name in ("round", "long")
    }
    lines = ["id,class,note"] + [f"{i},{name}," for name, ids in chosen.items() for i in ids]
    lines.append(f"{max(cells.classes)},,not labelled")  # an empty class is skipped
    examples.write_text("\n".join(lines) + "\n")
    return folder, cells


def test_train_save_and_apply_give_every_object_a_class(cells_files, checkpoint, tmp_path, capsys):
    folder, cells = cells_files
    common = [folder / "cells.tif", folder / "cells_labels.tif", "--checkpoint", checkpoint, *MODEL]
    saved = tmp_path / "cells.npz"
    code = cli(
        "classify", *common, "--train", folder / "examples.csv", "--save", saved,
        "--trees", "50", "-o", tmp_path / "trained.csv",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    trained = rows(tmp_path / "trained.csv")
    assert list(trained[0]) == ["id", "class", "probability"]
    assert [int(r["id"]) for r in trained] == sorted(cells.classes)
    assert {r["class"] for r in trained} <= {"round", "long"}
    assert all(0.5 <= float(r["probability"]) <= 1.0 for r in trained)
    classifier = load_classifier(saved)
    assert classifier.classes == ("round", "long") and classifier.examples == {
        "round": 5,
        "long": 5,
    }

    assert cli("classify", *common, "--classifier", saved, "-o", tmp_path / "applied.csv") == 0
    assert rows(tmp_path / "applied.csv") == trained  # the saved forest predicts the same


def test_a_folder_is_classified_here_and_on_the_cluster_alike(
    cells_files, checkpoint, tmp_path, dask_client, capsys
):
    folder, cells = cells_files
    saved = tmp_path / "c.npz"
    assert cli(
        "classify", folder / "cells.tif", folder / "cells_labels.tif", "--checkpoint", checkpoint,
        *MODEL, "--train", folder / "examples.csv", "--save", saved, "--trees", "20",
        "-o", tmp_path / "one.csv",
    ) == 0  # fmt: skip
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    stack = np.stack([cells.image, cells.image[::-1]])
    tifffile.imwrite(images / "a.tif", cells.image)
    tifffile.imwrite(images / "b.tif", stack)
    tifffile.imwrite(images / "c.tif", cells.image)  # no label image: skipped, named
    tifffile.imwrite(labels / "a.tif", cells.labels)
    tifffile.imwrite(labels / "b.tif", np.stack([cells.labels, cells.labels[::-1]]))
    common = ["--checkpoint", checkpoint, *MODEL, "--classifier", saved]
    assert cli("classify", images, labels, *common, "-o", tmp_path / "here") == 1
    assert "c.tif" in capsys.readouterr().err
    address = dask_client.scheduler.address
    there = tmp_path / "there"
    assert cli("classify", images, labels, *common, "-o", there, "--scheduler", address) == 1
    for name in ("a", "b"):
        assert rows(there / f"{name}_classes.csv") == rows(
            tmp_path / "here" / f"{name}_classes.csv"
        )
    assert rows(tmp_path / "here" / "a_classes.csv") == rows(tmp_path / "one.csv")
    # an object through both planes of the stack is one row
    assert len(rows(there / "b_classes.csv")) == len(cells.classes)


def test_bad_input_is_named_and_writes_nothing(cells_files, checkpoint, tmp_path, capsys):
    folder, cells = cells_files
    image, labels = folder / "cells.tif", folder / "cells_labels.tif"
    common = ["--checkpoint", checkpoint, *MODEL]
    out = tmp_path / "t.csv"

    def refused(*args, match):
        assert cli("classify", *args, "-o", out) == 2
        assert match in capsys.readouterr().err
        assert not out.exists()

    one_class = tmp_path / "one.csv"
    one_class.write_text("id,class\n1,round\n2,round\n")
    refused(image, labels, *common, "--train", one_class, match="at least two classes")
    listed = tmp_path / "listed.csv"
    listed.write_text("id,class\n1,round\n2,long\n")
    refused(image, labels, *common, "--train", listed, "--classes", "round", "long", "dead",
            match="'dead' have no example")  # fmt: skip
    absent = tmp_path / "absent.csv"
    absent.write_text("id,class\n1,round\n9999,long\n")
    refused(image, labels, *common, "--train", absent, match="9999")
    no_column = tmp_path / "nocol.csv"
    no_column.write_text("object,label\n1,round\n")
    refused(image, labels, *common, "--train", no_column, match="needs columns id,class")
    pickled = tmp_path / "evil.npz"
    np.savez(pickled, meta=np.array([{"format": "x"}], dtype=object))
    refused(image, labels, *common, "--classifier", pickled, match="is not a classifier file")
    tifffile.imwrite(tmp_path / "small.tif", cells.labels[:50])
    refused(image, tmp_path / "small.tif", *common, "--train", listed, match="do not fit the image")
    refused(image, labels, *common, "--train", listed, "--save", tmp_path / "c.pkl", match=".npz")
    refused(image, labels, *common, "--classifier", tmp_path / "none.npz", match="does not exist")
