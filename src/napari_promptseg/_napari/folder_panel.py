"""Annotating a folder of images one after another: the "Image folder" panel.

The panel shows one image of the folder at a time in ONE image layer and its saved labels
(if any) in ONE labels layer, both handed to the session; moving on swaps their data (and
clears the labels' undo history) rather than replacing layers, which costs napari ~1 s. Moving on (Previous, Next, First
not done, a click in the list) first saves the labels and objects table of the image shown
(:meth:`core.folder.ImageFolder.save`); if that fails the panel stays where it is, so no
labels are lost. Images that cannot be read or have another shape are skipped with a
message. Reopening a folder resumes at the first image not done.

While the user annotates image i, the embedding of image i+1 is computed in a background
worker, so that Next finds it in the session's cache. The prefetch starts once the current
image's embedding is ready, holds while the session computes an embedding of its own, and
is cancelled when the folder, the model or the panel closes. If the user moves on before
it finishes, the session waits for it rather than computing the same embedding twice.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
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

from ..core.errors import ImageError, PromptSegError
from ..core.folder import DONE, SKIPPED, STARTED, ImageFolder
from . import layers as prompt_layers
from . import objects
from .slices import SliceRef, slice_rgb

# In the image layer's metadata: which file it shows. Not prompt_layers.TAG, which marks
# the plugin's prompt and output layers (the session keeps those selected).
FILE_KEY = "promptseg_folder_image"
_LAYER_KEYS = (prompt_layers.TAG, "promptseg_colormap")  # labels metadata kept across images
MARKS = {DONE: "✓", STARTED: "✎", SKIPPED: "✗"}  # todo: no mark


@dataclass
class _Planes:
    """Stands in for an image layer in ``slice_rgb``, so the prefetch converts pixels exactly
    as the session will once the image is in the layer."""

    data: np.ndarray
    rgb: bool
    contrast_limits: tuple[float, float]
    multiscale: bool = False


def is_rgb(image: np.ndarray) -> bool:
    """Whether the last axis of a read image is colour (3 or 4 values)."""
    return image.ndim >= 3 and image.shape[-1] in (3, 4)


def display_limits(image: np.ndarray) -> tuple[float, float]:
    """Contrast limits the panel gives every image: napari's default rule, on all the data.

    uint8 → (0, 255); otherwise the finite min and max ((min(v, 0), max(v, 1)) if flat).
    The prefetch uses the same limits, so its embedding is the one the session asks for.
    """
    if image.dtype == np.uint8:
        return (0.0, 255.0)
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        low, high = min(low, 0.0), max(high, 1.0)
    return (low, high)


@dataclass
class _Running:
    """The prefetch worker, reachable without the panel (Qt may delete the panel first)."""

    worker: object = None
    index: int | None = None
    alive: bool = True

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.quit()  # stops at the next encoder block
        self.worker = self.index = None

    def forget(self, *_) -> None:
        self.alive = False
        self.stop()


class FolderPanel(QWidget):
    """Open a folder, step through its images, save each one's labels on the way.

    Parameters
    ----------
    viewer
        The napari viewer.
    session
        The :class:`~napari_promptseg._napari.session.SegmentationSession`.
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
        self._running = _Running()
        self._prefetched_for: tuple | None = None  # (index, model id, slice) cached already
        self._prefetched_image: tuple[int, np.ndarray] | None = None
        self._handoff = False  # the session waits for the prefetch of the image shown
        self._armed = False  # a prefetch may start at the next embedding_ready
        self._hold = threading.Event()  # set while the session embeds: the prefetch waits
        self._closed = False
        self._build()
        session.embedding_ready.connect(self._on_embedding_ready)
        session.model_changed.connect(self._on_model_changed)
        session.busy_changed.connect(self._on_busy_changed)
        # Qt may delete the panel without close() (the window closed): stop the worker then.
        self.destroyed.connect(self._running.forget)

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
        self._cancel_prefetch()
        self.folder, self.index = None, None
        self._prefetched_for = self._prefetched_image = None
        self.image_list.clear()
        self._update_buttons()
        return True

    def close(self) -> bool:
        """The dock widget is closing: save, stop the prefetch, disconnect."""
        if not self._closed:
            self._closed = True
            self.save_current(quiet=True)
            self._cancel_prefetch()
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
        if self._prefetched_image is not None and self._prefetched_image[0] == index:
            image = self._prefetched_image[1]
        else:
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
        self._handoff = self._running.worker is not None and self._running.index == index
        if not self._handoff:
            self._cancel_prefetch()
        # The session lets go first: changing the layer under it would start an embedding
        # for a half-updated image (new pixels, old contrast limits).
        session.set_image_layer(None)
        prompt_layers.clear_prompts(viewer, None)  # prompts belong to the image they were on
        rgb, limits = is_rgb(image), display_limits(image)
        layer = self.image_layer
        reuse = (
            layer is not None
            and layer in viewer.layers
            and layer.rgb == rgb
            and layer.data.shape == image.shape
        )
        with prompt_layers.keeping_selection(viewer):
            if reuse:
                layer.data = image
                layer.contrast_limits_range = limits
                layer.contrast_limits = limits
                layer.name = name
                layer.metadata[FILE_KEY] = str(self.folder.images[index])
            else:
                if layer is not None and layer in viewer.layers:
                    viewer.layers.remove(layer)
                layer = viewer.add_image(
                    image,
                    name=name,
                    rgb=rgb,
                    contrast_limits=limits,
                    metadata={FILE_KEY: str(self.folder.images[index])},
                )
                self.image_layer = layer
            self._show_labels(image.shape[:-1] if rgb else image.shape, labels, rows, name)
        self.index = index
        self._prefetched_image = None
        self._armed = True
        self._mark_current()
        self._update_buttons()
        if self._handoff:
            self._say(f"{name}: finishing its embedding in the background…")
        else:
            if session.image_layer is not layer:  # the dock widget may have picked a new one
                session.set_image_layer(layer)
            self._say(f"{name} ({index + 1} of {len(self.folder)}); {self._summary()}")
        self.image_shown.emit(index)

    def _show_labels(self, shape, labels, rows, name: str) -> None:
        """Put the image's saved labels and rows (or nothing) in the panel's labels layer.

        The layer is reused (removing and adding layers costs napari most of a second),
        with its undo history cleared: undo must not reach into the previous image.
        """
        from napari.layers import Labels

        data = np.zeros(shape, np.uint32) if labels is None else labels.astype(np.uint32)
        layer, viewer = self.labels_layer, self.viewer
        if layer is not None and layer in viewer.layers and layer.data.shape == data.shape:
            layer.data = data
            layer.editable = False  # napari's public way to drop a Labels undo history
            layer.editable = True
            # Other metadata is per-image state (rows of undone objects, the autosave name):
            # it belonged to the previous image. Kept: the tag, the widget's own colormap.
            layer.metadata = {k: v for k, v in layer.metadata.items() if k in _LAYER_KEYS}
            layer.name = f"{name} objects"
            self.session.set_labels_layer(layer)
        else:
            if layer is not None and layer in viewer.layers:
                viewer.layers.remove(layer)
            layer = Labels(
                data,
                name=f"{name} objects",
                scale=self.image_layer.scale,
                translate=self.image_layer.translate,
                metadata={prompt_layers.TAG: "objects"},
            )
            # Set before inserting: the dock widget's labels choice follows the session's.
            self.session.set_labels_layer(layer)
            viewer.layers.insert(viewer.layers.index(self.image_layer) + 1, layer)
        objects.set_rows(layer, list(rows))
        self.labels_layer = layer
        self.session.objects_changed.emit()  # the widget's review list and colours follow

    def _labels_to_save(self):
        # Commits go to the session's labels layer; the panel's own when that one is gone.
        shape = tuple(self.image_layer.data.shape) if self.image_layer is not None else None
        if shape is not None and getattr(self.image_layer, "rgb", False):
            shape = shape[:-1]
        for layer in (self.session.labels_layer, self.labels_layer):
            if layer is not None and layer in self.viewer.layers and layer.data.shape == shape:
                return layer
        return None

    # -- prefetching the next image's embedding -------------------------------------------

    @property
    def prefetching(self) -> bool:
        """Whether a prefetch is running."""
        return self._running.worker is not None

    @property
    def prefetched_index(self) -> int | None:
        """The image whose embedding the last prefetch put in the cache (this model)."""
        return None if self._prefetched_for is None else self._prefetched_for[0]

    def _next_to_prefetch(self) -> int | None:
        if self.folder is None or self.index is None:
            return None
        for index in range(self.index + 1, len(self.folder)):
            if self.folder.state(index).state != SKIPPED:
                return index
        return None

    def _on_embedding_ready(self, embedding) -> None:
        # Once per image shown (and model): browsing a stack's slices must not embed the
        # next image's slices one by one. The plane prefetched is the one shown now.
        segmenter, ref = self.session.segmenter, self.session.current_slice
        target = self._next_to_prefetch()
        if not self._armed or self._running.worker is not None or segmenter is None:
            return
        if ref is None or self.session.image_layer is not self.image_layer or target is None:
            return
        self._armed = False
        wanted = (target, segmenter.model_id, ref)
        if wanted != self._prefetched_for:
            self._start_prefetch(target, segmenter, ref)

    def _start_prefetch(self, index: int, segmenter, ref: SliceRef) -> None:
        from napari.qt.threading import create_worker

        folder, hold = self.folder, self._hold
        name = folder.name(index)

        def job():
            image = folder.load_image(index)
            rgb = slice_rgb(_Planes(image, is_rgb(image), display_limits(image)), ref)
            steps = segmenter.iter_embed(rgb)
            try:
                while True:
                    step = next(steps)
                    yield step
                    while hold.is_set():  # the session is embedding: give it the CPU
                        time.sleep(0.05)
                        yield step  # lets a cancel through
            except StopIteration as finished:
                return image, finished.value

        worker = create_worker(
            job, _progress={"desc": f"Prefetching the embedding of {name}"}, _ignore_errors=True
        )
        wanted = (index, segmenter.model_id, ref)
        running = self._running  # callbacks check it: the panel may be gone by then
        worker.returned.connect(
            lambda result: running.alive and self._on_prefetched(worker, wanted, result)
        )
        worker.errored.connect(
            lambda error: running.alive and self._on_prefetch_failed(worker, error)
        )
        worker.finished.connect(lambda: running.alive and self._on_prefetch_finished(worker))
        running.worker, running.index = worker, index
        worker.start()

    def _on_prefetched(self, worker, wanted: tuple, result) -> None:
        if worker is not self._running.worker:
            return
        image, _embedding = result
        self._prefetched_for = wanted
        if self.index != wanted[0]:
            self._prefetched_image = (wanted[0], image)  # Next need not read it again
        self.prefetched.emit(wanted[0])

    def _on_prefetch_failed(self, worker, error: BaseException) -> None:
        if worker is self._running.worker and not isinstance(error, ImageError):
            # An unreadable next image is reported when the user gets there.
            self.session.report(f"prefetching the next embedding failed: {error}", error)

    def _on_prefetch_finished(self, worker) -> None:
        if worker is not self._running.worker:
            return
        self._running.worker = self._running.index = None
        if self._handoff:
            self._hand_over()

    def _hand_over(self) -> None:
        # The image shown waited for its prefetch: the session now finds it cached.
        self._handoff = False
        if self.image_layer is not None and self.image_layer in self.viewer.layers:
            self.session.set_image_layer(self.image_layer)
            if self.folder is not None and self.index is not None:
                self._say(f"{self.folder.name(self.index)}; {self._summary()}")

    def _cancel_prefetch(self) -> None:
        self._running.stop()
        if self._handoff:
            self._hand_over()

    def _on_model_changed(self, name: str) -> None:
        self._cancel_prefetch()  # computing for the old model: wasted
        self._prefetched_for = None
        self._armed = True

    def _on_busy_changed(self, busy: bool) -> None:
        if busy:
            self._hold.set()
        else:
            self._hold.clear()

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
        self.message_label.setText(message)
        if problem:
            self.session.report(message)
        else:
            self.session.status.emit(message)


def _with_button(edit: QLineEdit, choose) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    button = QPushButton("Choose…")
    button.clicked.connect(choose)
    row.addWidget(button)
    return row


__all__ = ["FolderPanel", "display_limits", "is_rgb"]
