"""``--scheduler`` and zarr in and out, end to end: the commands on a 2-worker cluster write
what they write in one process; faults are named and write nothing.

The cluster (``dask_client``, tests/conftest.py) is started once; commands reach it by its
``tcp://`` address, as they would reach a SLURM or Kubernetes cluster.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_promptseg.cli import main
from napari_promptseg.core import Prompts, PromptSegmenter
from napari_promptseg.core.models.loading import load_model
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.storage.ome_zarr import read_ome_zarr_labels
from napari_promptseg.core.storage.zarr_store import ZarrEmbeddingStore
from napari_promptseg.core.workflows.distributed import scheduler
from napari_promptseg.core.workflows.stack import planes_of

pytestmark = pytest.mark.slow  # a few seconds each on 2 cores; they run in CI

MODEL = ["--model-type", "vit_tiny"]
FAST = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
        "--box-nms-thresh", "0.9"]  # fmt: skip


@pytest.fixture
def stack(tmp_path):
    data = np.random.default_rng(11).integers(0, 4000, (3, 50, 70)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    return path, data


def write_ome(path, data, axes):
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.create_array("0", data=data, chunks=(1,) * (data.ndim - 2) + data.shape[-2:])
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": [{"name": a} for a in axes], "datasets": [{"path": "0"}]}],
    }
    return path


def cli(*args):
    return main([str(a) for a in args])


def test_everything_on_the_cluster_writes_what_one_process_writes(
    dask_client, checkpoint, stack, tmp_path, capsys
):
    path, _ = stack
    here, there = tmp_path / "here.tif", tmp_path / "there.ome.zarr"
    common = ["--checkpoint", checkpoint, *MODEL, *FAST]
    assert cli("everything", path, "-o", here, *common) == 0
    address = dask_client.scheduler.address
    assert cli("everything", path, "-o", there, *common, "--scheduler", address) == 0
    assert "running 3 task(s) on the Dask cluster at tcp://" in capsys.readouterr().err
    labels = tifffile.imread(here)
    assert labels.shape == (3, 50, 70) and labels.max() > 0
    np.testing.assert_array_equal(read_ome_zarr_labels(there), labels)
    mine = read_objects_csv(tmp_path / "here_objects.csv")
    theirs = read_objects_csv(tmp_path / "there_objects.csv")
    assert mine == theirs
    # ids unique over the stack, each row naming its plane
    assert [int(r["id"]) for r in mine] == list(range(1, len(mine) + 1))
    assert {r["slice"] for r in mine} == {"0", "1", "2"}


def test_segment_on_the_cluster_writes_what_one_process_writes(
    dask_client, checkpoint, stack, tmp_path
):
    path, _ = stack
    points = tmp_path / "points.csv"
    points.write_text("object,z,row,col\n1,0,20,30\n2,2,10,12\n1,1,25,33\n3,2,40,60\n")
    common = ["--checkpoint", checkpoint, *MODEL, "--points", points]
    assert cli("segment", path, "-o", tmp_path / "a.tif", *common) == 0
    address = dask_client.scheduler.address
    assert cli("segment", path, "-o", tmp_path / "b.tif", *common, "--scheduler", address) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif"))  # fmt: skip
    assert read_objects_csv(tmp_path / "a_objects.csv") == read_objects_csv(tmp_path / "b_objects.csv")  # fmt: skip


def test_an_ome_zarr_embedded_on_the_cluster_opens_with_no_encoder_run(
    dask_client, checkpoint, tmp_path, capsys
):
    data = np.random.default_rng(12).integers(0, 255, (2, 3, 40, 60)).astype(np.uint8)
    image = write_ome(tmp_path / "cells.ome.zarr", data, ["z", "c", "y", "x"])
    store = tmp_path / "shared.zarr"
    address = dask_client.scheduler.address
    code = cli("embed", image, "--checkpoint", checkpoint, *MODEL, "--store", store, "--scheduler", address)  # fmt: skip
    assert code == 0
    assert "cells.ome.zarr: 2 plane(s), 2 computed, 0 already stored" in capsys.readouterr().out
    # what a napari session on the same store does: convert the plane, look it up
    engine = PromptSegmenter.from_model(
        load_model(checkpoint=checkpoint, model_type="vit_tiny"), store=ZarrEmbeddingStore(store)
    )
    for _label, rgb in planes_of(data, channel_axis=1):
        engine.embed(rgb)
    assert engine.encoder_calls == 0


def test_two_commands_filling_one_store_at_once(checkpoint, stack, tmp_path):
    path, data = stack
    store = tmp_path / "both.zarr"
    command = [sys.executable, "-m", "napari_promptseg.cli", "embed", str(path), "--checkpoint",
               str(checkpoint), *MODEL, "--store", str(store)]  # fmt: skip
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    # between them every plane was computed at least once; the store holds each once
    computed = sum(int(out.decode().split(" embedding(s) computed")[0].split()[-1]) for out, _ in outputs)  # fmt: skip
    assert 3 <= computed <= 6
    shared = ZarrEmbeddingStore(store)
    assert shared.count == 3
    engine = PromptSegmenter.from_model(
        load_model(checkpoint=checkpoint, model_type="vit_tiny"), store=shared
    )
    for _label, rgb in planes_of(data):
        engine.embed(rgb)  # each entry verifies (checksums) and is used
    assert engine.encoder_calls == 0


@pytest.mark.parametrize("command", ["everything", "embed"])
def test_an_unreachable_scheduler_writes_nothing(
    checkpoint, stack, tmp_path, capsys, monkeypatch, command
):
    monkeypatch.setattr(scheduler, "CONNECT_TIMEOUT_S", 1.0)
    path, _ = stack
    out, store = tmp_path / "l.tif", tmp_path / "s.zarr"
    extra = ["-o", out, *FAST] if command == "everything" else []
    args = [command, path, "--checkpoint", checkpoint, *MODEL, "--store", store, *extra]
    assert cli(*args, "--scheduler", "tcp://127.0.0.1:9") == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not out.exists() and not store.exists()


def test_bad_scheduler_store_and_axes_are_named(checkpoint, stack, tmp_path, capsys):
    path, data = stack
    base = ["--checkpoint", checkpoint, *MODEL]
    assert cli("embed", path, *base, "--scheduler", "slurm") == 2
    assert "--scheduler 'slurm' is not understood" in capsys.readouterr().err
    assert cli("embed", path, *base, "--store", "/proc/promptseg.zarr") == 2
    assert "embedding store /proc/promptseg.zarr is not writable" in capsys.readouterr().err
    bad = write_ome(tmp_path / "bad.ome.zarr", data, ["y", "x", "z"])
    assert cli("everything", bad, *base, "-o", tmp_path / "l.tif") == 2
    err = capsys.readouterr().err
    assert "axes (y, x, z); expected the last two to be y, x" in err
    assert not (tmp_path / "l.tif").exists()


def test_evaluate_on_the_cluster_reports_what_one_process_reports(
    dask_client, checkpoint, tmp_path
):
    import csv

    rng = np.random.default_rng(5)
    image = (rng.random((2, 40, 56)) * 50).astype(np.uint8)
    truth = np.zeros((2, 40, 56), np.uint16)
    truth[0, 3:15, 4:20] = 3
    truth[1, 20:36, 25:50] = 8
    image[truth > 0] += 150
    tifffile.imwrite(tmp_path / "cells.tif", image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "truth.tif", truth, photometric="minisblack")
    common = ["evaluate", tmp_path / "cells.tif", tmp_path / "truth.tif", "--checkpoint",
              checkpoint, *MODEL, "--clicks", "3", "--no-store"]  # fmt: skip
    assert cli(*common, "-o", tmp_path / "here.csv") == 0
    address = dask_client.scheduler.address
    assert cli(*common, "-o", tmp_path / "there.csv", "--scheduler", address) == 0

    def rows(name):
        with open(tmp_path / name, newline="") as file:
            drop = ("seconds", "seconds_per_object", "embedding_seconds")
            return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(file)]

    assert rows("here.csv") == rows("there.csv") and len(rows("here.csv")) > 0
    assert rows("here_summary.csv") == rows("there_summary.csv")


# -- large planes by tiles ------------------------------------------------------------------------


@pytest.fixture
def large(tmp_path):
    """A 2100x600 plane: longer than 2048 px, so tiled as in napari (3 tiles of 1024 px)."""
    rng = np.random.default_rng(13)
    data = rng.integers(0, 3000, (2100, 600)).astype(np.uint16)
    data[100:180, 200:300] += 9000  # bright blocks for the prompts to land on
    data[950:1130, 250:330] += 9000  # across the first tiles' overlap
    path = tmp_path / "slide.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    return path, data


def test_a_large_plane_embedded_on_the_cluster_opens_tile_by_tile_with_no_encoder_run(
    dask_client, checkpoint, large, tmp_path, capsys
):
    from napari_promptseg.core.workflows.tiling import TiledImage

    path, data = large
    here, there = tmp_path / "here.zarr", tmp_path / "there.zarr"
    common = ["--checkpoint", checkpoint, *MODEL]
    assert cli("embed", path, *common, "--store", here) == 0
    assert "slide.tif: 1 plane(s) (3 tiles), 3 computed, 0 already stored" in capsys.readouterr().out  # fmt: skip
    address = dask_client.scheduler.address
    assert cli("embed", path, *common, "--store", there, "--scheduler", address) == 0
    out, err = capsys.readouterr()
    assert "running 3 task(s)" in err and "(3 tiles), 3 computed" in out
    # what the napari session does with a plane this large: a TiledImage of the plane as
    # napari converts it, looking each tile up in the store
    (_label, rgb), = planes_of(data)  # fmt: skip
    model = load_model(checkpoint=checkpoint, model_type="vit_tiny")
    session = PromptSegmenter.from_model(model, store=ZarrEmbeddingStore(there))
    tiled = TiledImage(session, rgb)
    assert all(tiled.cached(tile) is not None for tile in tiled.grid)
    result = tiled.predict(Prompts.from_points([[1000.0, 290.0]]))
    assert session.encoder_calls == 0 and result.masks.shape[1:] == (2100, 600)
    # the cluster's entries are the in-process run's, bit for bit
    mine = ZarrEmbeddingStore(here)
    for tile in tiled.grid:
        key = tiled.key(tile)
        assert torch.equal(mine.load(key).features, ZarrEmbeddingStore(there).load(key).features)


def test_prompts_on_a_large_plane_go_through_tiles_as_in_napari(
    dask_client, checkpoint, large, tmp_path, capsys
):
    from napari_promptseg.core.workflows.tiling import TiledImage

    path, data = large
    points = tmp_path / "points.csv"
    points.write_text("object,row,col\ncell,140,250\nband,1040,290\nband,1100,300\nlast,2050,500\n")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("object,row0,col0,row1,col1\nbox,1500,100,1600,220\n")
    common = ["--checkpoint", checkpoint, *MODEL, "--points", points, "--boxes", boxes]
    assert cli("segment", path, "-o", tmp_path / "here.tif", *common) == 0
    address = dask_client.scheduler.address
    there = tmp_path / "there.ome.zarr"
    assert cli("segment", path, "-o", there, *common, "--scheduler", address) == 0
    assert "running 3 task(s)" in capsys.readouterr().err  # one per routing tile
    labels = tifffile.imread(tmp_path / "here.tif")
    np.testing.assert_array_equal(read_ome_zarr_labels(there), labels)
    assert read_objects_csv(tmp_path / "here_objects.csv") == read_objects_csv(tmp_path / "there_objects.csv")  # fmt: skip
    # each object is what the napari session's TiledImage gives, painted in table order
    (_label, rgb), = planes_of(data)  # fmt: skip
    engine = PromptSegmenter.from_model(load_model(checkpoint=checkpoint, model_type="vit_tiny"))
    tiled = TiledImage(engine, rgb)
    expected = np.zeros(labels.shape, labels.dtype)
    objects = [
        Prompts.from_points([[140, 250]]),
        Prompts.from_points([[1040, 290], [1100, 300]]),
        Prompts.from_points([[2050, 500]]),
        Prompts(box=np.array([1500, 100, 1600, 220])),
    ]
    for label_id, prompts in enumerate(objects, start=1):
        mask = tiled.predict(prompts).mask
        expected[mask & (expected == 0)] = label_id
    np.testing.assert_array_equal(labels, expected)
    assert all((labels == i).any() for i in range(1, 5))


def test_ctrl_c_on_the_cluster_writes_no_output(dask_client, checkpoint, tmp_path):
    from interruptkit import press_ctrl_c, start_slow_command, wait_for

    data = np.random.default_rng(17).integers(0, 4000, (10, 40, 56)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", data, photometric="minisblack")
    command = start_slow_command(
        tmp_path, "everything", "stack.tif", "-o", "labels.ome.zarr", "--checkpoint", checkpoint,
        *MODEL, *FAST, "--scheduler", dask_client.scheduler.address,
    )  # fmt: skip
    # wait until planes are being written into the hidden staging copy of the output
    wait_for(lambda: any(tmp_path.glob(".labels.ome.zarr.*.part/staged/c")), command)
    status, err = press_ctrl_c(command)
    assert status == 130 and "promptseg: interrupted; nothing more was written." in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow_promptseg.py", "stack.tif"]


def test_everything_on_a_folder_one_task_per_image(dask_client, checkpoint, tmp_path, capsys):
    images = tmp_path / "screen"
    images.mkdir()
    rng = np.random.default_rng(21)
    tifffile.imwrite(images / "a.tif", rng.integers(0, 255, (40, 56)).astype(np.uint8))
    stack = rng.integers(0, 4000, (2, 40, 56)).astype(np.uint16)
    tifffile.imwrite(images / "b.tif", stack, photometric="minisblack")
    (images / "notes.txt").write_text("not an image")
    common = ["--checkpoint", checkpoint, *MODEL, *FAST]
    assert cli("everything", images, "-o", tmp_path / "here", *common) == 1  # notes skipped
    assert "skipped notes.txt" in capsys.readouterr().err
    address = dask_client.scheduler.address
    there = ["-o", tmp_path / "there", "--format", "ome.zarr", "--scheduler", address]
    assert cli("everything", images, *there, *common) == 1
    assert "running 3 task(s)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "there").iterdir()) == [
        "a.ome.zarr", "a_objects.csv", "b.ome.zarr", "b_objects.csv",
    ]  # fmt: skip
    for name in ("a", "b"):  # each as `promptseg everything FILE` writes it
        assert cli("everything", images / f"{name}.tif", "-o", tmp_path / f"{name}.tif", *common) == 0  # fmt: skip
        single = tifffile.imread(tmp_path / f"{name}.tif")
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "here" / f"{name}.tif"), single)
        np.testing.assert_array_equal(read_ome_zarr_labels(tmp_path / "there" / f"{name}.ome.zarr"), single)  # fmt: skip
        table = read_objects_csv(tmp_path / f"{name}_objects.csv")
        assert read_objects_csv(tmp_path / "there" / f"{name}_objects.csv") == table
    assert single.shape == (2, 40, 56) and single.max() > 0
    # -o must name a folder here
    assert cli("everything", images, "-o", tmp_path / "x.tif", *common) == 2
    assert "-o names the folder" in capsys.readouterr().err
