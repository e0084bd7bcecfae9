"""Annotating a folder of images one after another: the "Image folder" panel.

The panel shows one image of the folder at a time in ONE image layer and its saved labels
(if any) in ONE labels layer, both handed to the session; moving on swaps their data (and
clears the labels' undo history) rather than replacing layers, which costs napari ~1 s.
Moving on (Previous, Next, First not done, a click in the list) first saves the labels and
objects table of the image shown (:meth:`core.folder.ImageFolder.save`); if that fails the
panel stays where it is, so no labels are lost. Images that cannot be read or have another
shape are skipped with a message. Reopening a folder resumes at the first image not done.
While the user annotates image i, the embedding of image i+1 is computed in a background
worker (:mod:`.folder_prefetch`), so that Next finds it in the session's cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..._napari import layers as prompt_layers
from ..._napari import objects
from ..._napari.folder_layers import FILE_KEY, display_limits, is_rgb, show_image, show_labels
from ...core.errors import ImageError, PromptSegError
from ...core.storage.folder import DONE, SKIPPED, STARTED, ImageFolder
from .folder_prefetch import FolderPrefetch, next_to_prefetch
from .registry import say

MARKS = {DONE: "✓", STARTED: "✎", SKIPPED: "✗"}  # todo: no mark


class FolderPanel(QWidget):
    """Open a folder, step through its images, save each one's labels on the way.

    Parameters
    ----------
    viewer
        The napari viewer.
    session
        The :class:`~napari_promptseg._qt.session.SegmentationSession`.
    """

    image_shown = Signal(int)  # index of the image now shown
    prefetched = Signal(int)  # index of an image whose embedding is now in the cache

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.folder: ImageFolder | None = None
        self.index: int | None = None  # image shown
        self.image_layer = None
        self.labels_layer = None
        self._prefetch = FolderPrefetch(
            session, prefetched=self.prefetched.emit, handed_over=self._hand_over, owner=self
        )
        self._closed = False
        self._build()
        session.embedding_ready.connect(self._on_embedding_ready)
        session.model_changed.connect(self._on_model_changed)
        session.busy_changed.connect(self._on_busy_changed)

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder of tif / png / jpg / bmp images")
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("same as the image folder")
        form.addRow("Images", _with_button(self.folder_edit, self._choose_folder))
        form.addRow("Results", _with_button(self.output_edit, self._choose_output))
        layout.addLayout(form)
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self._open_from_fields)
        layout.addWidget(self.open_button)
        self.image_list = QListWidget()
        self.image_list.setMaximumHeight(160)
        self.image_list.itemClicked.connect(lambda item: self.go_to(self.image_list.row(item)))
        layout.addWidget(self.image_list)
        buttons = QHBoxLayout()
        self.previous_button = QPushButton("Previous")
        self.next_button = QPushButton("Next")
        self.first_button = QPushButton("First not done")
        self.previous_button.clicked.connect(self.previous)
        self.next_button.clicked.connect(self.next)
        self.first_button.clicked.connect(self.first_not_done)
        for button in (self.previous_button, self.next_button, self.first_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.message_label = QLabel("choose a folder of images")
        self.message_label.setWordWrap(True)
        layout.addWidget(self.message_label)
        self._update_buttons()

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of images", self.folder_edit.text())
        if path:
            self.folder_edit.setText(path)
            self._open_from_fields()

    def _choose_output(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for results", self.output_edit.text())
        if path:
            self.output_edit.setText(path)

    def _open_from_fields(self) -> None:
        folder = self.folder_edit.text().strip()
        if not folder:
            self._say("choose a folder of images first", problem=True)
            return
        self.open_folder(folder, self.output_edit.text().strip() or None)

    # -- opening and closing --------------------------------------------------------------

    def open_folder(self, folder: str | Path, output: str | Path | None = None) -> bool:
        """Open ``folder`` (results in ``output``, default the folder) at the first image not done."""
        if not self.close_folder():
            return False
        try:
            opened = ImageFolder(folder, output)
        except PromptSegError as error:
            self._say(str(error), problem=True)
            return False
        self.folder = opened
        self.folder_edit.setText(str(opened.folder))
        self.output_edit.setText("" if opened.output == opened.folder else str(opened.output))
        for problem in opened.problems:
            self._say(problem, problem=True)
        self._fill_list()
        if not len(opened):
            self._say(f"no images (tif, png, jpg, bmp) in {opened.folder}", problem=True)
            return False
        start = opened.first_not_done()
        if start is None:
            self._say(f"all {len(opened)} images are done or skipped; showing the first")
            return self._show_from(0, step=1)
        return self._show_from(start, step=1)

    def close_folder(self) -> bool:
        """Save the image shown and let go of the folder. False if saving failed (kept open)."""
        if self.folder is None:
            return True
        if not self.save_current():
            return False
        self._prefetch.forget()
        self.folder, self.index = None, None
        self.image_list.clear()
        self._update_buttons()
        return True

    def close(self) -> bool:
        """The dock widget is closing: save, stop the prefetch, disconnect."""
        if not self._closed:
            self._closed = True
            self.save_current(quiet=True)
            self._prefetch.cancel()
            self.session.embedding_ready.disconnect(self._on_embedding_ready)
            self.session.model_changed.disconnect(self._on_model_changed)
            self.session.busy_changed.disconnect(self._on_busy_changed)
        return super().close()

    # -- moving ---------------------------------------------------------------------------

    def next(self) -> bool:
        """Save the image shown as done and show the next readable one."""
        if self.folder is None or self.index is None:
            return False
        if self.index + 1 >= len(self.folder):
            self.save_current(done=True)
            self._say(f"that was the last image; {self._summary()}")
            return False
        return self._move(self.index + 1, step=1, done=True)

    def previous(self) -> bool:
        if self.folder is None or self.index is None or self.index == 0:
            return False
        return self._move(self.index - 1, step=-1, done=False)

    def first_not_done(self) -> bool:
        if self.folder is None:
            return False
        target = self.folder.first_not_done()
        if target is None:
            self._say(f"every image is done or skipped; {self._summary()}")
            return False
        return target == self.index or self._move(target, step=1, done=False)

    def go_to(self, index: int) -> bool:
        """Show image ``index`` (a click in the list); an unreadable one is reported, not left for."""
        if self.folder is None or index == self.index:
            return False
        return self._move(index, step=0, done=False)

    def save_current(self, *, done: bool = False, quiet: bool = False) -> bool:
        """Save the labels and objects of the image shown. False if that failed (reported).

        Without a labels layer of the image's shape (the user removed it) nothing is
        written, so the saved labels stay as they were.
        """
        if self.folder is None or self.index is None:
            return True
        layer = self._labels_to_save()
        if layer is None:
            if not quiet:
                name = self.folder.name(self.index)
                self._say(f"no labels layer for {name}: nothing saved for it", problem=True)
            return True
        try:
            saved = self.folder.save(
                self.index, np.asarray(layer.data), objects.object_rows(layer), done=done
            )
        except PromptSegError as error:
            self._say(f"{error} — the labels stay in the layer {layer.name!r}", problem=True)
            return False
        self._say(f"saved {saved.labels.name} and {saved.objects.name}")
        self._mark(self.index)
        return True

    def _move(self, target: int, *, step: int, done: bool) -> bool:
        if not self.save_current(done=done):
            return False
        return self._show_from(target, step=step)

    def _show_from(self, start: int, *, step: int) -> bool:
        """Show the first readable image from ``start`` going ``step`` (0: only ``start``)."""
        index = start
        while self.folder is not None and 0 <= index < len(self.folder):
            try:
                image, labels, rows = self._read(index)
            except ImageError as error:
                self._skip(index, error)
                if step == 0:
                    return False
                index += step
                continue
            self._show(index, image, labels, rows)
            return True
        self._say(f"no readable image {'after' if step > 0 else 'before'} this one")
        return False

    def _read(self, index: int):
        image = self._prefetch.image(index)
        if image is None:
            image = self.folder.load_image(index)
        spatial = image.shape[:-1] if is_rgb(image) else image.shape
        return image, self.folder.load_labels(index, spatial), self.folder.load_rows(index)

    def _skip(self, index: int, error: Exception) -> None:
        reason = str(error)
        try:
            self.folder.mark_skipped(index, reason)
        except PromptSegError as failed:  # the skip stays in memory; say why it won't last
            self._say(str(failed), problem=True)
        self._mark(index)
        self._say(f"skipped: {reason}", problem=True)  # reasons name the file

    # -- showing an image -----------------------------------------------------------------

    def _show(self, index: int, image: np.ndarray, labels, rows) -> None:
        session, viewer = self.session, self.viewer
        name = self.folder.name(index)
        self._prefetch.claim(index)  # keeps a prefetch of this image, cancels any other
        # The session lets go first: changing the layer under it would start an embedding
        # for a half-updated image (new pixels, old contrast limits).
        session.set_image_layer(None)
        prompt_layers.clear_prompts(viewer, None)  # prompts belong to the image they were on
        shape = image.shape[:-1] if is_rgb(image) else image.shape
        with prompt_layers.keeping_selection(viewer):
            path = str(self.folder.images[index])
            self.image_layer = layer = show_image(viewer, self.image_layer, image, name, path)
            self.labels_layer = show_labels(
                viewer, session, self.labels_layer, layer, shape, labels, rows, name
            )
            session.notify_objects_changed()  # the widget's review list and colours follow
        self.index = index
        self._prefetch.shown(index)
        self._mark_current()
        self._update_buttons()
        if self._prefetch.handoff:
            self._say(f"{name}: finishing its embedding in the background…")
        else:
            if session.image_layer is not layer:  # the dock widget may have picked a new one
                session.set_image_layer(layer)
            self._say(f"{name} ({index + 1} of {len(self.folder)}); {self._summary()}")
        self.image_shown.emit(index)

    def _labels_to_save(self):
        # Commits go to the session's labels layer; the panel's own when that one is gone.
        shape = tuple(self.image_layer.data.shape) if self.image_layer is not None else None
        if shape is not None and getattr(self.image_layer, "rgb", False):
            shape = shape[:-1]
        for layer in (self.session.labels_layer, self.labels_layer):
            if layer is not None and layer in self.viewer.layers and layer.data.shape == shape:
                return layer
        return None

    # -- prefetching the next image's embedding (see folder_prefetch) ---------------------

    @property
    def prefetching(self) -> bool:
        """Whether a prefetch is running."""
        return self._prefetch.busy

    @property
    def prefetched_index(self) -> int | None:
        """The image whose embedding the last prefetch put in the cache (this model)."""
        return self._prefetch.index

    def _on_embedding_ready(self, embedding) -> None:
        if self.folder is not None and self.session.image_layer is self.image_layer:
            self._prefetch.embedding_ready(self.folder, next_to_prefetch(self.folder, self.index))

    def _hand_over(self) -> None:
        # The image shown waited for its prefetch: the session now finds it cached.
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            self.session.set_image_layer(self.image_layer)
            if self.folder is not None and self.index is not None:
                self._say(f"{self.folder.name(self.index)}; {self._summary()}")

    def _on_model_changed(self, name: str) -> None:
        self._prefetch.model_changed()

    def _on_busy_changed(self, busy: bool) -> None:
        self._prefetch.hold(busy)

    # -- list and messages ----------------------------------------------------------------

    def _fill_list(self) -> None:
        self.image_list.clear()
        if self.folder is None:
            return
        for index in range(len(self.folder)):
            self.image_list.addItem(QListWidgetItem())
            self._mark(index)

    def _mark(self, index: int) -> None:
        item = self.image_list.item(index)
        if item is None or self.folder is None:
            return
        state = self.folder.state(index)
        item.setText(f"{MARKS.get(state.state, ' ')}  {self.folder.name(index)}")
        tip = state.state + (f": {state.reason}" if state.reason else "")
        if state.objects is not None:
            tip += f" ({state.objects} objects)"
        item.setToolTip(tip)

    def _mark_current(self) -> None:
        self.image_list.blockSignals(True)
        self.image_list.setCurrentRow(-1 if self.index is None else self.index)
        self.image_list.blockSignals(False)

    def _update_buttons(self) -> None:
        has = self.folder is not None and self.index is not None
        self.previous_button.setEnabled(has and self.index > 0)
        self.next_button.setEnabled(has)
        self.first_button.setEnabled(self.folder is not None and len(self.folder) > 0)

    def _summary(self) -> str:
        counts = self.folder.counts() if self.folder is not None else {}
        text = f"{counts.get(DONE, 0)} of {len(self.folder or [])} done"
        return text + (f", {counts[SKIPPED]} skipped" if counts.get(SKIPPED) else "")

    def _say(self, message: str, *, problem: bool = False) -> None:
        say(self.session, self.message_label, message, problem=problem)


def _with_button(edit: QLineEdit, choose) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    button = QPushButton("Choose…")
    button.clicked.connect(choose)
    row.addWidget(button)
    return row


__all__ = ["FILE_KEY", "FolderPanel", "display_limits", "is_rgb"]
