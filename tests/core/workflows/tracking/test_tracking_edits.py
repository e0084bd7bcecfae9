"""Editing tracks on label stacks (core.workflows.tracking.edits): pure numpy, no Qt."""

from __future__ import annotations

import numpy as np
import pytest
from tracking_stacks import PARENTS, RADII, disc, lineage_stack

from napari_promptseg.core.workflows.tracking.edits import (
    delete_track,
    mark_division,
    merge_tracks,
    propose_divisions,
    split_track,
)
from napari_promptseg.core.workflows.tracking.lineage import Lineage, LineageError, Track


def undivided():
    """What a tracker gives before divisions are marked: track 1 keeps its id on frames
    4..6, where its mask is both daughters' discs (two pieces)."""
    labels = lineage_stack()
    labels[np.isin(labels, [2, 3])] = 1
    return labels, Lineage.from_labels(labels)


def test_split_gives_later_frames_the_new_id_and_leaves_the_input_untouched():
    labels = lineage_stack()
    lineage = Lineage.from_labels(labels, PARENTS)
    before = labels.copy()
    edit = split_track(labels, lineage, 5, 4, 9)
    np.testing.assert_array_equal(labels, before)
    assert edit.frames == (4, 5, 6)
    np.testing.assert_array_equal(edit.labels[:4], before[:4])
    np.testing.assert_array_equal(edit.labels[4:] == 9, before[4:] == 5)
    assert not (edit.labels[4:] == 5).any()
    assert edit.lineage.tracks[5] == Track(5, 0, 1, 0)  # ends before its gap
    assert edit.lineage.tracks[9] == Track(9, 4, 6, 0)


def test_split_moves_the_daughters_to_the_new_track():
    labels = lineage_stack()
    edit = split_track(labels, Lineage.from_labels(labels, PARENTS), 1, 2, 9)
    assert edit.lineage.tracks[1] == Track(1, 0, 1, 0)
    assert edit.lineage.children_of(9) == [2, 3] and edit.lineage.children_of(1) == []


@pytest.mark.parametrize(
    ("track_id", "frame", "new_id", "message"),
    [
        (5, 4, 4, "id 4 is already used"),
        (5, 4, 0, "must be positive; got 0"),
        (4, 0, 9, "cannot split track 4 at frame 0: it spans frames 0..2"),
        (4, 3, 9, "cannot split track 4 at frame 3"),
        (8, 3, 9, "track 8 is not in the lineage"),
    ],
)
def test_split_refuses_naming_the_track(track_id, frame, new_id, message):
    labels = lineage_stack()
    with pytest.raises(LineageError, match=message):
        split_track(labels, Lineage.from_labels(labels, PARENTS), track_id, frame, new_id)


def test_merge_undoes_a_split():
    labels = lineage_stack()
    lineage = Lineage.from_labels(labels, PARENTS)
    split = split_track(labels, lineage, 1, 2, 9)
    merged = merge_tracks(split.labels, split.lineage, 1, 9)
    np.testing.assert_array_equal(merged.labels, labels)
    assert merged.lineage == lineage and merged.frames == (2, 3)


def test_merge_refuses_tracks_on_the_same_frame_naming_both_and_the_frames():
    labels = lineage_stack()
    lineage = Lineage.from_labels(labels, PARENTS)
    with pytest.raises(LineageError, match=r"tracks 4 and 5: both are present on frame\(s\) 0, 1"):
        merge_tracks(labels, lineage, 4, 5)


def test_merge_refuses_to_continue_a_division_or_to_absorb_a_daughter():
    labels = lineage_stack()
    labels[labels == 4] = 0
    labels[6][disc((50, 10), 4)] = 4  # track 4 now only on frame 6
    lineage = Lineage.from_labels(labels, PARENTS)
    with pytest.raises(LineageError, match="track 1 divides at its end"):
        merge_tracks(labels, lineage, 1, 4)
    labels2 = lineage_stack()
    labels2[labels2 == 4] = 0
    labels2[0][disc((50, 10), 4)] = 4
    lineage2 = Lineage.from_labels(labels2, PARENTS)
    with pytest.raises(LineageError, match="the later track 2 is a daughter of track 1"):
        merge_tracks(labels2, lineage2, 4, 2)
    with pytest.raises(LineageError, match="cannot merge track 4 with itself"):
        merge_tracks(labels2, lineage2, 4, 4)


def test_delete_erases_the_pixels_and_unlinks_the_sibling():
    labels = lineage_stack()
    edit = delete_track(labels, Lineage.from_labels(labels, PARENTS), 3)
    assert not (edit.labels == 3).any() and edit.frames == (4, 5, 6)
    np.testing.assert_array_equal(edit.labels[labels != 3], labels[labels != 3])
    assert 3 not in edit.lineage.tracks and edit.lineage.parent_of(2) == 0
    orphaned = delete_track(labels, Lineage.from_labels(labels, PARENTS), 1)
    assert orphaned.lineage.parent_of(2) == 0 and orphaned.lineage.parent_of(3) == 0


def test_mark_division_of_existing_daughters_changes_only_the_lineage():
    labels = lineage_stack()
    edit = mark_division(labels, Lineage.from_labels(labels), 1, 4, [2, 3])
    np.testing.assert_array_equal(edit.labels, labels)
    assert edit.frames == () and edit.lineage == Lineage.from_labels(labels, PARENTS)


def test_mark_division_with_two_new_ids_splits_the_parents_pieces_and_follows_them():
    labels, lineage = undivided()
    edit = mark_division(labels, lineage, 1, 4, [8, 9])
    truth = lineage_stack()
    # equal sizes: the first id gets the first piece in raster order (the upper disc, 2),
    # and each daughter keeps its side on the later frames
    np.testing.assert_array_equal(edit.labels[4:] == 8, truth[4:] == 2)
    np.testing.assert_array_equal(edit.labels[4:] == 9, truth[4:] == 3)
    np.testing.assert_array_equal(edit.labels[:4], labels[:4])
    assert edit.frames == (4, 5, 6)
    assert edit.lineage.tracks[1] == Track(1, 0, 3, 0)
    assert edit.lineage.tracks[8] == Track(8, 4, 6, 1)
    assert edit.lineage.tracks[9] == Track(9, 4, 6, 1)


def test_mark_division_gives_the_first_id_the_larger_piece():
    labels, lineage = undivided()
    labels[4][disc((28, 22), 6)] = 1  # the lower piece grows on the division frame
    edit = mark_division(labels, lineage, 1, 4, [8, 9])
    assert (edit.labels[4] == 8).sum() > (edit.labels[4] == 9).sum()
    np.testing.assert_array_equal(edit.labels[5:] == 8, lineage_stack()[5:] == 3)


def test_mark_division_with_one_new_id_gives_it_the_parents_later_pixels():
    labels = lineage_stack()
    labels[labels == 2] = 1  # the tracker followed daughter 2 under the parent's id
    lineage = Lineage.from_labels(labels)
    edit = mark_division(labels, lineage, 1, 4, [3, 7])
    np.testing.assert_array_equal(edit.labels[4:] == 7, lineage_stack()[4:] == 2)
    assert edit.lineage.children_of(1) == [3, 7] and edit.lineage.tracks[1].last == 3


@pytest.mark.parametrize(
    ("frame", "daughters", "message"),
    [
        (4, [8], "exactly two different daughters; track 1 got 8"),
        (4, [4, 8], "daughter 4 starts at frame 0, not at the division frame 4 of track 1"),
        (2, [8, 9], r"track 1 is 1 connected piece\(s\) on the division frame, not two"),
        (0, [8], "exactly two"),
    ],
)
def test_mark_division_refuses_naming_the_ids(frame, daughters, message):
    labels, lineage = undivided()
    with pytest.raises(LineageError, match=message):
        mark_division(labels, lineage, 1, frame, daughters)


def test_mark_division_refuses_a_parent_that_goes_on_with_no_new_daughter():
    labels = lineage_stack()
    labels[labels == 2] = 1
    for t in range(4, 7):
        labels[t][disc((40, 40), 4)] = 6
    lineage = Lineage.from_labels(labels)
    with pytest.raises(LineageError, match="track 1 is still present on frame 4 or later"):
        mark_division(labels, lineage, 1, 4, [3, 6])


def test_propose_divisions_finds_the_frame_a_mask_becomes_two_pieces():
    labels, lineage = undivided()
    proposals = propose_divisions(labels, lineage, min_area=10)
    assert [(d.parent, d.frame) for d in proposals] == [(1, 4)]
    parts = proposals[0].parts
    truth = lineage_stack()[4]
    assert {parts[0].sum(), parts[1].sum()} == {(truth == 2).sum()}
    assert np.array_equal(parts[0] | parts[1], (truth == 2) | (truth == 3))


def test_propose_divisions_ignores_small_pieces_and_tracks_already_divided():
    labels, lineage = undivided()
    area = int(disc((32, 32), RADII[2]).sum())
    assert propose_divisions(labels, lineage, min_area=area + 1) == []
    truth = lineage_stack()
    assert propose_divisions(truth, Lineage.from_labels(truth, PARENTS)) == []
