"""``promptseg track``: prompts on some frames → objects through the stack; tif, CTC, GEFF.

SAM 2.1 (random hiera_t weights): the labels equal :class:`MemoryTracker`'s masks for the
same prompts, which the fidelity test holds equal to ``SAM2VideoPredictor``'s. The tiny SAM
runs our box-and-point propagation for the other families, in this process and on Dask.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.workflows.tracking.ctc import ctc_tracks, read_ctc
from napari_promptseg.core.workflows.tracking.lineage import Lineage

T, H, W = 4, 121, 163


def _stack(rgb: bool = True) -> np.ndarray:
    """A bright disc drifting right over noise: (T, H, W, 3) uint8 (or (T, H, W))."""
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[:H, :W]
    frames = []
    for t in range(T):
        frame = rng.integers(0, 50, (H, W), dtype=np.uint8)
        frame[(rows - 60) ** 2 + (cols - 40 - 12 * t) ** 2 < 22**2] = 210
        frames.append(np.repeat(frame[..., None], 3, axis=-1) if rgb else frame)
    return np.stack(frames)


@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, _stack(rgb=False), photometric="minisblack")
    return path


def _points(tmp_path, text="object,t,row,col,label\n1,0,60,40,1\n2,2,20,140,1\n", name="points"):
    path = tmp_path / f"{name}.csv"
    path.write_text(text)
    return path


def _tiny(checkpoint):
    return ["--checkpoint", str(checkpoint), "--model-type", "vit_tiny"]


@pytest.mark.slow  # four frames through a real hiera_t encoder
def test_track_with_sam2_memory_equals_the_memory_tracker(tmp_path, capsys):
    pytest.importorskip("sam2", reason="SAM 2.1 needs the [sam2] extra")
    from familykit import sam2_reference, save_sam2

    from napari_promptseg.core import Prompts, PromptSegmenter
    from napari_promptseg.core.models import load_model
    from napari_promptseg.core.storage.stores import open_embedding_store
    from napari_promptseg.core.workflows.tracking.memory import MemoryTracker

    stack = _stack()
    image = tmp_path / "movie.tif"
    tifffile.imwrite(image, stack, photometric="rgb")
    checkpoint = save_sam2(sam2_reference(seed=1), tmp_path / "sam2.1_random.pt")
    points = _points(tmp_path, "object,t,row,col,label\n1,0,60,40,1\n1,2,60,64,1\n")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("object,t,row0,col0,row1,col1\ncell,1,10,100,50,150\n")
    store = tmp_path / "store"
    model = ["--checkpoint", str(checkpoint), "--model-type", "sam2.1_hiera_t"]
    out = tmp_path / "res"
    code = main(["track", str(image), *model, "--points", str(points), "--boxes", str(boxes),
                 "--store", str(store), "-o", str(out)])  # fmt: skip
    assert code == 0
    said = capsys.readouterr().out
    assert "(memory)" in said and f"wrote {out}" in said

    # the same prompts through MemoryTracker, frames read back from the store (not re-encoded)
    segmenter = PromptSegmenter.from_model(
        load_model(checkpoint=checkpoint, device="cpu"), store=open_embedding_store(store)
    )
    tracker = MemoryTracker(segmenter, lambda i: stack[i], T)
    tracker.add_prompts(0, 1, Prompts.from_points([(60.0, 40.0)]))
    tracker.add_prompts(2, 1, Prompts.from_points([(60.0, 64.0)]))
    tracker.add_prompts(1, 2, Prompts(box=np.array([10.0, 100.0, 50.0, 150.0])))
    run = tracker.propagate()
    assert segmenter.encoder_calls == 0
    expected = np.zeros((T, H, W), np.uint32)
    for obj_id in (1, 2):  # painted in id order, never over an earlier object
        for frame, result in run.masks.get(obj_id, {}).items():
            expected[frame][result.mask & (expected[frame] == 0)] = obj_id
    labels, lineage = read_ctc(out)
    np.testing.assert_array_equal(labels, expected)
    assert lineage == Lineage.from_labels(expected)
    # res_track.txt is the lineage table ("id first last parent"; a track with a gap is
    # split into linked CTC tracks)
    _, ctc = ctc_tracks(expected, Lineage.from_labels(expected))
    lines = [
        [int(v) for v in line.split()] for line in (out / "res_track.txt").read_text().splitlines()
    ]
    assert lines == [[t.id, t.first, t.last, t.parent] for t in ctc]

    # GEFF from the same store: no frame is encoded again, the graph opens with geff
    geff_path = tmp_path / "tracks.geff"
    code = main(["track", str(image), *model, "--points", str(points), "--boxes", str(boxes),
                 "--store", str(store), "-o", str(geff_path)])  # fmt: skip
    assert code == 0
    import geff

    graph, _ = geff.read(str(geff_path), backend="networkx")
    assert graph.number_of_nodes() == sum(len(np.unique(f)) - 1 for f in expected)


def test_track_box_point_writes_labels_objects_and_tracks(tmp_path, checkpoint, stack_file):
    from napari_promptseg.core import Prompts, PromptSegmenter
    from napari_promptseg.core.workflows.distributed.sources import ImageSource
    from napari_promptseg.testing import build_tiny_sam

    out = tmp_path / "labels.tif"
    code = main(["track", str(stack_file), *_tiny(checkpoint), "--points", str(_points(tmp_path)),
                 "-o", str(out)])  # fmt: skip
    assert code == 0
    labels = tifffile.imread(out)
    assert labels.shape == (T, H, W)
    rows = read_objects_csv(tmp_path / "labels_objects.csv")
    assert {r["method"] for r in rows} == {"box-point"}
    assert {(r["id"], r["frame"], r["prompted"]) for r in rows if r["prompted"] == "True"} == {
        ("1", "0", "True"),
        ("2", "2", "True"),
    }
    # the prompted frame holds the model's own mask for that click
    seg = PromptSegmenter(build_tiny_sam(seed=0), "tiny")
    rgb = ImageSource.create(stack_file).resolved().planes().rgb((0,))
    first = seg.segment(rgb, Prompts.from_points([(60.0, 40.0)]))
    np.testing.assert_array_equal(labels[0] == 1, first.masks[first.best])
    for row in rows:  # areas are what each object holds in the stack
        assert int(row["area"]) == np.count_nonzero(labels[int(row["frame"])] == int(row["id"]))
    tracks = read_objects_csv(tmp_path / "labels_tracks.csv")
    assert [{k: int(v) for k, v in r.items()} for r in tracks] == Lineage.from_labels(
        labels
    ).to_rows()


def test_track_refuses_bad_input_and_writes_nothing(tmp_path, checkpoint, stack_file, capsys):
    points = _points(tmp_path)
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((40, 50), np.uint8))
    four_d = tmp_path / "4d.tif"
    tifffile.imwrite(four_d, np.zeros((2, 3, 40, 50), np.uint8), photometric="minisblack")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    outside = _points(tmp_path, "object,t,row,col\n1,9,10,10\n", "outside")
    cases = [
        ([str(flat), "--points", str(points), "-o", str(tmp_path / "a.tif")],
         "a 2D image has no frames"),
        ([str(four_d), "--points", str(points), "-o", str(tmp_path / "b.tif")],
         "it has 2 leading axes"),
        ([str(stack_file), "--points", str(points), "-o", str(full)], "is not empty"),
        ([str(stack_file), "--points", str(outside), "-o", str(tmp_path / "c.tif")],
         "frame t=9 is outside the stack"),
        ([str(stack_file), "--points", str(points), "--method", "memory",
          "-o", str(tmp_path / "d.tif")], r"video memory (SAM 2.1)"),
        ([str(stack_file), "-o", str(tmp_path / "e.tif")], "give prompts with --points"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(["track", *argv[:1], *_tiny(checkpoint), *argv[1:]]) == 2
        assert message in capsys.readouterr().err, message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["movie.tif", "points.csv", "outside.csv", "flat.tif", "4d.tif", "full"]
    )
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


@pytest.mark.slow  # starts a local Dask cluster
def test_track_on_dask_equals_one_process(tmp_path, checkpoint, stack_file):
    pytest.importorskip("distributed")
    points = _points(tmp_path)
    here, there = tmp_path / "here.tif", tmp_path / "there.tif"
    assert main(["track", str(stack_file), *_tiny(checkpoint), "--points", str(points),
                 "-o", str(here)]) == 0  # fmt: skip
    assert main(["track", str(stack_file), *_tiny(checkpoint), "--points", str(points),
                 "--scheduler", "local:2", "-o", str(there)]) == 0  # fmt: skip
    np.testing.assert_array_equal(tifffile.imread(here), tifffile.imread(there))
