"""A folder of images: listing, per-image results, progress and resuming, safe saving."""

from __future__ import annotations

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_promptseg.core import ExportError, ImageError
from napari_promptseg.core.storage.folder import (
    DONE,
    PROGRESS_NAME,
    SKIPPED,
    STARTED,
    TODO,
    ImageFolder,
    list_images,
    natural_key,
    safe_output_path,
)

SHAPE = (24, 32)


def _image(seed: int, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """img_1.png, img_2.tif, img_3.png (corrupt), img_10.png, img_11.png (other size)."""
    images = tmp_path / "images"
    images.mkdir()
    iio.imwrite(images / "img_1.png", _image(1))
    tifffile.imwrite(images / "img_2.tif", _image(2))
    (images / "img_3.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    iio.imwrite(images / "img_10.png", _image(10))
    iio.imwrite(images / "img_11.png", _image(11, (20, 20)))
    # not images to annotate
    iio.imwrite(images / ".hidden.png", _image(4))
    (images / "notes.txt").write_text("hello")
    (images / "sub").mkdir()
    iio.imwrite(images / "sub" / "deep.png", _image(5))
    return images


def _rows(*ids):
    return [
        {
            "id": i,
            "predicted_iou": 0.5 + i / 100,
            "stability": 0.9,
            "area": 4,
            "bbox_row0": 0,
            "bbox_col0": 0,
            "bbox_row1": 2,
            "bbox_col1": 2,
            "slice": "",
            "candidate": 1,
            "prompts": "1+",
            "model": "tiny",
        }
        for i in ids
    ]


def _labels(*ids):
    labels = np.zeros(SHAPE, np.uint32)
    for i in ids:
        labels[2 * i : 2 * i + 2, :2] = i
    return labels


def test_lists_images_in_natural_order_without_hidden_files_or_results(folder):
    tifffile.imwrite(folder / "img_1_labels.tif", np.zeros(SHAPE, np.uint16))  # a result
    names = [p.name for p in list_images(folder)]
    assert names == ["img_1.png", "img_2.tif", "img_3.png", "img_10.png", "img_11.png"]
    assert natural_key("a2.png") < natural_key("a10.png") < natural_key("B3.png")


def test_where_results_go(folder, tmp_path):
    images = ImageFolder(folder)
    assert images.output == folder
    assert images.labels_path(0) == folder / "img_1_labels.tif"
    assert images.objects_path(0) == folder / "img_1_labels_objects.csv"
    out = ImageFolder(folder, tmp_path / "new" / "out")
    assert (tmp_path / "new" / "out").is_dir()  # created
    assert out.labels_path(3) == tmp_path / "new" / "out" / "img_10_labels.tif"
    with pytest.raises(IndexError, match="5 images"):
        out.labels_path(5)


def test_images_sharing_a_stem_get_separate_results(tmp_path):
    iio.imwrite(tmp_path / "a.png", _image(1))
    tifffile.imwrite(tmp_path / "a.tif", _image(2))
    iio.imwrite(tmp_path / "b.png", _image(3))
    images = ImageFolder(tmp_path)
    names = {images.labels_path(i).name for i in range(len(images))}
    assert names == {"a.png_labels.tif", "a.tif_labels.tif", "b_labels.tif"}
    images.save(0, _labels(1), _rows(1), done=True)
    # the result is not listed as an image to annotate
    assert [p.name for p in ImageFolder(tmp_path).images] == ["a.png", "a.tif", "b.png"]


def test_unreadable_and_other_size_images_raise_a_clear_error(folder):
    images = ImageFolder(folder)
    np.testing.assert_array_equal(images.load_image(0), _image(1))
    np.testing.assert_array_equal(images.load_image(1), _image(2))
    with pytest.raises(ImageError, match=r"cannot read img_3\.png: damaged, or not a png image"):
        images.load_image(2)
    with pytest.raises(ImageError, match=r"img_11\.png is 20x20.* are 24x32 like img_1\.png"):
        images.load_image(4)


def test_shape_is_given_or_kept_in_the_progress_file(folder):
    images = ImageFolder(folder, shape=(20, 20))
    with pytest.raises(ImageError, match="24x32"):
        images.load_image(0)
    assert images.load_image(4).shape == (20, 20)

    first = ImageFolder(folder)
    first.load_image(0)
    first.mark_skipped(2, "unreadable")
    reopened = ImageFolder(folder)
    assert reopened.shape == SHAPE
    with pytest.raises(ImageError, match=r"like img_1\.png"):
        reopened.load_image(4)  # checked before any image was loaded in this session


def test_progress_and_resume(folder):
    images = ImageFolder(folder)
    assert [images.state(i).state for i in range(5)] == [TODO] * 5
    assert images.first_not_done() == 0

    images.save(0, _labels(1), _rows(1), done=True)
    images.save(1, _labels(), [], done=False)  # moved back before finishing: started
    try:
        images.load_image(2)
    except ImageError as error:
        images.mark_skipped(2, str(error))
    assert images.first_not_done() == 1
    assert images.counts() == {TODO: 2, STARTED: 1, DONE: 1, SKIPPED: 1}

    reopened = ImageFolder(folder)
    assert reopened.state(0).state == DONE and reopened.state(0).objects == 1
    assert reopened.state(1).state == STARTED
    assert reopened.state(2).state == SKIPPED
    assert "img_3.png" in reopened.state(2).reason
    assert reopened.first_not_done() == 1
    reopened.save(1, _labels(2), _rows(2), done=True)
    assert reopened.first_not_done() == 3
    assert reopened.first_not_done(start=4) == 4
    # saving a done image again without "done" (e.g. going back to it) keeps it done
    reopened.save(0, _labels(1, 2), _rows(1, 2))
    assert reopened.state(0).state == DONE
    reopened.save(3, _labels(), [], done=True)
    reopened.save(4, np.zeros((20, 20), np.uint8), [], done=True)
    assert reopened.first_not_done() is None


def test_labels_without_progress_entry_count_as_done(folder):
    tifffile.imwrite(folder / "img_2_labels.tif", np.ones(SHAPE, np.uint16))  # e.g. from the CLI
    images = ImageFolder(folder)
    assert images.state(1).state == DONE
    assert images.first_not_done() == 0
    # and removing the labels file of a done image makes it to do again
    images.save(0, _labels(1), _rows(1), done=True)
    images.labels_path(0).unlink()
    assert ImageFolder(folder).state(0).state == TODO


def test_broken_progress_file_is_reported_and_labels_files_decide(folder):
    (folder / PROGRESS_NAME).write_text("{not json")
    tifffile.imwrite(folder / "img_1_labels.tif", np.ones(SHAPE, np.uint16))
    images = ImageFolder(folder)
    assert images.problems and "progress file" in images.problems[0]
    assert images.first_not_done() == 1
    images.save(1, _labels(1), _rows(1), done=True)
    data = json.loads((folder / PROGRESS_NAME).read_text())
    assert data["images"]["img_2.tif"]["state"] == DONE


def test_save_and_load_round_trip(folder, tmp_path):
    images = ImageFolder(folder, tmp_path / "out")
    labels = _labels(1, 3)
    rows = [*_rows(1, 3), *_rows(7)]  # object 7 is not in the labels (undone): dropped
    rows[0]["note"] = "extra column"
    saved = images.save(0, labels, rows, done=True)
    assert saved.labels.name == "img_1_labels.tif" and saved.objects.parent == tmp_path / "out"
    read = tifffile.imread(saved.labels)
    assert read.dtype == np.uint16
    np.testing.assert_array_equal(read, labels)

    loaded = ImageFolder(folder, tmp_path / "out")
    np.testing.assert_array_equal(loaded.load_labels(0, shape=SHAPE), labels)
    assert loaded.load_labels(1) is None
    back = loaded.load_rows(0)
    assert [r["id"] for r in back] == [1, 3]
    assert back[0]["predicted_iou"] == pytest.approx(0.51)
    assert isinstance(back[0]["area"], int) and isinstance(back[0]["stability"], float)
    assert back[0]["note"] == "extra column" and back[1]["note"] == ""
    assert back[1]["prompts"] == "1+" and back[1]["slice"] == ""
    assert loaded.load_rows(1) == []


def test_saved_labels_that_do_not_fit_are_refused_and_kept(folder):
    images = ImageFolder(folder)
    path = images.labels_path(0)
    tifffile.imwrite(path, np.ones((5, 5), np.uint16))
    with pytest.raises(ImageError, match="5x5, the image 24x32"):
        images.load_labels(0, shape=SHAPE)
    path.write_bytes(b"garbage")
    with pytest.raises(ImageError, match="cannot be read"):
        images.load_labels(0, shape=SHAPE)
    assert path.read_bytes() == b"garbage"  # left alone
    images.objects_path(0).write_text("id,area\n1,lots\n")
    with pytest.raises(ImageError, match="line 2: area 'lots' is not a number"):
        images.load_rows(0)


def _hidden_leftovers(folder):
    return [name for name in os.listdir(folder) if name.startswith(".") and name != ".hidden.png"]


def test_failed_save_keeps_the_previous_files(folder, monkeypatch):
    images = ImageFolder(folder)
    images.save(0, _labels(1), _rows(1), done=False)
    before = {
        path: path.read_bytes()
        for path in (images.labels_path(0), images.objects_path(0), images.progress_path)
    }

    def disk_full(file, data, **kwargs):
        file.write(b"II*\x00 half a tif")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", disk_full)
    with pytest.raises(ExportError, match="No space left"):
        images.save(0, _labels(1, 2), _rows(1, 2), done=True)
    monkeypatch.undo()
    assert {path: path.read_bytes() for path in before} == before
    assert _hidden_leftovers(folder) == []
    assert ImageFolder(folder).state(0).state == STARTED


def test_failed_table_keeps_the_previous_labels_too(folder, monkeypatch):
    images = ImageFolder(folder)
    images.save(0, _labels(1), _rows(1))
    labels_before = images.labels_path(0).read_bytes()
    table_before = images.objects_path(0).read_bytes()

    def interrupted(path, rows, columns=None):
        raise KeyboardInterrupt  # the user pressed Ctrl+C between the two files

    monkeypatch.setattr("napari_promptseg.core.storage.export.write_objects_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        images.save(0, _labels(1, 2), _rows(1, 2), done=True)
    assert images.labels_path(0).read_bytes() == labels_before
    assert images.objects_path(0).read_bytes() == table_before
    assert _hidden_leftovers(folder) == []


def test_bad_labels_are_refused_before_anything_is_written(folder):
    images = ImageFolder(folder)
    with pytest.raises(ExportError, match="integer ids"):
        images.save(0, np.full(SHAPE, 0.5), [])
    assert not images.labels_path(0).exists() and not images.progress_path.exists()


def test_output_names_cannot_leave_the_output_folder(folder, tmp_path):
    for bad in ("../escape_labels.tif", "sub/x_labels.tif", "..", "", "/etc/passwd"):
        with pytest.raises(ExportError, match="not a plain name"):
            safe_output_path(folder, bad)
    assert safe_output_path(folder, "..x_labels.tif") == folder / "..x_labels.tif"

    # a link named like a result, pointing outside: neither read nor written through
    outside = tmp_path / "precious.tif"
    tifffile.imwrite(outside, np.full(SHAPE, 9, np.uint16))
    before = outside.read_bytes()
    (folder / "img_1_labels.tif").symlink_to(outside)
    images = ImageFolder(folder)
    with pytest.raises(ExportError, match="outside the output folder"):
        images.save(0, _labels(1), _rows(1))
    with pytest.raises(ExportError, match="outside the output folder"):
        images.load_labels(0)
    assert outside.read_bytes() == before


def test_missing_folder_and_output_that_is_a_file(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        ImageFolder(tmp_path, tmp_path / "file")
