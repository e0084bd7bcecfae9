"""Cell Tracking Challenge folders and GEFF graphs (core.workflows.tracking.ctc, .geff_io)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from tracking_stacks import PARENTS, T, centers, lineage_stack, stack_3d

from napari_promptseg.core.errors import ExportError
from napari_promptseg.core.workflows.tracking.ctc import mask_name, read_ctc, write_ctc
from napari_promptseg.core.workflows.tracking.geff_io import read_geff, write_geff
from napari_promptseg.core.workflows.tracking.lineage import Lineage, LineageError, Track

geff = pytest.importorskip("geff")

# track 5's gap (absent on frames 2, 3) makes its frames 4..6 a CTC track of their own, id 6
RES_TRACK = "1 0 3 0\n2 4 6 1\n3 4 6 1\n4 0 2 0\n5 0 1 0\n6 4 6 5\n"


@pytest.fixture
def tracked():
    labels = lineage_stack()
    return labels, Lineage.from_labels(labels, PARENTS)


def test_write_ctc_writes_uint16_masks_and_res_track(tmp_path, tracked):
    labels, lineage = tracked
    paths = write_ctc(tmp_path / "01_RES", labels, lineage)
    names = [f"mask{t:03d}.tif" for t in range(T)] + ["res_track.txt"]
    assert [p.name for p in paths] == names
    assert sorted(p.name for p in (tmp_path / "01_RES").iterdir()) == names
    assert (tmp_path / "01_RES" / "res_track.txt").read_text() == RES_TRACK
    for t in range(T):
        mask = tifffile.imread(tmp_path / "01_RES" / f"mask{t:03d}.tif")
        assert mask.dtype == np.uint16 and mask.shape == labels.shape[1:]
        expected = labels[t].copy()
        if t >= 4:
            expected[expected == 5] = 6  # the later run of the gapped track
        np.testing.assert_array_equal(mask, expected)
    assert [p.name for p in tmp_path.iterdir()] == ["01_RES"]  # no staging folder left


def test_res_track_matches_the_lineage_table_where_there_is_no_gap(tmp_path, tracked):
    labels, lineage = tracked
    write_ctc(tmp_path / "res", labels, lineage)
    lines = (tmp_path / "res" / "res_track.txt").read_text().splitlines()
    table = {
        " ".join(str(row[c]) for c in row) for row in lineage.to_rows() if row["track_id"] != 5
    }
    assert table <= set(lines)


def test_read_ctc_gives_back_the_labels_and_lineage_gaps_merged(tmp_path, tracked):
    labels, lineage = tracked
    write_ctc(tmp_path / "res", labels, lineage)
    back, back_lineage = read_ctc(tmp_path / "res")
    np.testing.assert_array_equal(back, labels)
    assert back_lineage == lineage


def test_a_gapped_track_that_divides_hands_its_daughters_to_its_last_run(tmp_path):
    labels = lineage_stack()
    labels[2:4][labels[2:4] == 1] = 0
    labels[3][labels[0] == 1] = 1  # track 1: frames 0, 1, (gap), 3, then divides
    lineage = Lineage.from_labels(labels, PARENTS)
    write_ctc(tmp_path / "res", labels, lineage)
    lines = (tmp_path / "res" / "res_track.txt").read_text().splitlines()
    assert lines[:3] == ["1 0 1 0", "2 4 6 6", "3 4 6 6"]
    assert "6 3 3 1" in lines and "7 4 6 5" in lines
    back, back_lineage = read_ctc(tmp_path / "res")
    np.testing.assert_array_equal(back, labels)
    assert back_lineage == lineage


def test_write_ctc_into_an_empty_folder_and_of_a_zyx_stack(tmp_path):
    (tmp_path / "res").mkdir()
    labels = stack_3d()
    write_ctc(tmp_path / "res", labels, Lineage.from_labels(labels, PARENTS))
    assert tifffile.imread(tmp_path / "res" / "mask002.tif").shape == (5, 32, 32)
    back, back_lineage = read_ctc(tmp_path / "res")
    np.testing.assert_array_equal(back, labels)
    assert back_lineage.to_ctc_lines() == ["1 0 1 0", "2 2 3 1", "3 2 3 1"]


def test_write_ctc_refuses_a_non_empty_folder_and_leaves_it_untouched(tmp_path, tracked):
    folder = tmp_path / "res"
    folder.mkdir()
    (folder / "mask000.tif").write_bytes(b"earlier result")
    with pytest.raises(ExportError, match="the folder is not empty"):
        write_ctc(folder, *tracked)
    assert [p.name for p in folder.iterdir()] == ["mask000.tif"]
    assert (folder / "mask000.tif").read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["res"]


def test_write_ctc_refuses_a_lineage_that_does_not_describe_the_labels(tmp_path, tracked):
    labels, lineage = tracked
    with pytest.raises(LineageError, match=r"track 4 spans frames 0\.\.5"):
        write_ctc(tmp_path / "res", labels, lineage.with_tracks(Track(4, 0, 5)))
    assert list(tmp_path.iterdir()) == []


def test_mask_names_have_four_digits_from_1000_frames():
    assert mask_name(7, 999) == "mask007.tif"
    assert mask_name(7, 1000) == "mask0007.tif"


def test_read_ctc_names_a_track_whose_frames_differ_from_the_masks(tmp_path, tracked):
    write_ctc(tmp_path / "res", *tracked)
    (tmp_path / "res" / "res_track.txt").write_text(RES_TRACK.replace("4 0 2 0", "4 0 3 0"))
    with pytest.raises(LineageError, match=r"track 4 on frames 0\.\.3 but the masks show it on"):
        read_ctc(tmp_path / "res")
    (tmp_path / "res" / "mask003.tif").unlink()
    with pytest.raises(LineageError, match=r"no mask for frame\(s\) \[3\]"):
        read_ctc(tmp_path / "res")


def test_ctc_folder_reads_with_geffs_own_ctc_converter(tmp_path, tracked):
    pytest.importorskip("dask")
    pytest.importorskip("skimage")
    from geff.convert import from_ctc_to_geff

    write_ctc(tmp_path / "res", *tracked)
    from_ctc_to_geff(tmp_path / "res", tmp_path / "converted.geff")
    graph, _ = geff.read(str(tmp_path / "converted.geff"))
    assert graph.number_of_nodes() == 18 and graph.number_of_edges() == 15


def test_write_geff_has_a_node_per_track_frame_and_the_track_and_division_edges(tmp_path, tracked):
    labels, lineage = tracked
    path = write_geff(tmp_path / "tracks.geff", labels, lineage, scale=(5.0, 0.5, 0.5))
    graph, metadata = geff.read(str(path))
    assert graph.number_of_nodes() == 18  # 4 + 3 + 3 + 3 + 5
    assert graph.number_of_edges() == 15  # 3 + 2 + 2 + 2 + 4 in tracks, 2 to the daughters
    assert [(a.name, a.type, a.scale) for a in metadata.axes] == [
        ("t", "time", 5.0),
        ("y", "space", 0.5),
        ("x", "space", 0.5),
    ]
    nodes = {(p["track_id"], p["t"]): (node, p) for node, p in graph.nodes(data=True)}
    assert set(nodes) == {(k, t) for k, frames in centers().items() for t in frames}
    for (track_id, t), (_, props) in nodes.items():
        assert (props["y"], props["x"]) == pytest.approx(centers()[track_id][t])
        assert props["seg_id"] == track_id
        assert props["area"] == int((labels[t] == track_id).sum())
    edges = {
        (
            graph.nodes[a]["track_id"],
            graph.nodes[a]["t"],
            graph.nodes[b]["track_id"],
            graph.nodes[b]["t"],
        )
        for a, b in graph.edges()
    }
    assert {(1, 3, 2, 4), (1, 3, 3, 4), (5, 1, 5, 4)} <= edges  # divisions; across the gap
    assert read_geff(path) == lineage


def test_write_geff_of_a_zyx_stack_has_z(tmp_path):
    labels = stack_3d()
    path = write_geff(
        tmp_path / "t.geff",
        labels,
        Lineage.from_labels(labels, PARENTS),
        axis_names=("t", "z", "y", "x"),
    )
    graph, metadata = geff.read(str(path))
    assert [a.name for a in metadata.axes] == ["t", "z", "y", "x"]
    assert graph.number_of_nodes() == 6 and graph.number_of_edges() == 5
    first = next(p for _, p in graph.nodes(data=True) if p["track_id"] == 1 and p["t"] == 0)
    assert (first["z"], first["y"], first["x"]) == pytest.approx((2.0, 12.5, 12.5))


def test_write_geff_refuses_an_existing_path_and_mismatched_axes(tmp_path, tracked):
    (tmp_path / "taken.geff").mkdir()
    with pytest.raises(ExportError, match="it exists"):
        write_geff(tmp_path / "taken.geff", *tracked)
    with pytest.raises(LineageError, match=r"axis_names \('t', 'z', 'y', 'x'\) do not match"):
        write_geff(tmp_path / "t.geff", *tracked, axis_names=("t", "z", "y", "x"))
    assert [p.name for p in tmp_path.iterdir()] == ["taken.geff"]
