"""Labels written into an OME-Zarr image's labels/ group, read back with ome-zarr-py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from napari_promptseg.core.errors import ExportError
from napari_promptseg.core.storage import ome_zarr_labels
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.storage.ome_zarr_labels import (
    ImageLabelOutput,
    image_labels_csv_path,
    write_labels_into_image,
)

ome_writer = pytest.importorskip("ome_zarr.writer")
from ome_zarr.reader import Label, Labels, Multiscales  # noqa: E402
from omezarrkit import checksums, read_nodes, tree, write_image  # noqa: E402

ROWS = [{"id": 1, "area": 25}, {"id": 2, "area": 12}]


def labels_of(shape, seed=0):
    labels = np.zeros(shape, dtype=np.uint16)
    labels[..., 2:7, 3:8] = 1
    labels[..., 10:13, 20:24] = 2
    return labels


@pytest.fixture
def image(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, (2, 3, 32, 40)).astype(np.uint8)
    return write_image(tmp_path / "cells.ome.zarr", data, "czyx")


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_labels_are_found_by_ome_zarr_py_and_the_image_is_untouched(tmp_path, caplog, version):
    data = np.random.default_rng(2).integers(0, 255, (2, 3, 32, 40)).astype(np.uint8)
    image = write_image(tmp_path / "cells.ome.zarr", data, "czyx", version)
    before = checksums(image)
    labels = labels_of((3, 32, 40))

    path, table = write_labels_into_image(image, "nuclei", labels, ROWS)

    assert path == image / "labels" / "nuclei"
    assert table == tmp_path / "cells_nuclei_objects.csv" == image_labels_csv_path(image, "nuclei")
    assert [row["id"] for row in read_objects_csv(table)] == ["1", "2"]
    assert checksums(image) == before  # not one byte of the image changed
    assert not [n for n in tree(image) if os.path.basename(n).startswith(".") and "part" in n]

    # from the image: it lists its labels, and the label is a multiscale label image
    nodes = read_nodes(image, version, caplog)
    assert [type(s) for s in nodes[0].specs] == [Multiscales]
    np.testing.assert_array_equal(nodes[0].data[0], data)
    groups = [n for n in nodes if any(isinstance(s, Labels) for s in n.specs)]
    assert len(groups) == 1 and groups[0].zarr.root_attrs["labels"] == ["nuclei"]
    (label,) = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    np.testing.assert_array_equal(label.data[0], labels)
    assert label.metadata["name"] == "nuclei"
    assert label.metadata["axes"] == [
        {"name": "z", "type": "space"},
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    assert label.zarr.root_attrs["image-label"]["source"] == {"image": "../../"}

    # from the label: its parent image is found through ../../
    caplog.clear()
    nodes = read_nodes(path, version, caplog)
    assert nodes[0].zarr.path.rstrip("/") == str(image.resolve())
    assert any(isinstance(s, Multiscales) for s in nodes[0].specs)
    (label,) = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    np.testing.assert_array_equal(label.data[0], labels)


def test_metadata_follows_the_image_version(tmp_path):
    data = np.zeros((1, 16, 20), dtype=np.uint8)
    v5 = write_image(tmp_path / "a.zarr", data, "cyx", "0.5")
    v4 = write_image(tmp_path / "b.zarr", data, "cyx", "0.4")
    write_labels_into_image(v5, "cells", labels_of((16, 20)), ROWS, colors={1: (255, 0, 0, 255)})
    write_labels_into_image(v4, "cells", labels_of((16, 20)), ROWS)

    group = json.loads((v5 / "labels" / "zarr.json").read_text())
    assert group["zarr_format"] == 3
    assert group["attributes"] == {"ome": {"version": "0.5", "labels": ["cells"]}}
    ome = json.loads((v5 / "labels" / "cells" / "zarr.json").read_text())["attributes"]["ome"]
    assert ome["version"] == "0.5"
    assert ome["image-label"] == {
        "source": {"image": "../../"},
        "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
    }
    assert [d["path"] for d in ome["multiscales"][0]["datasets"]] == ["0"]
    array = json.loads((v5 / "labels" / "cells" / "0" / "zarr.json").read_text())
    assert array["dimension_names"] == ["y", "x"] and array["data_type"] == "uint16"

    assert json.loads((v4 / "labels" / ".zattrs").read_text()) == {"labels": ["cells"]}
    assert json.loads((v4 / "labels" / ".zgroup").read_text()) == {"zarr_format": 2}
    attrs = json.loads((v4 / "labels" / "cells" / ".zattrs").read_text())
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert attrs["image-label"] == {"version": "0.4", "source": {"image": "../../"}}
    array = json.loads((v4 / "labels" / "cells" / "0" / ".zarray").read_text())
    assert array["dimension_separator"] == "/"


def test_physical_scale_is_carried_over(tmp_path):
    data = np.zeros((2, 4, 16, 20), dtype=np.uint8)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    ome_writer.write_image(
        data,
        group,
        axes="czyx",
        scale={"c": 1.0, "z": 2.0, "y": 0.5, "x": 0.5},
        axes_units={"z": "micrometer"},
    )
    path, _ = write_labels_into_image(tmp_path / "s.zarr", "cells", labels_of((4, 16, 20)), ROWS)
    ome = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    image = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())["attributes"]["ome"]
    level0 = image["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert level0[0] == {"type": "scale", "scale": [1.0, 2.0, 0.5, 0.5]}  # c, z, y, x
    transforms = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert transforms[0] == {"type": "scale", "scale": [2.0, 0.5, 0.5]}
    assert [t["type"] for t in transforms] == [t["type"] for t in level0]
    assert ome["multiscales"][0]["axes"][0] == {"name": "z", "type": "space", "unit": "micrometer"}


def test_a_second_label_is_added_to_the_list_and_overwrite_replaces(image, caplog):
    write_labels_into_image(image, "nuclei", labels_of((3, 32, 40)), ROWS)
    write_labels_into_image(image, "cells", labels_of((3, 32, 40)), ROWS[:1])
    meta = json.loads((image / "labels" / "zarr.json").read_text())
    assert meta["attributes"]["ome"]["labels"] == ["nuclei", "cells"]

    with pytest.raises(ExportError, match=r"already has a label 'cells'.*overwrite"):
        write_labels_into_image(image, "cells", np.zeros((3, 32, 40), np.uint8), ROWS)
    new = labels_of((3, 32, 40)) * 3
    write_labels_into_image(image, "cells", new, ROWS, overwrite=True)
    meta = json.loads((image / "labels" / "zarr.json").read_text())
    assert meta["attributes"]["ome"]["labels"] == ["nuclei", "cells"]  # listed once
    assert sorted(os.listdir(image / "labels")) == ["cells", "nuclei", "zarr.json"]
    nodes = read_nodes(image, "0.5", caplog)
    found = {n.metadata["name"]: n for n in nodes if any(isinstance(s, Label) for s in n.specs)}
    np.testing.assert_array_equal(found["cells"].data[0], new)


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_mid_write_leaves_labels_as_they_were(image, monkeypatch, existing):
    if existing:
        write_labels_into_image(image, "old", labels_of((3, 32, 40)), ROWS)
    before = tree(image)
    sums = checksums(image)
    real_put = ImageLabelOutput._put
    calls = []

    def failing_put(self, plane, labels):
        calls.append(plane)
        if len(calls) == 2:  # the first plane is on disk, the second fails
            raise OSError(28, "No space left on device")
        real_put(self, plane, labels)

    monkeypatch.setattr(ImageLabelOutput, "_put", failing_put)
    with pytest.raises(OSError, match="No space left"):
        write_labels_into_image(image, "nuclei", labels_of((3, 32, 40)), ROWS)
    assert calls == [(0,), (1,)]
    assert tree(image) == before and checksums(image) == sums
    assert (image / "labels").exists() is existing
    assert not image_labels_csv_path(image, "nuclei").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_at_the_commit_rolls_back(image, monkeypatch, existing):
    """The list's metadata file cannot be replaced: the label just renamed in goes again."""
    write_labels_into_image(image, "nuclei", labels_of((3, 32, 40)), ROWS)
    if not existing:
        import shutil

        shutil.rmtree(image / "labels")
        image_labels_csv_path(image, "nuclei").unlink()
    before = tree(image)
    old_meta = (image / "labels" / "zarr.json").read_bytes() if existing else None
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        listing = str(dst).endswith(os.path.join("labels", "zarr.json"))
        if listing and ".zarr.json." in str(src) and (image / "labels" / "nuclei").exists():
            raise OSError(5, "Input/output error")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(ome_zarr_labels.os, "replace", failing_replace)
    with pytest.raises(ExportError, match="Input/output error"):
        write_labels_into_image(
            image, "nuclei", labels_of((3, 32, 40)) * 2, ROWS[:1], overwrite=True
        )
    monkeypatch.undo()
    assert tree(image) == before
    if existing:  # the old label, its listing and its table are still there
        assert (image / "labels" / "zarr.json").read_bytes() == old_meta
        old = zarr.open_array(str(image / "labels" / "nuclei" / "0"), mode="r")
        np.testing.assert_array_equal(old[...], labels_of((3, 32, 40)))
        assert len(read_objects_csv(image_labels_csv_path(image, "nuclei"))) == 2
    else:
        assert not (image / "labels").exists()
        assert not image_labels_csv_path(image, "nuclei").exists()


def test_plane_by_plane_with_offsets(image, caplog):
    """As `promptseg everything` writes: ids 1..N per plane, shifted at the end."""
    plane = labels_of((32, 40))
    with ImageLabelOutput(image, "auto", (3,), (32, 40)) as output:
        for z in (2, 0, 1):
            output.write((z,), plane)
        path, table = output.finish(ROWS, offsets={(0,): 0, (1,): 2, (2,): 4})
    stored = zarr.open_array(str(path / "0"), mode="r")
    assert stored.dtype == np.uint16 and "staged" not in os.listdir(path)
    for z in range(3):
        np.testing.assert_array_equal(stored[z], np.where(plane > 0, plane + 2 * z, 0))
    assert table.exists()


def test_an_interrupted_output_leaves_nothing(image):
    with pytest.raises(KeyboardInterrupt), ImageLabelOutput(image, "auto", (3,), (32, 40)) as out:
        out.write((0,), labels_of((32, 40)))
        assert (image / "labels").is_dir()  # a valid, empty labels group while it runs
        raise KeyboardInterrupt
    assert not (image / "labels").exists()


def test_refusals(tmp_path, image):
    labels = labels_of((3, 32, 40))
    with pytest.raises(ExportError, match="cannot be empty"):
        write_labels_into_image(image, "", labels, ROWS)
    for bad in ("a/b", "..", ".hidden", "a\\b"):
        with pytest.raises(ExportError, match="label name"):
            write_labels_into_image(image, bad, labels, ROWS)
    with pytest.raises(ExportError, match=r"\(3, 32, 40\) \(z, y, x\)"):
        write_labels_into_image(image, "nuclei", labels_of((32, 40)), ROWS)
    with pytest.raises(ExportError, match="axes"):
        write_labels_into_image(image, "nuclei", labels, ROWS, axes=("t", "y", "x"))

    plain = tmp_path / "plain.zarr"
    zarr.open_array(str(plain), mode="w", shape=(32, 40), dtype="u1")
    with pytest.raises(ExportError, match=r"not an OME-Zarr image.*zarr array"):
        write_labels_into_image(plain, "nuclei", labels_of((32, 40)), ROWS)
    group = tmp_path / "group.zarr"
    zarr.open_group(str(group), mode="w")
    with pytest.raises(ExportError, match=r"not an OME-Zarr image.*stand-alone"):
        write_labels_into_image(group, "nuclei", labels_of((32, 40)), ROWS)
    with pytest.raises(ExportError, match="not an OME-Zarr image"):
        write_labels_into_image(tmp_path / "missing.zarr", "nuclei", labels, ROWS)
    tif = tmp_path / "image.tif"
    tif.write_bytes(b"II*\0")
    with pytest.raises(ExportError, match="not an OME-Zarr image"):
        write_labels_into_image(tif, "nuclei", labels, ROWS)

    path, _ = write_labels_into_image(image, "nuclei", labels, ROWS)
    with pytest.raises(ExportError, match="is itself a label image"):
        write_labels_into_image(path, "again", labels, ROWS)
    assert not (tmp_path / "group.zarr" / "labels").exists()
    assert not (tmp_path / "plain.zarr" / "labels").exists()
