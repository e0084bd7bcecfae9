"""Label images written plane by plane as results arrive: the same files as writing the whole
stack at once, planes on disk as they come (OME-Zarr), nothing published when stopped."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from napari_promptseg.core.errors import ExportError
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.storage.label_output import (
    MemoryLabelOutput,
    ZarrLabelOutput,
    open_label_output,
)
from napari_promptseg.core.storage.ome_zarr import (
    ome_metadata,
    read_ome_zarr_labels,
    write_labels_ome_zarr,
)


def planes_with_own_ids(count: int, shape=(20, 30), seed=0) -> list[np.ndarray]:
    """Planes each numbered 1..N (as segment everything returns them)."""
    rng = np.random.default_rng(seed)
    planes = []
    for n in range(count):
        plane = np.zeros(shape, np.uint32)
        for i in range(1, n + 2):
            row, col = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
            plane[row : row + 3, col : col + 3] = i
        planes.append(plane)
    return planes


@pytest.mark.parametrize("suffix", [".ome.zarr", ".tif"])
def test_planes_in_any_order_shifted_at_the_end_equal_the_whole_stack(tmp_path, suffix):
    planes = planes_with_own_ids(4)
    offsets = {(0,): 0, (1,): 1, (2,): 3, (3,): 6}
    whole = np.stack([np.where(p > 0, p + offsets[(z,)], 0) for z, p in enumerate(planes)])
    path = tmp_path / f"labels{suffix}"
    with open_label_output(path, (4,), (20, 30), axes=("z", "c", "y", "x")) as output:
        for z in (2, 0, 3, 1):  # the order a cluster finishes them in
            output.write((z,), planes[z])
        written, table = output.finish([{"id": i} for i in range(1, 11)], offsets=offsets)
    back = read_ome_zarr_labels(written) if suffix == ".ome.zarr" else tifffile.imread(written)
    assert back.dtype == np.uint16  # the smallest type holding the ids, as before
    np.testing.assert_array_equal(back, whole)
    assert [row["id"] for row in read_objects_csv(table)] == [str(i) for i in range(1, 11)]
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, "labels_objects.csv"])
    if suffix == ".ome.zarr":
        (scale,) = ome_metadata(written)["multiscales"]
        assert [a["name"] for a in scale["axes"]] == ["z", "y", "x"]
        assert sorted(os.listdir(written)) == ["0", "zarr.json"]  # the staged ids are gone


def test_the_ome_zarr_equals_the_one_written_at_once(tmp_path):
    labels = np.zeros((3, 40, 50), np.uint32)
    labels[1, 5:9, 5:30] = 70_000  # beyond uint16
    labels[2, 20:30, 1:4] = 2
    write_labels_ome_zarr(tmp_path / "once.ome.zarr", labels, [{"id": 2}, {"id": 70_000}])
    with open_label_output(tmp_path / "planes.ome.zarr", (3,), (40, 50), max_id=70_000) as out:
        for z in (2, 1):  # plane 0 holds nothing and is never written
            out.write((z,), labels[z])
        out.finish([{"id": 2}, {"id": 70_000}])
    once = read_ome_zarr_labels(tmp_path / "once.ome.zarr")
    planes = read_ome_zarr_labels(tmp_path / "planes.ome.zarr")
    assert planes.dtype == once.dtype == np.uint32
    np.testing.assert_array_equal(planes, once)
    assert (
        ome_metadata(tmp_path / "planes.ome.zarr")["multiscales"][0]["axes"]
        == (ome_metadata(tmp_path / "once.ome.zarr")["multiscales"][0]["axes"])
    )


def test_ome_zarr_planes_are_on_disk_as_they_arrive(tmp_path):
    output = ZarrLabelOutput(tmp_path / "l.ome.zarr", (5,), (64, 64), max_id=9)
    with output:
        output.write((3,), np.full((64, 64), 9, np.uint8))
        # in the hidden staging group, not in memory; the target does not exist yet
        assert np.asarray(output._array[3]).max() == 9
        assert not (tmp_path / "l.ome.zarr").exists()
        output.finish([{"id": 9}])
    assert read_ome_zarr_labels(tmp_path / "l.ome.zarr")[3].max() == 9


@pytest.mark.parametrize("suffix", [".ome.zarr", ".tif"])
def test_stopped_midway_nothing_is_published_and_the_old_output_stays(tmp_path, suffix):
    path = tmp_path / f"l{suffix}"
    with open_label_output(path, (), (8, 8), max_id=1) as output:
        output.write((), np.ones((8, 8), np.uint8))
        output.finish([{"id": 1}])
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(KeyboardInterrupt), open_label_output(path, (2,), (8, 8)) as output:
        output.write((0,), np.full((8, 8), 1, np.uint8))
        raise KeyboardInterrupt  # Ctrl-C while planes arrive
    assert sorted(os.listdir(tmp_path)) == before  # no staging folder, no new table
    back = read_ome_zarr_labels(path) if suffix == ".ome.zarr" else tifffile.imread(path)
    assert back.shape == (8, 8) and back.max() == 1


def test_planes_that_do_not_fit_are_refused(tmp_path):
    with MemoryLabelOutput(tmp_path / "l.tif", (2,), (8, 8)) as output:
        with pytest.raises(ExportError, match=r"does not fit the label image \(2, 8, 8\)"):
            output.write((0,), np.zeros((8, 9), np.uint8))
        with pytest.raises(ExportError, match="outside the label image"):
            output.write((2,), np.zeros((8, 8), np.uint8))
    with pytest.raises(ExportError, match="does not exist"):
        open_label_output(tmp_path / "missing" / "l.ome.zarr", (), (8, 8))
