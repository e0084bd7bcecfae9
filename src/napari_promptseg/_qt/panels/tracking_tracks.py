"""The "Tracks" group of the memory-tracking panel: lineage, track edits, CTC / GEFF export.

Every edit goes through :mod:`napari_promptseg.core.workflows.tracking.edits` and is written
by :func:`~napari_promptseg._napari.lineage_store.apply_edit` as one undo step of the labels
layer that also carries the lineage (Ctrl+Z restores both). The Tracks layer is a view of
the lineage (:mod:`~napari_promptseg._napari.tracks_layer`), rebuilt after each change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..._napari import lineage_store
from ..._napari.tracks_layer import show_tracks
from ...core.errors import PromptSegError
from ...core.labels import next_label_id
from ...core.workflows.tracking import edits
from ...core.workflows.tracking.ctc import write_ctc
from ...core.workflows.tracking.edits import Division, TrackEdit
from ...core.workflows.tracking.geff_io import write_geff
from ...core.workflows.tracking.lineage import Lineage
from .registry import say

MAX_ID = 2**31 - 1


def _spin(tip: str, minimum: int = 0) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, MAX_ID)
    spin.setValue(minimum + 1)  # a value change shows the text (Qt leaves it blank at 0)
    spin.setValue(minimum)
    spin.setToolTip(tip)
    return spin


class TracksBox(QWidget):
    """Lineage summary, Tracks layer, divisions, split / merge / delete, export.

    Parameters
    ----------
    viewer, session
        As for every panel.
    place
        Returns ``(labels layer, axis)`` tracked along now, or None (no stack, no labels).
    """

    def __init__(self, viewer, session, place: Callable[[], tuple | None]) -> None:
        super().__init__()
        self.viewer, self.session, self._place = viewer, session, place
        self.proposals: list[Division] = []
        self._build()

    def _build(self) -> None:
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.summary_label = QLabel("no tracks yet")
        self.summary_label.setWordWrap(True)
        form.addRow(self.summary_label)
        self.show_check = QCheckBox("show a Tracks layer")
        self.show_check.setChecked(True)
        form.addRow(self.show_check)
        self.track_spin = _spin("the track (label id) to split, merge into, delete or divide", 1)
        self.frame_spin = _spin("the frame of a split or a division (first frame of the new part)")
        form.addRow("Track", self.track_spin)
        form.addRow("At frame", self.frame_spin)
        others = QHBoxLayout()
        self.other_spin = _spin("merge: the track merged into Track; division: first daughter")
        self.second_spin = _spin("division: second daughter (0: a new id)")
        for spin in (self.other_spin, self.second_spin):
            spin.setSpecialValueText("new id")
            others.addWidget(spin)
        form.addRow("Other / daughters", others)
        grid = QGridLayout()
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("frames from 'At frame' on become a new track")
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("the other track becomes Track (never on the same frame)")
        self.delete_button = QPushButton("Delete")
        self.divide_button = QPushButton("Mark division")
        self.divide_button.setToolTip(
            "Track ends before 'At frame'; the two daughters start there (0: new ids that "
            "take Track's two pieces)"
        )
        grid.addWidget(self.split_button, 0, 0)
        grid.addWidget(self.merge_button, 0, 1)
        grid.addWidget(self.delete_button, 0, 2)
        grid.addWidget(self.divide_button, 1, 0, 1, 3)
        form.addRow(grid)
        self.propose_button = QPushButton("Propose divisions")
        self.propose_button.setToolTip("frames where a track goes from one piece to two")
        self.accept_button = QPushButton("Accept")
        self.accept_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.propose_button)
        row.addWidget(self.accept_button)
        form.addRow(row)
        self.proposal_list = QListWidget()
        self.proposal_list.setMaximumHeight(70)
        form.addRow(self.proposal_list)
        exports = QHBoxLayout()
        self.ctc_button = QPushButton("Export CTC…")
        self.geff_button = QPushButton("Export GEFF…")
        exports.addWidget(self.ctc_button)
        exports.addWidget(self.geff_button)
        form.addRow(exports)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        form.addRow(self.status_label)

        self.show_check.toggled.connect(lambda _on: self.refresh())
        self.split_button.clicked.connect(lambda: self.split(self.track_spin.value()))
        self.merge_button.clicked.connect(
            lambda: self.merge(self.track_spin.value(), self.other_spin.value())
        )
        self.delete_button.clicked.connect(lambda: self.delete(self.track_spin.value()))
        self.divide_button.clicked.connect(self._divide_from_fields)
        self.propose_button.clicked.connect(self.propose)
        self.accept_button.clicked.connect(lambda: self.accept(self.proposal_list.currentRow()))
        self.proposal_list.currentRowChanged.connect(
            lambda row: self.accept_button.setEnabled(row >= 0)
        )
        self.ctc_button.clicked.connect(self._ask_ctc)
        self.geff_button.clicked.connect(self._ask_geff)

    # -- the lineage ----------------------------------------------------------------------

    def lineage(self) -> Lineage | None:
        """The lineage of the labels along the tracked axis (rebuilt from the pixels)."""
        place = self._place()
        return None if place is None else lineage_store.lineage_of(*place)

    def refresh(self) -> None:
        """Summary and Tracks layer after the labels or the lineage changed."""
        place = self._place()
        if place is None:
            self.summary_label.setText("no tracks yet: track an object through a stack")
            return
        labels, axis = place
        if not lineage_store.has_tracking(labels):  # a scan of every frame is not free
            self.summary_label.setText("no tracks yet: propagate an object first")
            return
        self.frame_spin.setMaximum(max(0, labels.data.shape[axis] - 1))
        lineage = lineage_store.lineage_of(labels, axis)
        divisions = {t.parent for t in lineage.tracks.values() if t.parent}
        parts = [f"{len(lineage.tracks)} track(s)"]
        parts += [f"{p} → {', '.join(map(str, lineage.children_of(p)))}" for p in sorted(divisions)]
        self.summary_label.setText("; ".join(parts))
        if self.show_check.isChecked():
            show_tracks(self.viewer, labels, lineage, axis)
            if axis != 0 and lineage.tracks:
                self.summary_label.setText(
                    self.summary_label.text() + " (the Tracks layer shows tracks along axis 0 only)"
                )
        else:
            show_tracks(self.viewer, labels, Lineage(), axis, create=False)

    # -- edits ----------------------------------------------------------------------------

    def split(self, track_id: int, frame: int | None = None) -> bool:
        frame = self.frame_spin.value() if frame is None else frame
        return self._edit(
            f"split track {track_id} at frame {frame}",
            lambda labels, lineage: edits.split_track(
                labels, lineage, track_id, frame, next_label_id(labels)
            ),
        )

    def merge(self, keep_id: int, other_id: int) -> bool:
        return self._edit(
            f"merged track {other_id} into {keep_id}",
            lambda labels, lineage: edits.merge_tracks(labels, lineage, keep_id, other_id),
        )

    def delete(self, track_id: int) -> bool:
        return self._edit(
            f"deleted track {track_id}",
            lambda labels, lineage: edits.delete_track(labels, lineage, track_id),
        )

    def mark_division(self, parent_id: int, frame: int, daughters: tuple[int, int]) -> bool:
        """``parent_id`` divides at ``frame`` into ``daughters`` (0: a new id each)."""

        def edit(labels: np.ndarray, lineage: Lineage) -> TrackEdit:
            free = next_label_id(labels)
            ids = []
            for daughter in daughters:
                ids.append(int(daughter) or free)
                free = free + 1 if not daughter else free
            return edits.mark_division(labels, lineage, parent_id, frame, ids)

        return self._edit(f"track {parent_id} divides at frame {frame}", edit)

    def _divide_from_fields(self) -> None:
        daughters = (self.other_spin.value(), self.second_spin.value())
        self.mark_division(self.track_spin.value(), self.frame_spin.value(), daughters)

    def propose(self) -> list[Division]:
        """List the frames where a track goes from one piece to two."""
        place, lineage = self._place(), self.lineage()
        self.proposal_list.clear()
        self.proposals = []
        if place is None or lineage is None:
            self._say("no labels to look at: track an object first", problem=True)
            return []
        self.proposals = edits.propose_divisions(lineage_store.stack(*place), lineage)
        for division in self.proposals:
            self.proposal_list.addItem(
                f"track {division.parent} splits in two at frame {division.frame}"
            )
        self._say(f"{len(self.proposals)} possible division(s)")
        return self.proposals

    def accept(self, row: int) -> bool:
        """Mark proposal ``row`` as a division into two new tracks."""
        if not 0 <= row < len(self.proposals):
            self._say("pick a proposed division first", problem=True)
            return False
        division = self.proposals.pop(row)
        self.proposal_list.takeItem(row)
        return self.mark_division(division.parent, division.frame, (0, 0))

    def _edit(self, what: str, make: Callable[[np.ndarray, Lineage], TrackEdit]) -> bool:
        place = self._place()
        if place is None:
            self._say(f"cannot edit tracks: {what.split()[0]} needs a labels stack", problem=True)
            return False
        labels_layer, axis = place
        lineage = lineage_store.lineage_of(labels_layer, axis)
        try:
            edit = make(lineage_store.stack(labels_layer, axis), lineage)
        except PromptSegError as error:
            self._say(f"cannot edit tracks: {error}", problem=True)
            return False
        lineage_store.apply_edit(labels_layer, axis, edit)
        self.session.notify_objects_changed()  # refreshes this box through the panel
        self._say(f"{what} (Ctrl+Z undoes it)")
        return True

    # -- export ---------------------------------------------------------------------------

    def export_ctc(self, folder: str | Path) -> bool:
        """Write a Cell Tracking Challenge RES folder (masks + ``res_track.txt``)."""
        return self._export("CTC", folder, write_ctc)

    def export_geff(self, path: str | Path) -> bool:
        """Write the lineage graph as a GEFF zarr group."""

        def write(target, labels, lineage):
            names = ("t", "y", "x") if labels.ndim == 3 else ("t", "z", "y", "x")
            return write_geff(target, labels, lineage, axis_names=names)

        return self._export("GEFF", path, write)

    def _export(self, kind: str, path: str | Path, write: Callable) -> bool:
        place = self._place()
        if place is None:
            self._say(f"nothing to export as {kind}: track an object first", problem=True)
            return False
        labels = lineage_store.stack(*place)
        try:
            write(Path(path), labels, lineage_store.lineage_of(*place))
        except PromptSegError as error:
            self._say(f"{kind} export failed: {error}", problem=True)
            return False
        self._say(f"exported {kind} to {path}")
        return True

    def _ask_ctc(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export CTC into a new or empty folder")
        if folder:
            self.export_ctc(folder)

    def _ask_geff(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export GEFF", "tracks.geff")
        if path:
            self.export_geff(path)

    def _say(self, message: str, *, problem: bool = False) -> None:
        say(self.session, self.status_label, message, problem=problem)
