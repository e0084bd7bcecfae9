"""``promptseg everything --mode ais`` on a plane larger than one embedding: by tiles.

The shipped demo model on a held-out 400 x 2400 synthetic nuclei image: by default the plane
goes by micro-sam's tiles (768 px plus a 128 px halo, so no tile is downscaled) and the
nuclei are found; ``--tile-shape`` / ``--halo`` choose other tiles. One embedding of the
whole plane (downscaled 2.3x) misses them, which is why large planes are tiled.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.workflows.finetune.instance_validation import match_instances
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    sample = synthetic_cells(7_000_012, (400, 2400), kind="nuclei")  # held out from training
    path = tmp_path_factory.mktemp("wide") / "wide.tif"
    tifffile.imwrite(path, sample.image)
    return path, sample.labels


def _everything(image, out, *flags):
    argv = ["everything", str(image), "--model", "demo", "--offline", "-o", str(out), *flags]
    assert main(argv) == 0
    return tifffile.imread(out)


def _f1(truth, labels):
    best, matched, found = match_instances(truth, labels)
    return 2 * matched / (len(best) + found)


@pytest.mark.slow
def test_a_wide_plane_is_segmented_by_tiles(wide, tmp_path, capsys):
    path, truth = wide
    labels = _everything(path, tmp_path / "auto.tif")
    assert _f1(truth, labels) >= 0.6
    rows = read_objects_csv(tmp_path / "auto_objects.csv")
    assert len(rows) == len(np.unique(labels)) - 1 > 100
    # the default is micro-sam's tile_shape 768 + halo 128
    same = _everything(path, tmp_path / "given.tif", "--tile-shape", "768", "768")
    np.testing.assert_array_equal(labels, same)
    # one tile holding the whole plane = one embedding, downscaled: the nuclei are lost
    whole = _everything(
        path, tmp_path / "whole.tif", "--tile-shape", "400", "2400", "--halo", "0", "0"
    )
    assert _f1(truth, whole) < 0.3


def test_bad_tile_flags_are_refused_before_the_model_loads(wide, tmp_path, capsys):
    path, _ = wide
    out = tmp_path / "x.tif"
    base = ["everything", str(path), "--model", "demo", "--offline", "-o", str(out)]
    cases = (
        (["--halo", "8", "8"], "--halo needs --tile-shape"),
        (["--tile-shape", "8", "64"], "at least 16 px"),
        (["--tile-shape", "64", "64", "--halo", "-1", "0"], "cannot be negative"),
        (["--mode", "grid", "--tile-shape", "64", "64"], "for --mode ais/apg"),
    )
    for flags, message in cases:
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and "loaded" not in err, flags
    assert not out.exists()
