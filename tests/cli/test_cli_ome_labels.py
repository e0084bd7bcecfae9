"""``--into-image NAME``: the command line writes its labels into an OME-Zarr image's
labels/ group, where ome-zarr-py finds them next to the image; the image is not touched."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_promptseg.cli import main
from napari_promptseg.core.storage.export import read_objects_csv

pytest.importorskip("ome_zarr.writer")
from ome_zarr.reader import Label
from omezarrkit import checksums, read_nodes, write_image

FAST = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]


def test_everything_and_segment_write_into_the_image(checkpoint, tmp_path, caplog, capsys):
    data = np.random.default_rng(3).integers(0, 4000, (2, 45, 61)).astype(np.uint16)
    image = write_image(tmp_path / "cells.ome.zarr", data, axes="zyx")
    before = checksums(image)
    model = ["--checkpoint", str(checkpoint), "--model-type", "vit_tiny"]
    code = main(["everything", str(image), *model, *FAST, "--into-image", "auto"])
    assert code == 0, capsys.readouterr().err
    points = tmp_path / "points.csv"
    points.write_text("object,z,row,col\n1,0,20,30\n2,1,10,10\n")
    code = main(["segment", str(image), *model, "--points", str(points), "--into-image", "clicked"])
    assert code == 0, capsys.readouterr().err
    assert checksums(image) == before  # no file of the image was written

    nodes = read_nodes(image, "0.5", caplog)
    labels = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert sorted(str(n.zarr.path).rstrip("/").split("/")[-1] for n in labels) == [
        "auto",
        "clicked",
    ]
    clicked = zarr.open_array(str(image / "labels" / "clicked" / "0"), mode="r")[:]
    assert clicked.shape == data.shape and set(np.unique(clicked)) <= {0, 1, 2}
    rows = read_objects_csv(tmp_path / "cells_clicked_objects.csv")
    assert sorted(int(r["id"]) for r in rows) == sorted(set(np.unique(clicked)) - {0})
    assert (tmp_path / "cells_auto_objects.csv").exists()

    # the same name again is refused before the model loads, and nothing changes
    code = main(["segment", str(image), *model, "--points", str(points), "--into-image", "clicked"])
    assert code == 2 and "clicked" in capsys.readouterr().err
    plain = tmp_path / "plain.tif"
    import tifffile

    tifffile.imwrite(plain, data)
    code = main(["everything", str(plain), *model, *FAST, "--into-image", "x"])
    assert code == 2 and "OME-Zarr" in capsys.readouterr().err
