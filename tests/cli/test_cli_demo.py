"""The shipped ``demo`` model: listed offline, and real masks from the command line.

Held-out synthetic images (seeds the training script never draws from, sizes it did not see),
so the figures measure what the model learnt: AIS through ``promptseg everything`` and one
click per nucleus through ``promptseg segment``, each judged against the true labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.models import fetch_checkpoint
from napari_promptseg.core.models.registry import DEMO_FOLDER, MODELS
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.workflows.evaluation.clicks import most_interior_pixel
from napari_promptseg.core.workflows.finetune.instance_validation import match_instances
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells

HELD_OUT_SEEDS = (7_000_001, 7_000_002)  # not in train_demo.py's streams
MIN_F1, MIN_MEAN_IOU, MIN_CLICK_IOU = 0.6, 0.55, 0.6


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    found = []
    for seed in HELD_OUT_SEEDS:
        sample = synthetic_cells(seed, (301, 437), kind="nuclei")
        path = folder / f"nuclei_{seed}.tif"
        tifffile.imwrite(path, sample.image)
        found.append((path, sample.labels))
    return found


def test_demo_is_listed_available_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_PROMPTSEG_CACHE", str(tmp_path / "empty-cache"))
    assert main(["models"]) == 0
    rows = capsys.readouterr().out.splitlines()
    (line,) = [row for row in rows if row.startswith("demo ") and "vit_demo" in row]
    assert " yes " in line and str(DEMO_FOLDER) in line
    path = fetch_checkpoint("demo", offline=True, progress=False)  # hash verified, no network
    assert path == DEMO_FOLDER / "demo.pt" and path.stat().st_size == MODELS["demo"].size_bytes
    assert not (tmp_path / "empty-cache").exists()


@pytest.mark.slow
def test_everything_with_the_demo_finds_the_nuclei(images, tmp_path):
    for path, truth in images:
        out = tmp_path / f"{path.stem}_labels.tif"
        argv = ["everything", str(path), "--model", "demo", "--offline", "-o", str(out)]
        assert main(argv) == 0
        labels = tifffile.imread(out)
        best, matched, found = match_instances(truth, labels)
        f1 = 2 * matched / (len(best) + found)
        assert f1 >= MIN_F1 and np.mean(best) >= MIN_MEAN_IOU, (f1, np.mean(best))
        rows = read_objects_csv(out.with_name(f"{out.stem}_objects.csv"))
        assert len(rows) == found and {row["mode"] for row in rows} == {"ais"}


@pytest.mark.slow
def test_one_click_per_nucleus_with_the_demo(images, tmp_path):
    path, truth = images[0]
    ids = [int(i) for i in np.unique(truth) if i]
    clicks = [most_interior_pixel(truth == i) for i in ids]
    points = tmp_path / "points.csv"
    points.write_text(
        "object,row,col\n"
        + "".join(f"{i},{r},{c}\n" for i, (r, c) in zip(ids, clicks, strict=True))
    )
    out = tmp_path / "clicked.tif"
    argv = ["segment", str(path), "--model", "demo", "--offline", "--points", str(points)]
    assert main([*argv, "-o", str(out)]) == 0
    labels = tifffile.imread(out)
    ious = []
    for i, (r, c) in zip(ids, clicks, strict=True):
        mine = labels == labels[r, c] if labels[r, c] else np.zeros_like(truth, bool)
        ious.append((mine & (truth == i)).sum() / (mine | (truth == i)).sum())
    assert np.mean(ious) >= MIN_CLICK_IOU, np.mean(ious)
    assert np.median(ious) >= MIN_CLICK_IOU


def test_demo_refuses_the_modes_that_need_sam_s_mask_decoder(images, tmp_path, capsys):
    path, _ = images[0]
    for mode in ("grid", "apg"):
        out = tmp_path / f"{mode}.tif"
        argv = ["everything", str(path), "--model", "demo", "--mode", mode, "-o", str(out)]
        assert main(argv) == 2
        assert "only the automatic mode 'ais'" in capsys.readouterr().err
        assert not out.exists()
