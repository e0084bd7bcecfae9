"""The napari writer for OME-Zarr: picked by npe2 for a .zarr name, table beside the labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_promptseg._writer_zarr import write_labels_ome_zarr_layer
from napari_promptseg.core.storage.export import read_objects_csv
from napari_promptseg.core.storage.ome_zarr import ome_metadata, read_ome_zarr_labels


def test_labels_and_features_written_as_ome_zarr(tmp_path):
    labels = np.zeros((2, 16, 20), np.int32)
    labels[0, 2:6, 2:6] = 1
    labels[1, 8:12, 3:9] = 3
    features = pd.DataFrame({"id": [1, 2, 3], "predicted_iou": [0.9, 0.8, 0.7]})  # 2 was undone
    written = write_labels_ome_zarr_layer(
        str(tmp_path / "cells.ome.zarr"), labels, {"features": features, "name": "cells"}
    )
    assert written == [str(tmp_path / "cells.ome.zarr"), str(tmp_path / "cells_objects.csv")]
    np.testing.assert_array_equal(read_ome_zarr_labels(written[0]), labels)
    assert [r["id"] for r in read_objects_csv(written[1])] == ["1", "3"]
    assert ome_metadata(written[0])["multiscales"][0]["name"] == "cells"


def test_npe2_picks_it_for_zarr_names():
    npe2 = pytest.importorskip("npe2")
    manager = npe2.PluginManager()  # a private one: napari's test plugin mocks the global
    manager.register(npe2.PluginManifest.from_distribution("napari-promptseg"))
    writer, _path = manager.get_writer("x/l.ome.zarr", ["labels"], "napari-promptseg")
    assert writer.command == "napari-promptseg.write_labels_ome_zarr"
    command = manager.get_command(writer.command)
    assert command.python_name == "napari_promptseg._writer_zarr:write_labels_ome_zarr_layer"
