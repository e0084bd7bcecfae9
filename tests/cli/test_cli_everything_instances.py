"""``promptseg everything --mode ais|apg|auto``: the command equals the engine.

A random-weight micro-sam checkpoint (``model_state`` + ``decoder_state``, vit_t) whose
decoder finds a few dozen objects (tests/core/workflows/instances/microsam_kit.py); the
engine itself is held equal to micro-sam by the fidelity tests beside that kit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_promptseg.cli import main
from napari_promptseg.core.storage.export import read_objects_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "workflows" / "instances"))
from microsam_kit import make_checkpoint, nuclei_stack

pytestmark = pytest.mark.slow  # a real vit_t encoder on 300 x 517 planes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pytest.importorskip("mobile_sam")
    folder = tmp_path_factory.mktemp("ais")
    checkpoint = folder / "microsam_random.pt"
    make_checkpoint(checkpoint)
    stack = folder / "stack.tif"
    tifffile.imwrite(stack, nuclei_stack(planes=2), photometric="minisblack")
    image = folder / "image.tif"
    tifffile.imwrite(image, nuclei_stack()[0])
    return checkpoint, stack, image


@pytest.fixture(scope="module")
def engine(files):
    from napari_promptseg.core.workflows.instances import InstanceSegmenter

    return InstanceSegmenter.load(checkpoint=files[0], model_type="vit_t", device="cpu")


def _planes(path):
    from napari_promptseg.core.workflows.distributed.sources import ImageSource

    planes = ImageSource.create(path).resolved().planes()
    return [planes.rgb(label) for label in planes.labels]


def _run(files, image, out, *extra):
    argv = ["everything", str(image), "--checkpoint", str(files[0]), "--model-type", "vit_t"]
    assert main([*argv, "-o", str(out), *extra]) == 0
    return tifffile.imread(out), read_objects_csv(out.with_name(f"{out.stem}_objects.csv"))


@pytest.fixture(scope="module")
def merged(files, tmp_path_factory):
    """The stack through ``--mode auto`` (the checkpoint has a decoder: AIS), in this process."""
    return _run(files, files[1], tmp_path_factory.mktemp("merged") / "ais.tif")


def test_ais_on_a_stack_is_merged_across_z(files, engine, merged):
    labels, rows = merged
    expected = engine.ais_stack(np.stack(_planes(files[1]))).labels
    ids = np.unique(expected[expected != 0])
    assert len(ids) >= 5  # the random decoder finds objects
    # the same partition (the command numbers the objects 1..N)
    pairs = {(int(a), int(b)) for a, b in zip(labels.ravel(), expected.ravel(), strict=True)}
    assert len(pairs) == len(ids) + 1 == len(np.unique(labels))
    assert [int(r["id"]) for r in rows] == list(range(1, len(ids) + 1))
    assert {r["mode"] for r in rows} == {"ais"}  # --mode auto chose AIS: there is a decoder
    for row in rows:
        assert int(row["area"]) == np.count_nonzero(labels == int(row["id"]))
        assert 0.0 <= float(row["foreground"]) <= 1.0
    assert any("-" in r["slices"] for r in rows)  # objects spanning several planes


def test_ais_without_merging_and_apg_equal_the_engine(tmp_path, files, engine):
    labels, rows = _run(files, files[1], tmp_path / "planes.tif", "--mode", "ais", "--no-merge")
    offset = 0
    for z, rgb in enumerate(_planes(files[1])):
        plane = engine.ais(rgb)
        shifted = np.where(plane > 0, plane + offset, 0)
        np.testing.assert_array_equal(labels[z], shifted)
        offset += int(plane.max())
    assert len(rows) == offset
    apg, rows = _run(
        files, files[2], tmp_path / "apg.tif", "--mode", "apg", "--nms-threshold", "0.9"
    )
    from napari_promptseg.core.workflows.instances import APGParams

    expected = engine.apg(_planes(files[2])[0], APGParams(nms_threshold=0.9))
    assert len(np.unique(expected)) > 5
    pairs = {(int(a), int(b)) for a, b in zip(apg.ravel(), expected.ravel(), strict=True)}
    assert len(pairs) == len(np.unique(expected)) == len(rows) + 1
    assert {r["mode"] for r in rows} == {"apg"}


def test_apg_mask_options_equal_the_engine(tmp_path, files, engine, capsys):
    from napari_promptseg.core.workflows.instances import APGParams

    flags = ("--mode", "apg", "--mask-threshold", "auto")
    labels, rows = _run(files, files[2], tmp_path / "auto.tif", *flags)
    plane = _planes(files[2])[0]
    expected = engine.apg(plane, APGParams(mask_threshold="auto"))
    assert len(np.unique(expected)) > 5 and (expected != engine.apg(plane)).any()
    pairs = {(int(a), int(b)) for a, b in zip(labels.ravel(), expected.ravel(), strict=True)}
    assert len(pairs) == len(np.unique(expected)) == len(rows) + 1
    # a threshold that is neither a number nor auto is refused by name before any work
    with pytest.raises(SystemExit) as info:
        main(
            ["everything", str(files[2]), "--mask-threshold", "otsu", "-o", str(tmp_path / "x.tif")]
        )
    assert info.value.code == 2
    assert "'otsu' is neither a number" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()


def test_modes_a_model_does_not_have(tmp_path, files, checkpoint, capsys):
    image = files[2]
    base = ["everything", str(image), "--checkpoint", str(checkpoint), "--model-type", "vit_tiny"]
    assert main([*base, "--mode", "ais", "-o", str(tmp_path / "a.tif")]) == 2
    err = capsys.readouterr().err
    assert "no instance decoder" in err and "'grid'" in err
    assert not (tmp_path / "a.tif").exists()
    # auto: the tiny model has no decoder, so the grid runs
    assert main([*base, "--points-per-side", "4", "-o", str(tmp_path / "b.tif")]) == 0
    assert "segment everything (grid)" in capsys.readouterr().err


def test_ais_on_dask_equals_one_process(tmp_path, files, merged):
    pytest.importorskip("distributed")
    here, _ = merged
    # one worker gets this process's thread count: the same float sums, the same labels (with
    # fewer threads per worker a handful of borderline pixels of the watershed may flip)
    there, _ = _run(files, files[1], tmp_path / "there.tif", "--scheduler", "local:1")
    np.testing.assert_array_equal(here, there)


def test_a_folder_in_ais_mode(tmp_path, files, engine):
    import shutil

    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(files[2], folder / "a.tif")
    (folder / "notes.txt").write_text("not an image")
    argv = ["everything", str(folder), "--checkpoint", str(files[0]), "--model-type", "vit_t"]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 1  # one file skipped
    labels = tifffile.imread(tmp_path / "out" / "a.tif")
    expected = engine.ais(_planes(files[2])[0])
    np.testing.assert_array_equal(labels, expected)
    rows = read_objects_csv(tmp_path / "out" / "a_objects.csv")
    assert len(rows) == int(expected.max()) and {r["mode"] for r in rows} == {"ais"}
