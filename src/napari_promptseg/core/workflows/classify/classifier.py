"""The object classifier: trained from a few objects per class, applied to every object.

    >>> features = object_features(planes, labels, embedding_for)     # .features
    >>> classifier = ObjectClassifier.train(features, {3: "dead", 7: "alive", ...})
    >>> predictions = classifier.predict(features)     # id, class, probability per object
    >>> save_classifier("cells.classifier.npz", classifier)

File format (``*.npz``, read with ``allow_pickle=False``: data only, no code): the forest's
arrays (:mod:`.forest`), the embedding projection's (:mod:`.projection`) and ``meta``, a
JSON text::

    {"format": "napari-promptseg object classifier", "version": 1,
     "classes": ["alive", "dead"], "feature_names": [...],
     "signature": {"model": "vit_b", "model_id": "vit_b@01ec64d29a2fca3f", "family": "sam",
                   "channels": 256},
     "examples": {"alive": 5, "dead": 5}}

Applying it to features pooled from another model's embeddings is refused, naming both.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...storage.files import atomic_write
from .features import ClassifierError, EmbeddingSignature, ObjectFeatures
from .forest import ARRAYS, Forest
from .projection import ARRAYS as PROJECTION_ARRAYS
from .projection import EmbeddingProjection

FORMAT = "napari-promptseg object classifier"
VERSION = 1
SUFFIX = ".npz"


@dataclass(frozen=True)
class Prediction:
    """One object's predicted ``class_name`` and its ``probability`` (the forest's vote share)."""

    object_id: int
    class_name: str
    probability: float


@dataclass(frozen=True, eq=False)
class ObjectClassifier:
    """A random forest over :class:`.features.ObjectFeatures` of one embedding signature."""

    forest: Forest  # over the projected features (:mod:`.projection`)
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    signature: EmbeddingSignature
    examples: dict[str, int]
    projection: EmbeddingProjection

    @classmethod
    def train(
        cls,
        features: ObjectFeatures,
        examples: Mapping[int, str],
        *,
        classes: Sequence[str] | None = None,
        trees: int = 200,
        seed: int = 0,
    ) -> ObjectClassifier:
        """Learn the classes of the objects in ``examples`` (id → class name).

        ``classes`` fixes the classes and their order (default: the examples' classes in
        order of first appearance); each must have an example.

        Raises
        ------
        ClassifierError
            No examples, fewer than two classes, a listed class with no example, an
            example's class not listed, or example ids that are not objects.
        """
        given = {int(i): str(name).strip() for i, name in examples.items() if str(name).strip()}
        if not given:
            raise ClassifierError("no examples: give a class to a few objects of each class.")
        names = list(dict.fromkeys(classes if classes is not None else given.values()))
        unknown = sorted(set(given.values()) - set(names))
        if unknown:
            raise ClassifierError(
                f"example class(es) {', '.join(map(repr, unknown))} are not in the class list "
                f"({', '.join(names)})."
            )
        counts = {name: sum(1 for c in given.values() if c == name) for name in names}
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            raise ClassifierError(
                f"class(es) {', '.join(map(repr, empty))} have no example: give at least one "
                "object each of those classes, or remove them from the list."
            )
        if len(names) < 2:
            raise ClassifierError(
                f"only one class ({names[0]!r}, {counts[names[0]]} examples): a classifier "
                "needs examples of at least two classes."
            )
        rows = features.rows_of(given)
        y = np.array([names.index(given[i]) for i in given], dtype=np.int64)
        # fitted on every object, labelled or not: no class is used
        projection = EmbeddingProjection.fit(features.names, features.values)
        x = projection.apply(features.values[rows])
        forest = Forest.fit(x, y, len(names), trees=trees, seed=seed)
        return cls(forest, tuple(names), features.names, features.signature, counts, projection)

    def check_compatible(self, features: ObjectFeatures) -> None:
        """Refuse features from another model's embeddings (or another feature set)."""
        if features.signature.model_id != self.signature.model_id or (
            features.signature.channels != self.signature.channels
        ):
            raise ClassifierError(
                f"this classifier was trained on embeddings of {self.signature.describe()}; "
                f"these objects' embeddings are from {features.signature.describe()}. Load "
                f"model {self.signature.model!r} to apply it, or train a new one."
            )
        if tuple(features.names) != tuple(self.feature_names):
            raise ClassifierError(
                "the objects' features are not those the classifier was trained on "
                f"({len(features.names)} vs {len(self.feature_names)} features)."
            )

    def probabilities(self, features: ObjectFeatures) -> np.ndarray:
        """(N, K) probability of each class (:attr:`classes`) for each object."""
        self.check_compatible(features)
        return self.forest.predict_proba(self.projection.apply(features.values))

    def predict(self, features: ObjectFeatures) -> list[Prediction]:
        """Every object's most probable class and its probability, in id order."""
        proba = self.probabilities(features)
        best = proba.argmax(axis=1)
        return [
            Prediction(int(i), self.classes[int(k)], float(proba[n, k]))
            for n, (i, k) in enumerate(zip(features.ids, best, strict=True))
        ]

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "classes": list(self.classes),
            "feature_names": list(self.feature_names),
            "signature": self.signature.to_dict(),
            "examples": dict(self.examples),
        }


def save_classifier(path: str | os.PathLike, classifier: ObjectClassifier) -> Path:
    """Write ``classifier`` to ``path`` (``.npz``) atomically; returns the path."""
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        raise ClassifierError(f"classifiers are saved as {SUFFIX} files; got {path.name}.")
    meta = np.array(json.dumps(classifier.metadata()))
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {
        "meta": meta,
        **classifier.forest.arrays(),
        **classifier.projection.arrays(),
    }
    np.savez_compressed(buffer, **arrays)
    payload = buffer.getvalue()
    return atomic_write(path, lambda file: file.write(payload))


def load_classifier(path: str | os.PathLike) -> ObjectClassifier:
    """Read a classifier file (from here or elsewhere) as data only; every part is checked.

    Raises
    ------
    ClassifierError
        The file is missing, not a classifier, from a newer version, or damaged.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ClassifierError(f"classifier {path} does not exist.") from None
    except (OSError, ValueError) as error:  # not an npz, or it holds objects (pickles)
        raise ClassifierError(f"{path} is not a classifier file: {error}") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, ValueError, TypeError):
        raise ClassifierError(f"{path} is not a classifier file (no readable 'meta').") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ClassifierError(f'{path} is not a classifier file: expected "format": "{FORMAT}".')
    version = meta.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ClassifierError(
            f"{path} is classifier version {version!r}; this napari-promptseg reads version "
            f"{VERSION} (update napari-promptseg)."
        )
    classes = meta.get("classes")
    names = meta.get("feature_names")
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
        or not isinstance(names, list)
        or not all(isinstance(n, str) for n in names)
    ):
        raise ClassifierError(f"{path}: the classifier's classes or feature names are damaged.")
    missing = [name for name in (*ARRAYS, *PROJECTION_ARRAYS) if name not in arrays]
    if missing:
        raise ClassifierError(f"{path}: the classifier lacks its {', '.join(missing)} arrays.")
    try:
        projection = EmbeddingProjection.from_arrays(arrays, len(names))
        forest = Forest.from_arrays(arrays, projection.reduced_width(len(names)))
        signature = EmbeddingSignature.from_dict(meta.get("signature") or {})
    except ClassifierError as error:
        raise ClassifierError(f"{path}: {error}") from None
    if forest.n_classes != len(classes):
        raise ClassifierError(
            f"{path}: the trees vote for {forest.n_classes} classes, not the {len(classes)} listed."
        )
    examples = meta.get("examples")
    examples = examples if isinstance(examples, dict) else {}
    return ObjectClassifier(
        forest,
        tuple(classes),
        tuple(names),
        signature,
        {str(k): int(v) for k, v in examples.items() if isinstance(v, int)},
        projection,
    )
