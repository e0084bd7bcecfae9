"""Autosave files: round trips, throttling, earlier sessions kept, failures that lose nothing."""

from __future__ import annotations

import errno
import os
import threading

import numpy as np
import pytest
import tifffile

from napari_promptseg.core.errors import ExportError
from napari_promptseg.core.storage import autosave
from napari_promptseg.core.storage.autosave import (
    Autosaver,
    RecoveryError,
    autosave_info,
    autosave_paths,
    find_autosaves,
    load_autosave,
    safe_name,
    write_autosave,
)
from napari_promptseg.core.storage.export import read_objects_csv, write_labels_tif


def _labels(shape=(40, 50), dtype=np.uint32):
    labels = np.zeros(shape, dtype)
    labels[..., 5:15, 5:15] = 1
    labels[..., 20:30, 30:45] = 7
    return labels


def _rows():
    return [
        {"id": 1, "predicted_iou": 0.91, "stability": 0.8, "area": 100, "prompts": "1+"},
        {"id": 7, "predicted_iou": np.float32(0.5), "stability": float("nan"), "area": 150},
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((40, 50), np.uint32), ((3, 40, 50), np.uint16), ((2, 3, 40, 50), np.int64)],
    ids=["2d-uint32", "3d-uint16", "4d-int64"],
)
def test_round_trip_keeps_shape_dtype_and_rows(tmp_path, shape, dtype):
    labels = _labels(shape, dtype)
    paths = write_autosave(tmp_path, "cells", labels, _rows(), extra={"scale": np.ones(2)})
    assert paths.labels == tmp_path / "cells.autosave.tif"
    assert paths.objects == tmp_path / "cells.autosave_objects.csv"

    loaded, rows = load_autosave(paths.labels)
    assert loaded.dtype == dtype and loaded.shape == shape
    np.testing.assert_array_equal(loaded, labels)
    assert [r["id"] for r in rows] == [1, 7]
    assert rows[0]["predicted_iou"] == 0.91 and isinstance(rows[0]["area"], int)
    assert rows[1]["predicted_iou"] == pytest.approx(0.5) and rows[1]["stability"] is None
    info = autosave_info(paths.labels)
    assert info["image"] == "cells" and info["scale"] == [1.0, 1.0]
    assert [row["id"] for row in read_objects_csv(paths.objects)] == ["1", "7"]
    # nothing else in the folder: no temporary files left
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells.autosave.tif",
        "cells.autosave_objects.csv",
    ]


def test_rows_of_objects_without_pixels_are_dropped(tmp_path):
    rows = [*_rows(), {"id": 99, "predicted_iou": 0.3}]
    paths = write_autosave(tmp_path, "cells", _labels(), rows)
    _, loaded = load_autosave(paths.labels)
    assert [r["id"] for r in loaded] == [1, 7]


@pytest.mark.parametrize(
    "name",
    ["../x", "../../etc/passwd", "a/b", "/abs/path", "C:\\x", "..", "", " .hidden", "é" * 300],
)
def test_names_from_layers_cannot_leave_the_folder(tmp_path, name):
    paths = autosave_paths(tmp_path, name)
    assert paths.labels.parent == tmp_path
    assert paths.objects.parent == tmp_path
    assert not paths.labels.name.startswith(".")
    assert len(paths.labels.name) < 120
    written = write_autosave(tmp_path, name, _labels(), [])
    assert written.labels.resolve().parent == tmp_path.resolve()
    assert autosave_info(written.labels)["image"] == name


def test_names_that_clean_up_alike_get_different_files():
    assert safe_name("cells") == "cells"
    assert safe_name("a/b") != safe_name("a_b") == "a_b"
    assert safe_name("a/b") != safe_name("a:b")


def test_bad_labels_are_refused(tmp_path):
    with pytest.raises(ExportError, match="integer array"):
        write_autosave(tmp_path, "x", np.zeros((4, 4), np.float32), [])
    with pytest.raises(ExportError, match="integer array"):
        write_autosave(tmp_path, "x", np.zeros(4, np.uint8), [])


def test_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot create the autosave folder"):
        write_autosave(blocker / "autosave", "x", _labels(), [])


def test_disk_full_keeps_the_previous_autosave(tmp_path, monkeypatch):
    first = write_autosave(tmp_path, "cells", _labels(), _rows())
    before = first.labels.read_bytes(), first.objects.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tifffile, "imwrite", full)
    with pytest.raises(ExportError, match="No space left on device"):
        write_autosave(tmp_path, "cells", np.zeros((40, 50), np.uint32), [])
    assert (first.labels.read_bytes(), first.objects.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells.autosave.tif",
        "cells.autosave_objects.csv",
    ]


def test_interrupted_write_keeps_the_previous_autosave(tmp_path, monkeypatch):
    first = write_autosave(tmp_path, "cells", _labels(), _rows())
    before = first.labels.read_bytes()

    def interrupted(file, *args, **kwargs):
        file.write(b"II*\x00 half a tif")
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_autosave(tmp_path, "cells", np.zeros((40, 50), np.uint32), [])
    assert first.labels.read_bytes() == before
    np.testing.assert_array_equal(load_autosave(first.labels)[0], _labels())


def test_unreadable_files_are_named(tmp_path):
    missing = tmp_path / "gone.autosave.tif"
    with pytest.raises(RecoveryError, match="does not exist"):
        load_autosave(missing)
    good = write_autosave(tmp_path, "cells", _labels(), _rows()).labels
    truncated = tmp_path / "cut.autosave.tif"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(RecoveryError, match=r"cut\.autosave\.tif"):
        load_autosave(truncated)
    foreign = tmp_path / "plain.tif"
    write_labels_tif(foreign, _labels())
    with pytest.raises(RecoveryError, match="not a napari-promptseg autosave"):
        load_autosave(foreign)


def test_find_autosaves_newest_first(tmp_path):
    assert find_autosaves(tmp_path / "missing") == []
    old = write_autosave(tmp_path, "old image", _labels(), []).labels
    new = write_autosave(tmp_path, "new/image", _labels(), []).labels
    os.utime(old, (1_000_000, 1_000_000))
    (tmp_path / ".cells.autosave.tif.abc.part").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("x")
    found = find_autosaves(tmp_path)
    assert [f.path for f in found] == [new, old]
    assert [f.image for f in found] == ["new/image", "old image"]
    assert found[0].objects_path.is_file() and not found[0].previous


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(autosave.AUTOSAVE_ENV, str(tmp_path / "here"))
    assert autosave.default_folder() == tmp_path / "here"
    monkeypatch.delenv(autosave.AUTOSAVE_ENV)
    import platformdirs

    expected = platformdirs.user_data_dir("napari-promptseg", appauthor=False)
    assert autosave.default_folder() == type(tmp_path)(expected) / "autosave"


def test_throttling_on_commit_and_interval(tmp_path):
    clock = FakeClock()
    saver = Autosaver(tmp_path, min_gap_s=2.0, clock=clock)
    assert not saver.due()  # nothing changed
    saver.note_change()
    assert saver.due()  # first change: at once
    saver.save("cells", _labels(), _rows())
    assert not saver.dirty and not saver.due()
    saver.note_change()
    clock.now += 1.0
    assert not saver.due()  # within the gap: wait
    clock.now += 1.0
    assert saver.due()

    periodic = Autosaver(tmp_path, interval_s=10, on_commit=False, clock=clock)
    periodic.note_change()
    assert periodic.due()  # never saved yet
    periodic.save("other", _labels(), [])
    periodic.note_change()
    clock.now += 9
    assert not periodic.due()
    clock.now += 1
    assert periodic.due()

    manual = Autosaver(tmp_path, interval_s=None, on_commit=False, clock=clock)
    manual.note_change()
    assert not manual.due()
    off = Autosaver(tmp_path, clock=clock)
    off.enabled = False
    off.note_change()
    assert not off.due()
    with pytest.raises(ValueError, match="interval_s"):
        Autosaver(tmp_path, interval_s=0)


def test_earlier_session_is_moved_aside_not_overwritten(tmp_path):
    crashed = write_autosave(tmp_path, "cells", _labels(), _rows())
    saver = Autosaver(tmp_path)
    saver.save("cells", np.zeros((40, 50), np.uint32), [])
    saver.save("cells", np.ones((40, 50), np.uint32), [{"id": 1}])
    previous = tmp_path / "cells.autosave.previous.tif"
    labels, rows = load_autosave(previous)
    np.testing.assert_array_equal(labels, _labels())
    assert [r["id"] for r in rows] == [1, 7]
    assert (tmp_path / "cells.autosave.previous_objects.csv").is_file()
    np.testing.assert_array_equal(load_autosave(crashed.labels)[0], 1)
    found = find_autosaves(tmp_path)
    assert {f.path.name: f.previous for f in found} == {
        "cells.autosave.tif": False,
        "cells.autosave.previous.tif": True,
    }


def test_background_save_writes_a_snapshot(tmp_path):
    saved = []
    saver = Autosaver(tmp_path, on_saved=saved.append)
    labels = _labels()
    saver.note_change()
    saver.save_async("cells", labels, _rows())
    labels[:] = 3  # changed after the snapshot: not in this autosave
    assert saver.wait(30)
    assert not saver.busy and not saver.dirty
    assert saved == [autosave_paths(tmp_path, "cells")]
    np.testing.assert_array_equal(load_autosave(saved[0].labels)[0], _labels())
    saver.close()


def test_background_saves_coalesce_and_end_with_the_newest(tmp_path, monkeypatch):
    gate = threading.Event()
    real = autosave.write_autosave
    calls = []

    def slow(folder, name, labels, rows, **kwargs):
        gate.wait(10)
        calls.append(int(labels.max()))
        return real(folder, name, labels, rows, **kwargs)

    monkeypatch.setattr(autosave, "write_autosave", slow)
    saver = Autosaver(tmp_path)
    for value in range(1, 6):  # five snapshots while the first write is blocked
        saver.save_async("cells", np.full((8, 8), value, np.uint16), [])
    assert saver.busy
    gate.set()
    assert saver.wait(30)
    assert calls[-1] == 5 and len(calls) <= 3  # the first, maybe one more, and the newest
    np.testing.assert_array_equal(load_autosave(tmp_path / "cells.autosave.tif")[0], 5)
    saver.close()


def test_background_failure_is_reported_and_retried(tmp_path, monkeypatch):
    first = write_autosave(tmp_path, "cells", _labels(), _rows())
    before = first.labels.read_bytes()
    errors = []
    saver = Autosaver(tmp_path, on_error=errors.append)
    saver._claimed.add(first.labels)  # as if this saver wrote it: overwrite, do not move aside

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_imwrite = tifffile.imwrite
    monkeypatch.setattr(tifffile, "imwrite", full)
    saver.note_change()
    saver.save_async("cells", np.zeros((40, 50), np.uint32), [])
    assert saver.wait(30)
    assert errors and "No space left on device" in errors[0]
    assert "cells.autosave.tif" in saver.last_error
    assert saver.dirty  # the change is still unsaved
    assert first.labels.read_bytes() == before
    monkeypatch.setattr(tifffile, "imwrite", real_imwrite)  # space again
    saver.save_async("cells", np.zeros((40, 50), np.uint32), [])
    assert saver.wait(30) and saver.last_error is None
    np.testing.assert_array_equal(load_autosave(first.labels)[0], 0)
    saver.close()
