"""Keep embeddings on disk: the on/off switch, the folder, its size and "Clear store".

With the box ticked, the session's engine gets an :class:`EmbeddingStore` now and after
every model change, so an image embedded once is reloaded (milliseconds) rather than
recomputed (tens of seconds) in later sessions.
"""

from __future__ import annotations

import logging
from pathlib import Path

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import PromptSegError
from ...core.storage.store import EmbeddingStore, default_store_dir
from ...core.storage.stores import AnyStore, open_embedding_store
from ...core.storage.zarr_store import ZarrEmbeddingStore
from .registry import disconnect

log = logging.getLogger(__name__)

REFRESH_MS = 5000  # size readout refresh while the store is on (entries come from workers)


class StorePanel(QWidget):
    """Checkbox "keep embeddings on disk", folder chooser, size readout, "Clear store"."""

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.store: AnyStore | None = None
        self.folder = default_store_dir()

        self.enabled_check = QCheckBox("keep embeddings on disk")
        self.enabled_check.setToolTip(
            "reuse image embeddings across sessions: each image is encoded once per model "
            "and contrast setting"
        )
        self.folder_label = QLabel()
        self.folder_label.setWordWrap(True)
        self.choose_button = QPushButton("Folder…")
        self.choose_button.setToolTip(
            "where embeddings are kept; a folder named *.zarr is a zarr store that Dask "
            "workers and other sessions can share (docs/scale.md)"
        )
        self.size_label = QLabel()
        self.clear_button = QPushButton("Clear store")
        self.clear_button.setToolTip(
            "delete the stored embeddings (they are recomputed when needed)"
        )
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_label, 1)
        folder_row.addWidget(self.choose_button)
        size_row = QHBoxLayout()
        size_row.addWidget(self.size_label, 1)
        size_row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.enabled_check)
        layout.addLayout(folder_row)
        layout.addLayout(size_row)

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.update_size)
        self.enabled_check.toggled.connect(self._on_toggled)
        self.choose_button.clicked.connect(self._choose_folder)
        self.clear_button.clicked.connect(self.clear)
        session.model_changed.connect(self._on_model_changed)
        session.embedding_ready.connect(self.update_size)
        self._adopt_segmenter_store()
        self._show_folder()
        self.update_size()

    # -- switching on and off -------------------------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        """Tick or untick "keep embeddings on disk" (as a click would)."""
        self.enabled_check.setChecked(enabled)

    def set_folder(self, folder: str | Path) -> None:
        """Store embeddings in ``folder`` from now on (the old folder is left as it is)."""
        folder = Path(folder).expanduser()
        try:
            store = open_embedding_store(folder)  # a .zarr folder: the shared zarr store
        except PromptSegError as error:
            self.session.report(str(error))
            return
        self.folder = folder
        if self.enabled_check.isChecked():
            self.store = store
            self._apply()
        self._show_folder()
        self.update_size()

    def _on_toggled(self, enabled: bool) -> None:
        if enabled:
            try:
                self.store = open_embedding_store(self.folder)
            except PromptSegError as error:
                self.session.report(str(error))
                self.enabled_check.setChecked(False)
                return
            self._timer.start()
        else:
            self.store = None
            self._timer.stop()
        self._apply()
        self.update_size()
        self.session.say(
            f"embeddings are kept in {self.folder}"
            if enabled
            else "embeddings are kept in memory only"
        )

    def _apply(self) -> None:
        segmenter = self.session.segmenter
        if segmenter is not None:
            segmenter.store = self.store

    def _on_model_changed(self, name=None) -> None:
        if self.enabled_check.isChecked():
            self._apply()  # a new engine: give it the store before it embeds anything
        else:
            self._adopt_segmenter_store()

    def _adopt_segmenter_store(self) -> None:
        # an engine that arrives with its own store (scripts, tests): show it, don't drop it
        segmenter = self.session.segmenter
        existing = getattr(segmenter, "store", None)
        if isinstance(existing, EmbeddingStore | ZarrEmbeddingStore):
            self.store, self.folder = existing, existing.root
            self.enabled_check.blockSignals(True)
            self.enabled_check.setChecked(True)
            self.enabled_check.blockSignals(False)
            self._timer.start()
            self._show_folder()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Folder for stored embeddings", str(self.folder)
        )
        if folder:
            self.set_folder(folder)

    # -- size and clearing ----------------------------------------------------------------

    def update_size(self, *args) -> None:
        """Show how many embeddings the folder holds and their size."""
        try:
            store = self.store or open_embedding_store(self.folder)
            count, nbytes = store.count, store.nbytes
        except (OSError, PromptSegError) as error:
            self.size_label.setText(f"cannot read the folder: {error}")
            return
        self.size_label.setText(f"{count} embeddings, {nbytes / 2**20:.1f} MiB")
        self.clear_button.setEnabled(count > 0)

    def clear(self) -> int:
        """Delete the stored embeddings (only files the store wrote). Returns how many."""
        try:
            removed = (self.store or open_embedding_store(self.folder)).clear()
        except (OSError, PromptSegError) as error:
            self.session.report(f"cannot clear the store: {error}")
            return 0
        self.session.say(f"removed {removed} stored embeddings from {self.folder}")
        self.update_size()
        return removed

    def _show_folder(self) -> None:
        self.folder_label.setText(str(self.folder))
        self.folder_label.setToolTip(str(self.folder))

    def close(self) -> bool:
        self._timer.stop()
        disconnect(
            (self.session.model_changed, self._on_model_changed),
            (self.session.embedding_ready, self.update_size),
        )
        return super().close()
