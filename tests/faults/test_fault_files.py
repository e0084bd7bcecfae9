"""Fault matrix, files (no Qt): the napari writer (File > Save Selected Layer) when the
folder is unwritable, the disk fills up or the export is interrupted. The atomic-write
primitive itself is tested in tests/core/storage/test_export.py; autosave files in
tests/core/test_autosave.py; a corrupted embedding store in tests/core/storage/test_store.py."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_promptseg._writer import write_labels
from napari_promptseg.core.errors import ExportError
from napari_promptseg.core.storage.export import read_objects_csv


def _labels(ids=(1, 2)):
    labels = np.zeros((30, 40), np.uint32)
    for i, label in enumerate(ids):
        labels[2 + 8 * i : 8 + 8 * i, 5:30] = label
    return labels


def _meta(ids=(1, 2)):
    rows = [{"index": i, "id": i, "predicted_iou": 0.9, "area": 150} for i in ids]
    return {"features": pd.DataFrame(rows)}


@pytest.fixture
def saved(tmp_path):
    """A first export: labels.tif and labels_objects.csv, and their bytes."""
    target = tmp_path / "labels.tif"
    write_labels(str(target), _labels(), _meta())
    csv = tmp_path / "labels_objects.csv"
    return target, csv, target.read_bytes(), csv.read_bytes()


def _only_the_export_files(folder):
    assert sorted(p.name for p in folder.iterdir()) == ["labels.tif", "labels_objects.csv"]


def test_disk_full_while_writing_the_labels_keeps_both_files(saved, monkeypatch):
    target, csv, tif_bytes, csv_bytes = saved

    def full(file, *args, **kwargs):
        file.write(b"II*\x00partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tifffile, "imwrite", full)
    with pytest.raises(ExportError, match=r"cannot write .*labels\.tif: No space left on device"):
        write_labels(str(target), _labels((1, 2, 3)), _meta((1, 2, 3)))
    assert target.read_bytes() == tif_bytes and csv.read_bytes() == csv_bytes
    _only_the_export_files(target.parent)


def test_disk_full_while_writing_the_table_keeps_both_old_files(saved, monkeypatch):
    """The pair is written together: a failure on the table keeps the old image too."""
    target, csv, tif_bytes, csv_bytes = saved
    import napari_promptseg.core.storage.export as export

    real = export.atomic_write

    def full_on_table(path, write):
        if "objects" in Path(path).name:
            raise ExportError(f"cannot write {path}: {os.strerror(errno.ENOSPC)}.")
        return real(path, write)

    monkeypatch.setattr(export, "atomic_write", full_on_table)
    with pytest.raises(
        ExportError, match=r"cannot write .*labels_objects\.csv: No space left on device"
    ):
        write_labels(str(target), _labels((1, 2, 3)), _meta((1, 2, 3)))
    assert csv.read_bytes() == csv_bytes
    assert target.read_bytes() == tif_bytes
    _only_the_export_files(target.parent)


def test_interrupted_export_keeps_the_previous_files(saved, monkeypatch):
    target, csv, tif_bytes, csv_bytes = saved

    def interrupted(file, *args, **kwargs):
        file.write(b"II*\x00partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_labels(str(target), _labels((1, 2, 3)), _meta((1, 2, 3)))
    assert target.read_bytes() == tif_bytes and csv.read_bytes() == csv_bytes
    _only_the_export_files(target.parent)


def test_unwritable_folder_is_named(tmp_path, monkeypatch):
    with pytest.raises(ExportError, match=r"the folder .*missing does not exist"):
        write_labels(str(tmp_path / "missing" / "labels.tif"), _labels(), _meta())

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(ExportError, match="Permission denied"):
        write_labels(str(tmp_path / "labels.tif"), _labels(), _meta())
    assert list(tmp_path.iterdir()) == []


def test_rows_of_objects_without_pixels_are_not_exported(tmp_path):
    target = tmp_path / "labels.tif"
    write_labels(str(target), _labels((1,)), _meta((1, 2)))
    assert [r["id"] for r in read_objects_csv(tmp_path / "labels_objects.csv")] == ["1"]
