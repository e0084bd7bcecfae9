"""The "Learn classes" section: a classifier trained on the objects the user gave a class.

Give a few objects of each class their class (the "Object classes" section: Shift+click an
object, then key 1–9), then *Train & predict*: the features of every object (the SAM
embedding pooled under it, from the session's cache, plus shape and intensity) are computed
in the background, a random forest learns the examples, and every other object gets a
predicted class and its probability in the features table (``class``, ``class_source``,
``class_probability``; see :mod:`napari_promptseg._napari.classifier`). The review list
shows the predictions least certain first; picking one starts an edit of that object, so a
class key corrects it, and with *retrain on corrections* the classifier learns again at
once. The classifier is saved as a data-only ``.npz`` that ``promptseg classify
--classifier`` applies to other images and folders.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..._napari import classes as layer_classes
from ..._napari import classifier as layer_classifier
from ...core.errors import PromptSegError
from ...core.workflows.classify.classifier import (
    ObjectClassifier,
    load_classifier,
    save_classifier,
)
from ...core.workflows.classify.features import ObjectFeatures, iter_object_features
from ...core.workflows.classify.images import embedding_of
from ..workers import BarProgress, WorkerSlot
from .registry import disconnect, say

RETRAIN_DELAY_MS = 300  # corrections in a burst (several keys) retrain once


class ClassifierPanel(QWidget):
    """Train on the user's classes, predict the rest, review the least certain."""

    def __init__(self, viewer, session) -> None:
        super().__init__()
        self.viewer = viewer
        self.session = session
        self.classifier: ObjectClassifier | None = None
        self.predictions = 0  # objects given a predicted class by the last run
        self._features: tuple[tuple, ObjectFeatures] | None = None  # (key, features)
        self._trained_on: dict[int, str] | None = None

        self.examples_label = QLabel()
        self.examples_label.setWordWrap(True)
        self.train_button = button("Train && predict", "learn the classes given, predict the rest")
        self.apply_button = button("Apply", "predict with the classifier as it is (loaded)")
        self.cancel_button = button("Cancel", "stop computing the objects' features")
        self.save_button = button("Save…", "save the classifier (.npz) for promptseg classify")
        self.load_button = button("Load…", "load a classifier saved here or by the CLI")
        self.retrain_check = QCheckBox("retrain on corrections")
        self.retrain_check.setChecked(True)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.review = QListWidget()
        self.review.setMaximumHeight(160)
        self.review.setToolTip("least certain first: pick one, then a class key corrects it")
        grid = QGridLayout()
        grid.addWidget(self.train_button, 0, 0)
        grid.addWidget(self.apply_button, 0, 1)
        grid.addWidget(self.cancel_button, 0, 2)
        grid.addWidget(self.save_button, 1, 0)
        grid.addWidget(self.load_button, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.examples_label)
        layout.addLayout(grid)
        layout.addWidget(self.retrain_check)
        layout.addWidget(self.status_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(QLabel("Review (least certain first):"))
        layout.addWidget(self.review)

        self._slot = WorkerSlot(self)
        self._progress: BarProgress | None = None
        self._retrain = QTimer(self)
        self._retrain.setSingleShot(True)
        self._retrain.setInterval(RETRAIN_DELAY_MS)
        self._retrain.timeout.connect(self._retrain_if_corrected)
        self.train_button.clicked.connect(self.train)
        self.apply_button.clicked.connect(self.apply)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(self._ask_save)
        self.load_button.clicked.connect(self._ask_load)
        self.review.itemActivated.connect(self._review_chosen)
        self.review.itemClicked.connect(self._review_chosen)
        session.objects_changed.connect(self._on_objects_changed)
        session.model_changed.connect(self._on_model_changed)
        self._set_running(False)
        self._show_examples()

    @property
    def running(self) -> bool:
        return self._slot.running

    # -- what tests and scripts call -------------------------------------------------------

    def labels_layer(self) -> Any:
        """The session's labels layer; else the selected one, or the only one, in the viewer."""
        if self.session.labels_layer is not None:
            return self.session.labels_layer
        from napari.layers import Labels

        from ..._napari.layers import TAG

        found = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and layer.metadata.get(TAG) != "preview"
        ]
        active = self.viewer.layers.selection.active
        if active in found:
            return active
        return found[0] if len(found) == 1 else None

    def examples(self) -> dict[int, str]:
        layer = self.labels_layer()
        return {} if layer is None else layer_classifier.examples_of(layer)

    def train(self) -> bool:
        """Train on the objects the user gave a class, then predict every other object."""
        return self._start(train=True)

    def apply(self) -> bool:
        """Predict every object with the current (trained or loaded) classifier."""
        if self.classifier is None:
            say(
                self.session,
                self.status_label,
                "no classifier: train one or load one.",
                problem=True,
            )
            return False
        return self._start(train=False)

    def cancel(self) -> None:
        if self._slot.running:
            self._slot.quit()
            self.cancel_button.setEnabled(False)

    def save(self, path: str | Path) -> Path | None:
        if self.classifier is None:
            say(
                self.session,
                self.status_label,
                "no classifier to save: train one first.",
                problem=True,
            )
            return None
        try:
            written = save_classifier(path, self.classifier)
        except (PromptSegError, OSError) as error:
            say(
                self.session,
                self.status_label,
                f"cannot save the classifier: {error}",
                problem=True,
            )
            return None
        say(self.session, self.status_label, f"classifier saved to {written}")
        return written

    def load(self, path: str | Path) -> bool:
        try:
            self.classifier = load_classifier(path)
        except PromptSegError as error:
            say(self.session, self.status_label, str(error), problem=True)
            return False
        self._trained_on = None  # not trained on this layer's examples
        names = ", ".join(self.classifier.classes)
        say(self.session, self.status_label, f"classifier of {names} loaded from {path}: Apply")
        self._set_running(False)
        return True

    def review_items(self) -> list[tuple[int, str, float]]:
        layer = self.labels_layer()
        return [] if layer is None else layer_classifier.review_order(layer)

    def go_to(self, object_id: int) -> bool:
        """Show object ``object_id`` (its plane, centred) and start editing it."""
        layer = self.labels_layer()
        if layer is None:
            return False
        data = np.asarray(layer.data[0] if getattr(layer, "multiscale", False) else layer.data)
        where = np.argwhere(data == object_id)
        if not len(where):
            say(self.session, self.status_label, f"object {object_id} is not in {layer.name!r}.")
            return False
        middle = where[len(where) // 2]
        leading = data.ndim - 2
        for axis in range(leading):
            self.viewer.dims.set_current_step(axis, int(middle[axis]))
        on_plane = where[np.all(where[:, :leading] == middle[:leading], axis=1)]
        centre = np.asarray(layer.data_to_world(on_plane.mean(axis=0)))
        self.viewer.camera.center = tuple(centre[-2:])
        return self.session.editing.start(layer, int(object_id))

    # -- the run ----------------------------------------------------------------------------

    def _start(self, *, train: bool) -> bool:
        session = self.session
        try:
            job, inputs = self._job(train)
        except PromptSegError as error:
            say(session, self.status_label, str(error), problem=True)
            return False
        self._progress = BarProgress(self.progress_bar)
        self._slot.start(
            job,
            background=True,
            yielded=self._on_step,
            returned=lambda result: self._on_returned(result, inputs.labels_name),
            errored=self._on_errored,
            aborted=lambda: say(session, self.status_label, "classification cancelled"),
            finished=self._on_finished,
        )
        what = "training and predicting" if train else "predicting"
        self._set_running(True, f"{what} on {inputs.labels_name}…")
        return True

    def _job(self, train: bool):
        session = self.session
        segmenter, layer = session.segmenter, self.labels_layer()
        if segmenter is None:
            raise PromptSegError("load a model first: the features come from its embeddings.")
        if session.image_layer is None or layer is None:
            raise PromptSegError(
                "classes need an image layer and a labels layer with objects: select the "
                "labels layer (or Shift+click one of its objects)."
            )
        inputs = layer_classifier.classifier_input(session.image_layer, layer)
        if not inputs.labels.any():
            raise PromptSegError(f"{inputs.labels_name!r} holds no objects to classify.")
        examples = layer_classifier.examples_of(layer) if train else {}
        order = self._class_order()
        if train:
            from ...core.workflows.classify.features import ClassifierError

            given = set(examples.values())
            if len(given) < 2:
                raise ClassifierError(
                    "give a class to a few objects of at least two classes first "
                    f"(given: {', '.join(sorted(given)) or 'none'}): Shift+click an object, "
                    "then a class key 1–9."
                )
        key = (id(layer), _digest(inputs.labels), segmenter.model_id)
        known = self._features[1] if self._features and self._features[0] == key else None
        classifier = self.classifier
        embedding_for = embedding_of(segmenter)

        def job():
            features = known
            if features is None:
                features = yield from iter_object_features(
                    inputs.planes, inputs.labels, embedding_for
                )
            trained = classifier
            if train:
                classes = [c for c in order if c in examples.values()] or None
                if classes is not None:
                    classes += sorted(set(examples.values()) - set(classes))
                trained = ObjectClassifier.train(features, examples, classes=classes)
            assert trained is not None
            return key, features, trained, examples, trained.predict(features)

        return job, inputs

    def _class_order(self) -> list[str]:
        listed = layer_classes.classes_of_layer(self.labels_layer())
        return list(listed.names) if listed is not None else []

    def _on_step(self, step: tuple[int, int]) -> None:
        done, total = step
        if self._progress is not None:
            self._progress.total = total
            self._progress.update(done - self._progress.n)
        self.status_label.setText(f"object features: plane {done} of {total}")

    def _on_returned(self, result, labels_name: str) -> None:
        key, features, classifier, examples, predictions = result
        layer = self.labels_layer()
        if layer is None or (id(layer), _digest(_layer_labels(layer))) != key[:2]:
            say(self.session, self.status_label, "the objects changed meanwhile: train again.")
            return
        self._features = (key, features)
        self.classifier = classifier
        self._trained_on = dict(examples) if examples else self._trained_on
        self.predictions = layer_classifier.write_predictions(layer, predictions)
        self.session.notify_objects_changed()  # colours by class, autosave, the table
        counts: dict[str, int] = {}
        for prediction in predictions:
            counts[prediction.class_name] = counts.get(prediction.class_name, 0) + 1
        summary = ", ".join(f"{name} {n}" for name, n in counts.items())
        trained = f"trained on {len(examples)} examples; " if examples else ""
        say(
            self.session,
            self.status_label,
            f"{trained}{self.predictions} object(s) of {labels_name} predicted; all objects: "
            f"{summary}",
        )
        self._fill_review()

    def _on_errored(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, PromptSegError) else f"classifier failed: {error}"
        self.session.report(message, error)
        self.status_label.setText(message)

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._set_running(False)

    # -- reacting to the user -------------------------------------------------------------

    def _on_objects_changed(self) -> None:
        self._show_examples()
        self._fill_review()
        if self.retrain_check.isChecked() and self._trained_on is not None:
            self._retrain.start()

    def _retrain_if_corrected(self) -> None:
        if self._slot.running or self._trained_on is None:
            return
        examples = self.examples()
        if examples != self._trained_on and len(set(examples.values())) >= 2:
            self.train()

    def _on_model_changed(self, *_: Any) -> None:
        self._features = None  # other embeddings: other features

    def _show_examples(self) -> None:
        examples = self.examples()
        counts: dict[str, int] = {}
        for name in examples.values():
            counts[name] = counts.get(name, 0) + 1
        if counts:
            text = ", ".join(f"{name} {n}" for name, n in counts.items())
            self.examples_label.setText(f"examples: {text}")
        else:
            self.examples_label.setText(
                "examples: none yet. Give a few objects of each class their class "
                "(Shift+click an object, then key 1–9), then Train & predict."
            )

    def _fill_review(self) -> None:
        self.review.clear()
        for object_id, name, probability in self.review_items():
            item = QListWidgetItem(f"{probability:.2f}  {name}  (object {object_id})")
            item.setData(Qt.UserRole, object_id)
            self.review.addItem(item)

    def _review_chosen(self, item: QListWidgetItem) -> None:
        self.go_to(int(item.data(Qt.UserRole)))

    def _set_running(self, running: bool, text: str | None = None) -> None:
        self.train_button.setEnabled(not running)
        self.apply_button.setEnabled(not running and self.classifier is not None)
        self.save_button.setEnabled(not running and self.classifier is not None)
        self.load_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if text is not None:
            self.status_label.setText(text)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Classifier", "classes.npz", "*.npz")
        if path:
            self.save(path)

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Classifier", "", "Classifiers (*.npz)")
        if path:
            self.load(path)

    def close(self) -> bool:
        self._retrain.stop()
        self._slot.cancel()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        disconnect(
            (self.session.objects_changed, self._on_objects_changed),
            (self.session.model_changed, self._on_model_changed),
        )
        return super().close()


def button(text: str, tip: str) -> QPushButton:
    widget = QPushButton(text)
    widget.setToolTip(tip)
    return widget


def _layer_labels(layer: Any) -> np.ndarray:
    return np.asarray(layer.data[0] if getattr(layer, "multiscale", False) else layer.data)


def _digest(labels: np.ndarray) -> str:
    """What the labels hold (features are reused while it stays the same)."""
    data = np.ascontiguousarray(labels)
    return hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest() + str(data.shape)
