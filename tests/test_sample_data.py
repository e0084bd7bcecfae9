"""The synthetic sample image: shape, dtype, determinism and that it has cells in it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg._sample_data import (
    SAMPLE_NUM_CELLS,
    SAMPLE_SHAPE,
    _main,
    make_sample_cells,
    sample_cells_centers,
    sample_cells_image,
)


def _blob_sizes(mask: np.ndarray, min_size: int = 100) -> list[int]:
    """Sizes of the connected components of ``mask`` with at least ``min_size`` pixels."""
    ndimage = pytest.importorskip("scipy.ndimage")  # scipy comes with napari
    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return sorted(int(s) for s in sizes if s >= min_size)


def test_shape_dtype_and_range():
    image = sample_cells_image()
    assert image.shape == SAMPLE_SHAPE == (384, 512)
    assert image.shape[0] != image.shape[1]
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous
    assert image.min() < 40
    assert image.max() > 200


def test_deterministic_and_seeded():
    a = sample_cells_image()
    b = sample_cells_image()
    np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(a, b)
    assert (sample_cells_image(seed=1) != a).any()


def test_unaffected_by_global_numpy_random_state():
    np.random.seed(123)
    a = sample_cells_image()
    np.random.seed(456)
    np.testing.assert_array_equal(a, sample_cells_image())


def test_has_about_twenty_foreground_blobs():
    image = sample_cells_image()
    background = np.median(image)
    assert background < 50
    foreground = image > 80
    # Cells cover a real but minor part of the image.
    assert 0.03 < foreground.mean() < 0.4
    sizes = _blob_sizes(foreground)
    assert SAMPLE_NUM_CELLS - 3 <= len(sizes) <= SAMPLE_NUM_CELLS
    # Cells have varying sizes and brightness.
    assert max(sizes) > 2 * min(sizes)
    assert np.ptp([np.percentile(image[foreground], 10), np.percentile(image[foreground], 90)]) > 40


def test_other_shapes_and_counts():
    image = sample_cells_image(seed=3, shape=(200, 300), n_cells=5)
    assert image.shape == (200, 300)
    assert image.dtype == np.uint8
    assert 1 <= len(_blob_sizes(image > 80)) <= 5


def test_centers_lie_inside_bright_cells():
    image = sample_cells_image()
    centers = sample_cells_centers()
    assert centers.shape == (SAMPLE_NUM_CELLS, 2)
    np.testing.assert_array_equal(centers, sample_cells_centers())
    rows, cols = np.rint(centers).astype(int).T
    assert (rows >= 0).all() and (rows < image.shape[0]).all()
    assert (cols >= 0).all() and (cols < image.shape[1]).all()
    assert (image[rows, cols] > 80).all()
    # One centre per blob: no two centres share a connected component.
    ndimage = pytest.importorskip("scipy.ndimage")
    labels, _ = ndimage.label(image > 80)
    assert len(set(labels[rows, cols].tolist())) == SAMPLE_NUM_CELLS


def test_make_sample_cells_is_napari_layer_data():
    [(data, meta, layer_type)] = make_sample_cells()
    assert layer_type == "image"
    assert meta == {"name": "cells (sample)"}
    np.testing.assert_array_equal(data, sample_cells_image())


def test_is_fast():
    import time

    start = time.perf_counter()
    sample_cells_image()
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_main_writes_the_image(tmp_path, suffix, capsys):
    path = tmp_path / "sub" / f"cells{suffix}"
    assert _main([str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    if suffix == ".tif":
        tifffile = pytest.importorskip("tifffile")
        loaded = tifffile.imread(path)
    else:
        loaded = np.load(path)
    np.testing.assert_array_equal(loaded, sample_cells_image())


def test_main_writes_point_prompts(tmp_path):
    points = tmp_path / "points.csv"
    assert _main([str(tmp_path / "cells.npy"), "--points", str(points)]) == 0
    lines = points.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "object,row,col,label"
    assert len(lines) == 1 + SAMPLE_NUM_CELLS
    rows = [line.split(",") for line in lines[1:]]
    assert len({r[0] for r in rows}) == SAMPLE_NUM_CELLS  # one object per cell
    np.testing.assert_allclose(
        [[float(r[1]), float(r[2])] for r in rows], sample_cells_centers(), atol=0.051
    )
