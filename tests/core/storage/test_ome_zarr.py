"""zarr / OME-Zarr images read lazily (level 0, axes checked); labels written as OME-Zarr."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from napari_promptseg.core.errors import ExportError, ImageError
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.storage.ome_zarr import (
    ome_metadata,
    ome_objects_csv_path,
    open_zarr_image,
    read_ome_zarr_labels,
    write_label_output,
    write_labels_ome_zarr,
)
from napari_promptseg.core.workflows.distributed.sources import ImageSource
from napari_promptseg.core.workflows.stack import planes_of


def scale(ndim):
    return {"type": "scale", "scale": [1] * ndim}


def write_ome_image(path, levels, axes, *, version="0.5"):
    """An OME-Zarr image by hand: NGFF 0.5 on zarr v3, or 0.4 on zarr v2."""
    zarr_format = 3 if version == "0.5" else 2
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    for index, data in enumerate(levels):
        chunks = (1,) * (data.ndim - 2) + data.shape[-2:]
        group.create_array(str(index), data=data, chunks=chunks)
    multiscales = [
        {
            "axes": [{"name": a} for a in axes],
            "datasets": [
                {"path": str(i), "coordinateTransformations": [scale(len(axes))]}
                for i in range(len(levels))
            ],
        }
    ]
    if version == "0.5":
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    else:
        multiscales[0]["version"] = "0.4"
        group.attrs["multiscales"] = multiscales
    return path


@pytest.fixture
def volume():
    return np.random.default_rng(5).integers(0, 4000, (4, 40, 50)).astype(np.uint16)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_multiscale_images_give_level_0_lazily(tmp_path, volume, version):
    path = write_ome_image(
        tmp_path / "vol.ome.zarr", [volume, volume[:, ::2, ::2]], ["z", "y", "x"], version=version
    )
    image = open_zarr_image(path)
    assert image.axes == ("z", "y", "x") and image.levels == 2 and image.channel_axis is None
    assert image.data.shape == (4, 40, 50)
    assert not isinstance(image.data, np.ndarray)  # a dask array: nothing read yet
    limits = (0.0, 4000.0)
    planes = ImageSource.create(path, contrast_limits=limits).planes()
    expected = planes_of(volume, contrast_limits=limits)
    assert planes.labels == expected.labels and planes.plane_shape == (40, 50)
    for label in planes.labels:
        np.testing.assert_array_equal(planes.rgb(label), expected.rgb(label))


def test_one_plane_is_read_without_reading_the_others(tmp_path, volume):
    path = write_ome_image(tmp_path / "vol.ome.zarr", [volume], ["z", "y", "x"])
    # spoil every chunk file but plane 1's: reading plane 1 must not touch them
    for index in (0, 2, 3):
        chunk = path / "0" / "c" / str(index) / "0" / "0"
        chunk.write_bytes(b"not a chunk")
    planes = ImageSource.create(path, contrast_limits=(0, 4000)).planes()
    np.testing.assert_array_equal(
        planes.rgb((1,)), planes_of(volume, contrast_limits=(0, 4000)).rgb((1,))
    )
    with pytest.raises(Exception):  # noqa: B017 - the spoiled plane really is unreadable
        planes.rgb((0,))


def test_a_channel_axis_from_the_metadata(tmp_path):
    data = np.random.default_rng(6).integers(0, 255, (2, 3, 30, 40)).astype(np.uint8)  # z c y x
    path = write_ome_image(tmp_path / "c.ome.zarr", [data], ["z", "c", "y", "x"])
    image = open_zarr_image(path)
    assert image.channel_axis == 1
    planes = ImageSource.create(path).planes()
    assert planes.labels == [(0,), (1,)]
    expected = planes_of(data, channel_axis=1)
    np.testing.assert_array_equal(planes.rgb((1,)), expected.rgb((1,)))


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        (["y", "x", "z"], r"axes \(y, x, z\); expected the last two to be y, x"),
        (["z", "y"], "names 2 axes"),
    ],
)
def test_unexpected_axes_are_named(tmp_path, volume, axes, message):
    path = write_ome_image(tmp_path / "bad.ome.zarr", [volume], axes)
    with pytest.raises(ImageError, match=message):
        open_zarr_image(path)


def test_plain_zarr_arrays_and_groups(tmp_path, volume):
    zarr.save_array(str(tmp_path / "a.zarr"), volume)
    assert open_zarr_image(tmp_path / "a.zarr").axes is None
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("x", data=volume)
    group.create_array("y", data=volume)
    with pytest.raises(ImageError, match="2 arrays"):
        open_zarr_image(tmp_path / "g.zarr")
    with pytest.raises(ImageError, match="does not exist"):
        open_zarr_image(tmp_path / "none.zarr")


# -- writing labels -----------------------------------------------------------------------------


def test_labels_as_ome_zarr_with_the_table_beside(tmp_path):
    labels = np.zeros((3, 20, 30), np.uint32)
    labels[1, 2:5, 3:9] = 7
    rows = [{"id": 7, "area": 18}]
    path, table = write_labels_ome_zarr(tmp_path / "cells.ome.zarr", labels, rows)
    assert table == tmp_path / "cells_objects.csv" == ome_objects_csv_path(path)
    assert read_objects_csv(table)[0]["id"] == "7"
    back = read_ome_zarr_labels(path)
    assert back.dtype == np.uint16  # the smallest type that holds the ids, as for tif
    np.testing.assert_array_equal(back, labels)
    ome = ome_metadata(path)
    assert ome["version"] == "0.5" and "image-label" in ome
    (scale,) = ome["multiscales"]
    assert [a["name"] for a in scale["axes"]] == ["z", "y", "x"]
    assert all(a["type"] == "space" for a in scale["axes"])
    assert scale["datasets"][0]["path"] == "0"
    array_meta = json.loads((path / "0" / "zarr.json").read_text())
    assert array_meta["dimension_names"] == ["z", "y", "x"]
    # an OME-Zarr reader (ours) reads it back as an image with those axes
    assert open_zarr_image(path).axes == ("z", "y", "x")


def test_rewriting_replaces_whole_and_failures_keep_the_old(tmp_path, monkeypatch):
    first = np.ones((10, 10), np.uint8)
    path, _ = write_labels_ome_zarr(tmp_path / "l.ome.zarr", first, [{"id": 1}])
    second = np.full((10, 10), 2, np.uint8)
    write_labels_ome_zarr(path, second, [{"id": 2}])
    np.testing.assert_array_equal(read_ome_zarr_labels(path), second)
    assert sorted(os.listdir(tmp_path)) == ["l.ome.zarr", "l_objects.csv"]

    real_rename = os.rename

    def failing(src, dst):
        if str(dst) == str(path) and str(src).endswith(".part"):  # putting the new one in
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(ExportError, match="No space left"):
        write_labels_ome_zarr(path, np.full((10, 10), 3, np.uint8), [{"id": 3}])
    monkeypatch.undo()
    np.testing.assert_array_equal(read_ome_zarr_labels(path), second)
    assert read_objects_csv(tmp_path / "l_objects.csv")[0]["id"] == "2"
    assert sorted(os.listdir(tmp_path)) == ["l.ome.zarr", "l_objects.csv"]


def test_output_by_suffix_and_bad_targets(tmp_path):
    labels = np.eye(8, dtype=np.uint16)
    _tif, tif_table = write_label_output(tmp_path / "a.tif", labels, [{"id": 1}])
    ome, ome_table = write_label_output(tmp_path / "a.ome.zarr", labels, [{"id": 1}])
    assert tif_table.name == "a_objects.csv" and ome_table.name == "a_objects.csv"
    np.testing.assert_array_equal(read_ome_zarr_labels(ome), labels)
    with pytest.raises(ExportError, match="does not exist"):
        write_labels_ome_zarr(tmp_path / "no" / "x.zarr", labels)
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(ExportError, match="a file of that name"):
        write_labels_ome_zarr(tmp_path / "file.zarr", labels)
    with pytest.raises(ExportError, match=r"must end in \.zarr"):
        write_labels_ome_zarr(tmp_path / "x.tif", labels)
