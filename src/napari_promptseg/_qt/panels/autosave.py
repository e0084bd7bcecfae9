"""The "Autosave" section of the dock widget: keeps committed objects safe from a crash.

After every commit, undo, redo or hand-painted stroke the session's labels layer and its
objects table are written in the background to ``<folder>/<image>.autosave.tif`` (see
:mod:`napari_promptseg.core.storage.autosave`), at most every two seconds. "Restore last
autosave…" loads one back into a new Labels layer, with its objects table as features.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ..._napari import layers as prompt_layers
from ..._napari import objects
from ..._napari.slices import spatial_shape
from ...core.storage.autosave import (
    SUFFIX,
    AutosavePaths,
    Autosaver,
    RecoveryError,
    autosave_info,
    default_folder,
    find_autosaves,
    load_autosave,
)

NAME_KEY = "promptseg_autosave_name"  # labels layer metadata: the name its autosave uses
TICK_MS = 500


class AutosavePanel(QWidget):
    """Autosave on/off, the folder, and restoring an autosave.

    Parameters
    ----------
    viewer
        The napari viewer.
    session
        The :class:`~napari_promptseg._qt.session.SegmentationSession`; its
        ``objects_changed`` signal and its ``labels_layer`` are what gets saved.
    """

    _saved = Signal(object)  # AutosavePaths, from the writer thread
    _failed = Signal(str)

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.saver = Autosaver(
            default_folder(),
            on_commit=True,
            on_saved=self._emit_saved,
            on_error=self._emit_failed,
        )
        self._watched_labels = None
        self._reported_error: str | None = None
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._saved.connect(self._on_saved)
        self._failed.connect(self._on_failed)
        session.objects_changed.connect(self._on_objects_changed)
        self._show_latest()

    def _build(self) -> None:
        form = QFormLayout(self)
        self.enabled_check = QCheckBox("autosave after each change")
        self.enabled_check.setChecked(True)
        self.enabled_check.setToolTip(
            "write the labels and objects table to the folder below after every commit, "
            "undo or painted stroke (at most every 2 s), in the background"
        )
        form.addRow(self.enabled_check)
        self.folder_edit = QLineEdit(str(self.saver.folder))
        self.folder_button = QPushButton("Choose…")
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.folder_button)
        form.addRow("Folder", row)
        self.restore_button = QPushButton("Restore last autosave…")
        form.addRow(self.restore_button)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        form.addRow(self.status_label)
        self.enabled_check.toggled.connect(self.set_enabled)
        self.folder_edit.editingFinished.connect(
            lambda: self.set_folder(self.folder_edit.text().strip())
        )
        self.folder_button.clicked.connect(self._choose_folder)
        self.restore_button.clicked.connect(self._choose_and_restore)

    # -- settings -------------------------------------------------------------------------

    def set_enabled(self, on: bool) -> None:
        self.saver.enabled = bool(on)
        if self.enabled_check.isChecked() != bool(on):
            self.enabled_check.setChecked(bool(on))
        if on:
            self._on_objects_changed()  # save what changed while it was off
        else:
            self.status_label.setText("autosave is off")

    def set_folder(self, folder: str | Path) -> None:
        if not str(folder):
            self.folder_edit.setText(str(self.saver.folder))
            return
        self.saver.folder = Path(folder).expanduser()
        self.folder_edit.setText(str(self.saver.folder))
        self._reported_error = None
        self._show_latest()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Autosave folder", str(self.saver.folder))
        if folder:
            self.set_folder(folder)

    # -- saving ---------------------------------------------------------------------------

    def _on_objects_changed(self) -> None:
        self._watch_labels()
        if self.session.labels_layer is None:
            return
        self.saver.note_change()
        self._tick()

    def _on_painted(self, event=None) -> None:
        # a stroke painted by hand (napari also fires this for our own commits)
        self.saver.note_change()
        if not self._timer.isActive():
            self._timer.start()

    def _watch_labels(self) -> None:
        layer = self.session.labels_layer
        if layer is self._watched_labels:
            return
        if self._watched_labels is not None:
            self._watched_labels.events.paint.disconnect(self._on_painted)
        if layer is not None:
            layer.events.paint.connect(self._on_painted)
        self._watched_labels = layer

    def _tick(self) -> None:
        self._watch_labels()
        if self.saver.due():
            self.save_now()
        # keep ticking while something is left to write (throttled or being written)
        if self.saver.enabled and (self.saver.dirty or self.saver.busy):
            if not self._timer.isActive():
                self._timer.start()
        else:
            self._timer.stop()

    def save_now(self) -> bool:
        """Hand the current labels and objects to the background writer. False: nothing to save."""
        layer = self.session.labels_layer
        if layer is None or layer not in self.viewer.layers:
            self.saver.discard_changes()
            return False
        self.saver.save_async(
            self._name_for(layer),
            layer.data,
            objects.object_rows(layer),
            extra={
                "layer": layer.name,
                "scale": [float(s) for s in layer.scale],
                "translate": [float(t) for t in layer.translate],
            },
        )
        return True

    def _name_for(self, layer) -> str:
        # fixed at the first save, so renaming or removing the image keeps one file
        name = layer.metadata.get(NAME_KEY)
        if not name:
            image = self.session.image_layer
            name = image.name if image is not None else layer.name
            layer.metadata[NAME_KEY] = name
        return str(name)

    def _emit_saved(self, paths: AutosavePaths) -> None:
        with contextlib.suppress(RuntimeError):  # the panel was deleted while a write finished
            self._saved.emit(paths)

    def _emit_failed(self, message: str) -> None:
        with contextlib.suppress(RuntimeError):
            self._failed.emit(message)

    def _on_saved(self, paths: AutosavePaths) -> None:
        self._reported_error = None
        self.status_label.setText(f"autosaved {time.strftime('%H:%M:%S')} to {paths.labels}")

    def _on_failed(self, message: str) -> None:
        text = f"autosave failed: {message} Your objects are still in the labels layer."
        self.status_label.setText(text)
        if message != self._reported_error:  # once per problem, not every 2 s
            self._reported_error = message
            self.session.report(text)

    # -- restoring ------------------------------------------------------------------------

    def _show_latest(self) -> None:
        found = find_autosaves(self.saver.folder)
        if found:
            latest = found[0]
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(latest.modified))
            self.status_label.setText(f"latest autosave: {latest.image} ({when})")
        else:
            self.status_label.setText(f"no autosave in {self.saver.folder} yet")

    def latest_autosave(self) -> Path | None:
        """The newest autosave in the folder, preferring one of the current image."""
        found = find_autosaves(self.saver.folder)
        image = self.session.image_layer
        if image is not None:
            mine = [f for f in found if f.image == image.name]
            found = mine or found
        return found[0].path if found else None

    def _choose_and_restore(self) -> None:
        latest = self.latest_autosave()
        start = str(latest) if latest is not None else str(self.saver.folder)
        path, _ = QFileDialog.getOpenFileName(
            self, "Restore an autosave", start, f"napari-promptseg autosaves (*{SUFFIX} *.tif)"
        )
        if path:
            self.restore(path)

    def restore(self, path: str | Path | None = None):
        """Load an autosave into a new Labels layer (the latest one if ``path`` is None).

        The objects table comes back as the layer's features. When the labels fit the
        current image, new commits go into the restored layer. Returns the layer, or None
        (with a message) when there is nothing to restore or the file cannot be read.
        """
        path = Path(path) if path is not None else self.latest_autosave()
        if path is None:
            self.session.report(f"no autosave to restore in {self.saver.folder}.")
            return None
        try:
            labels, rows = load_autosave(path)
            info = autosave_info(path)
        except RecoveryError as error:
            self.session.report(str(error))
            return None
        kwargs = {}
        for key in ("scale", "translate"):
            value = info.get(key)
            if isinstance(value, list) and len(value) == labels.ndim:
                kwargs[key] = value
        with prompt_layers.keeping_selection(self.viewer):
            layer = self.viewer.add_labels(
                labels,
                name=f"{info.get('image') or path.stem} objects (restored)",
                metadata={prompt_layers.TAG: "objects", NAME_KEY: info.get("image") or None},
                **kwargs,
            )
        if rows:
            objects.set_rows(layer, rows)
        image = self.session.image_layer
        if image is not None and tuple(spatial_shape(image)) == tuple(labels.shape):
            self.session.set_labels_layer(layer)
        self.session.say(f"restored {len(rows)} object(s) from {path}")
        self.status_label.setText(f"restored {path.name}")
        return layer

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> bool:
        """Write what is still unsaved, then stop the writer thread."""
        self._timer.stop()
        if self.saver.enabled and self.saver.dirty:
            self.save_now()
        self.saver.close()
        with contextlib.suppress(RuntimeError, TypeError):
            self.session.objects_changed.disconnect(self._on_objects_changed)
        if self._watched_labels is not None:
            self._watched_labels.events.paint.disconnect(self._on_painted)
            self._watched_labels = None
        return super().close()
