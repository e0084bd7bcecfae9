from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from napari_promptseg.core import ExportError
from napari_promptseg.core.storage.export import (
    objects_csv_path,
    read_objects_csv,
    write_labels_tif,
    write_objects_csv,
)
from napari_promptseg.core.storage.files import atomic_write


def test_label_tif_round_trip_uint16(tmp_path):
    labels = np.zeros((30, 41), np.int64)
    labels[3:9, 4:20] = 1
    labels[10:20, 10:30] = 300
    path = write_labels_tif(tmp_path / "labels.tif", labels)
    read = tifffile.imread(path)
    assert read.dtype == np.uint16
    np.testing.assert_array_equal(read, labels)


def test_label_tif_uses_uint32_when_ids_do_not_fit(tmp_path):
    labels = np.zeros((2, 2, 3), np.int64)
    labels[0, 0, 0] = 70000
    read = tifffile.imread(write_labels_tif(tmp_path / "stack.tiff", labels))
    assert read.dtype == np.uint32 and read.shape == (2, 2, 3)
    assert read[0, 0, 0] == 70000


def test_objects_csv_round_trip(tmp_path):
    rows = [
        {"id": 1, "predicted_iou": 0.9, "area": 10, "prompts": "1+ box"},
        {"id": 2, "extra": "x"},
    ]
    path = write_objects_csv(objects_csv_path(tmp_path / "cells.tif"), rows)
    assert path.name == "cells_objects.csv"
    read = read_objects_csv(path)
    assert read[0]["id"] == "1" and read[0]["prompts"] == "1+ box"
    assert read[1]["extra"] == "x"


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "labels.tif"
    target.write_bytes(b"previous")

    def broken(file):
        file.write(b"half a fi")
        raise OSError(28, "No space left on device")

    with pytest.raises(ExportError, match="No space left"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["labels.tif"]


def test_interrupted_write_keeps_previous_file(tmp_path):
    target = tmp_path / "objects.csv"
    target.write_text("id\n1\n")

    def interrupted(file):
        file.write(b"id\n")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_text() == "id\n1\n"
    assert os.listdir(tmp_path) == ["objects.csv"]


def test_missing_or_unwritable_folder(tmp_path, monkeypatch):
    with pytest.raises(ExportError, match="does not exist"):
        write_labels_tif(tmp_path / "nope" / "labels.tif", np.zeros((2, 2), np.uint8))
    # a read-only file system, for real
    with pytest.raises(ExportError, match="cannot write"):
        write_objects_csv("/proc/objects.csv", [])

    # root can write anywhere, so simulate the permission error the OS gives a user
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(ExportError, match=r"cannot write .*Permission denied"):
        write_labels_tif(tmp_path / "labels.tif", np.zeros((2, 2), np.uint8))


def test_bad_label_data(tmp_path):
    with pytest.raises(ExportError, match="integer"):
        write_labels_tif(tmp_path / "l.tif", np.zeros((2, 2), np.float32))
    with pytest.raises(ExportError, match="negative"):
        write_labels_tif(tmp_path / "l.tif", -np.ones((2, 2), np.int32))
    with pytest.raises(ExportError, match=r"\.tif"):
        write_labels_tif(tmp_path / "l.png", np.zeros((2, 2), np.uint8))


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result is readable like any
    file the user writes (mode 0666 minus the umask), not private."""
    import os

    from napari_promptseg.core.storage.files import atomic_write

    path = atomic_write(tmp_path / "table.csv", lambda file: file.write(b"id\n1\n"))
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
