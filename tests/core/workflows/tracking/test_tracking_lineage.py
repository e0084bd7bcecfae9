"""The lineage graph as plain data (core.workflows.tracking.lineage), without Qt."""

from __future__ import annotations

import numpy as np
import pytest
from tracking_stacks import PARENTS, T, centers, lineage_stack, stack_3d

from napari_promptseg.core.errors import PromptSegError
from napari_promptseg.core.workflows.tracking.lineage import Lineage, LineageError, Track

ROWS = [
    {"track_id": 1, "first_frame": 0, "last_frame": 3, "parent": 0},
    {"track_id": 2, "first_frame": 4, "last_frame": 6, "parent": 1},
    {"track_id": 3, "first_frame": 4, "last_frame": 6, "parent": 1},
    {"track_id": 4, "first_frame": 0, "last_frame": 2, "parent": 0},
    {"track_id": 5, "first_frame": 0, "last_frame": 6, "parent": 0},
]


def test_from_labels_gives_the_frames_and_parents_of_every_track():
    lineage = Lineage.from_labels(lineage_stack(), PARENTS)
    assert lineage.to_rows() == ROWS
    assert lineage.tracks[5] == Track(5, 0, 6, 0)  # the gap is inside first..last
    assert lineage.children_of(1) == [2, 3]
    assert lineage.parent_of(3) == 1 and lineage.parent_of(4) == 0


def test_ctc_lines_are_label_begin_end_parent():
    lineage = Lineage.from_labels(lineage_stack(), PARENTS)
    assert lineage.to_ctc_lines() == ["1 0 3 0", "2 4 6 1", "3 4 6 1", "4 0 2 0", "5 0 6 0"]


def test_rows_round_trip_also_from_csv_strings():
    lineage = Lineage.from_labels(lineage_stack(), PARENTS)
    as_strings = [{key: str(value) for key, value in row.items()} for row in ROWS]
    assert Lineage.from_rows(ROWS) == lineage
    assert Lineage.from_rows(as_strings) == lineage


def test_tracks_layer_data_holds_each_frames_centroid_and_the_division_graph():
    labels = lineage_stack()
    data, graph = Lineage.from_labels(labels, PARENTS).tracks_layer_data(labels)
    expected = [
        [track_id, t, row, col]
        for track_id, frames in sorted(centers().items())
        for t, (row, col) in sorted(frames.items())
    ]
    assert data.shape == (18, 4)
    np.testing.assert_allclose(data, expected, atol=1e-9)
    assert graph == {2: [1], 3: [1]}


def test_tracks_layer_data_of_a_zyx_stack_has_z_y_x_columns():
    labels = stack_3d()
    data, graph = Lineage.from_labels(labels, PARENTS).tracks_layer_data(labels)
    assert data.shape == (6, 5)
    np.testing.assert_allclose(data[0], [1, 0, 2.0, 12.5, 12.5])
    np.testing.assert_allclose(data[2], [2, 2, 1.5, 4.5, 4.5])
    assert graph == {2: [1], 3: [1]}


def test_divide_returns_a_new_lineage_and_leaves_the_old_one():
    labels = lineage_stack()
    plain = Lineage.from_labels(labels)
    divided = plain.divide(1, [2, 3])
    assert divided == Lineage.from_labels(labels, PARENTS)
    assert plain.children_of(1) == []


def test_lineage_error_is_a_promptseg_value_error():
    assert issubclass(LineageError, PromptSegError) and issubclass(LineageError, ValueError)


@pytest.mark.parametrize(
    ("daughters", "named"),
    [
        ([2], "track 1 got 2"),
        ([2, 2], "track 1 got 2, 2"),
        ([2, 3, 5], "track 1 got 2, 3, 5"),
        ([2, 99], "track 99 is not in the lineage"),
        ([4, 2], "daughter 4 starts at frame 0, on or before the last frame of its parent 1 (3)"),
    ],
)
def test_divide_refuses_bad_daughters_naming_them(daughters, named):
    lineage = Lineage.from_labels(lineage_stack())
    with pytest.raises(LineageError, match=named.replace("(", r"\(").replace(")", r"\)")):
        lineage.divide(1, daughters)


def test_divide_refuses_a_daughter_of_another_parent_and_a_second_division():
    lineage = Lineage.from_labels(lineage_stack(), PARENTS)
    with pytest.raises(LineageError, match="track 2 is already a daughter of track 1"):
        lineage.divide(4, [2, 5])
    extra = Lineage([*lineage.tracks.values(), Track(6, 5, 6), Track(7, 5, 6)])
    with pytest.raises(LineageError, match="track 1 already divides into 2, 3"):
        extra.divide(1, [6, 7])


@pytest.mark.parametrize(
    ("tracks", "message"),
    [
        ([Track(1, 0, 3), Track(2, 4, 6, 1)], "track 1 has one daughter (2)"),
        (
            [Track(1, 0, 3), Track(2, 4, 6, 1), Track(3, 4, 6, 1), Track(4, 4, 5, 1)],
            "track 1 has 3 daughters (2, 3, 4)",
        ),
        ([Track(1, 0, 3, 2), Track(2, 4, 6, 1)], "cycle: 1 -> 2 -> 1"),
        ([Track(7, 0, 3, 7)], "cycle: 7 -> 7"),
        (
            [Track(1, 0, 3), Track(2, 3, 6, 1), Track(3, 4, 6, 1)],
            "daughter 2 starts at frame 3, on or before the last frame of its parent 1 (3)",
        ),
        ([Track(1, 0, 3, 9)], "track 1 has parent 9, an unknown id"),
        ([Track(1, 5, 3)], "track 1 has id/frames 5..3"),
    ],
)
def test_validate_names_the_ids_at_fault(tracks, message):
    escaped = message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(LineageError, match=escaped):
        Lineage(tracks).validate()


def test_validate_against_labels_names_gaps_unknown_ids_and_wrong_frames():
    labels = lineage_stack()
    lineage = Lineage.from_labels(labels, PARENTS)
    lineage.validate(labels)  # gaps are allowed by default
    with pytest.raises(LineageError, match=r"track 5 is missing on frame\(s\) 2, 3"):
        lineage.validate(labels, allow_gaps=False)
    with pytest.raises(LineageError, match=r"label id\(s\) 5 in the labels are not tracks"):
        lineage.with_tracks(remove=[5]).validate(labels)
    with pytest.raises(
        LineageError, match=r"track 4 spans frames 0\.\.3 but the labels show it on 0\.\.2"
    ):
        lineage.with_tracks(Track(4, 0, 3)).validate(labels)
    with pytest.raises(LineageError, match=r"track\(s\) 8 are not in the labels"):
        lineage.with_tracks(Track(8, 0, 1)).validate(labels)


def test_from_labels_refuses_parents_of_ids_not_in_the_labels():
    with pytest.raises(LineageError, match=r"track\(s\) 9 have a parent"):
        Lineage.from_labels(lineage_stack(), {9: 1})


def test_an_empty_stack_has_an_empty_lineage_and_no_tracks_rows():
    labels = np.zeros((T, 8, 8), np.uint16)
    lineage = Lineage.from_labels(labels)
    data, graph = lineage.tracks_layer_data(labels)
    assert lineage.to_rows() == [] and data.shape == (0, 4) and graph == {}
