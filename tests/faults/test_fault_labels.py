"""Fault matrix, labels (no Qt): ids at each dtype's limit, signed labels, pasting an id
that does not fit. The napari side (commits, hand painting, undo) is in test_gui_labels.py."""

from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core.labels import LabelsError, next_label_id, paste_mask


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32, np.uint64, np.int64])
def test_last_id_is_given_then_refused(dtype):
    top = np.iinfo(dtype).max
    labels = np.zeros((4, 4), dtype)
    labels[0, 0] = top - 1
    assert next_label_id(labels) == top
    labels[1, 1] = top
    with pytest.raises(LabelsError, match=f"dtype {np.dtype(dtype)} holds ids up to {top}"):
        next_label_id(labels)


def test_negative_ids_in_signed_labels_are_not_reused():
    labels = np.array([[-5, 0], [0, -1]], np.int16)
    assert next_label_id(labels) == 1


def test_pasting_an_id_that_does_not_fit_changes_nothing():
    labels = np.zeros((4, 4), np.uint8)
    labels[0] = 7
    mask = np.ones((4, 4), bool)
    with pytest.raises(LabelsError, match="id 256 does not fit the labels' dtype uint8"):
        paste_mask(labels, mask, 256)
    assert (labels[0] == 7).all() and not labels[1:].any()
