"""A random forest as plain arrays: trained by scikit-learn, applied and saved without it.

scikit-learn's ``RandomForestClassifier`` is trained here (the field's standard, as in
micro-sam's object classifier); its trees are then copied into flat numpy arrays, which is
what is saved and what predicts. So a classifier file is data only (``np.load`` with
``allow_pickle=False``; nothing in it can run code) and does not depend on the version of
scikit-learn that trained it, as a pickle or skops file does.

The arrays, for T trees holding N nodes in all (each tree's nodes contiguous, in
scikit-learn's depth-first order, so a child's index is always larger than its parent's):

========== ========== ===============================================================
offsets    (T + 1,)   tree t's nodes are ``offsets[t]:offsets[t + 1]``
left       (N,)       local index of the left child, -1 at a leaf
right      (N,)       local index of the right child, -1 at a leaf
feature    (N,)       the feature a split tests (unused at a leaf)
threshold  (N,)       go left when ``x[feature] <= threshold`` (x cast to float32, as
                      scikit-learn does)
value      (N, K)     class fractions of the training samples at the node
========== ========== ===============================================================

``predict_proba`` averages the leaves' fractions over the trees, as scikit-learn does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .features import ClassifierError

ARRAYS = ("offsets", "left", "right", "feature", "threshold", "value")


@dataclass(frozen=True, eq=False)
class Forest:
    """Trees of a random forest over ``n_features`` features and ``n_classes`` classes."""

    offsets: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    n_features: int

    @property
    def n_classes(self) -> int:
        return int(self.value.shape[1])

    @property
    def n_trees(self) -> int:
        return int(self.offsets.size - 1)

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, n_classes: int, *, trees: int = 200, seed: int = 0
    ) -> Forest:
        """Train on ``x`` (n, F) and class indices ``y`` (n,) in 0..n_classes-1.

        Balanced class weights (few examples, often unequal per class); one thread (the
        machine is shared with the viewer's work).
        """
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(
            n_estimators=trees, class_weight="balanced", random_state=seed, n_jobs=1
        )
        model.fit(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64))
        return cls.from_sklearn(model, n_classes)

    @classmethod
    def from_sklearn(cls, model: Any, n_classes: int) -> Forest:
        """Copy a fitted ``RandomForestClassifier``'s trees; its classes are indices 0..K-1
        (possibly not all of them present)."""
        present = [int(c) for c in model.classes_]
        lefts, rights, features, thresholds, values, offsets = [], [], [], [], [], [0]
        for estimator in model.estimators_:
            tree = estimator.tree_
            value = np.zeros((tree.node_count, n_classes))
            fractions = tree.value[:, 0, :]
            value[:, present] = fractions / np.maximum(fractions.sum(axis=1, keepdims=True), 1e-300)
            lefts.append(tree.children_left.astype(np.int32))
            rights.append(tree.children_right.astype(np.int32))
            features.append(np.maximum(tree.feature, 0).astype(np.int32))
            thresholds.append(tree.threshold.astype(np.float64))
            values.append(value)
            offsets.append(offsets[-1] + tree.node_count)
        forest = cls(
            np.asarray(offsets, dtype=np.int64),
            np.concatenate(lefts),
            np.concatenate(rights),
            np.concatenate(features),
            np.concatenate(thresholds),
            np.vstack(values),
            int(model.n_features_in_),
        )
        forest.check()
        return forest

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, K) class probabilities of the rows of ``x`` (n, F)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ClassifierError(
                f"the classifier takes {self.n_features} features per object; got "
                f"{x.shape[1] if x.ndim == 2 else x.shape}."
            )
        rows = np.arange(x.shape[0])
        total = np.zeros((x.shape[0], self.n_classes))
        for t in range(self.n_trees):
            start = int(self.offsets[t])
            node = np.zeros(x.shape[0], dtype=np.int64)
            while True:
                here = node + start
                inner = self.left[here] >= 0
                if not inner.any():
                    break
                goes_left = x[rows, self.feature[here]] <= self.threshold[here]
                step = np.where(goes_left, self.left[here], self.right[here])
                node = np.where(inner, step, node)
            total += self.value[node + start]
        return total / self.n_trees

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_features: int) -> Forest:
        """The forest of saved arrays, checked (:meth:`check`) before use."""
        try:
            forest = cls(
                np.asarray(arrays["offsets"], dtype=np.int64),
                np.asarray(arrays["left"], dtype=np.int32),
                np.asarray(arrays["right"], dtype=np.int32),
                np.asarray(arrays["feature"], dtype=np.int32),
                np.asarray(arrays["threshold"], dtype=np.float64),
                np.asarray(arrays["value"], dtype=np.float64),
                int(n_features),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ClassifierError(f"the classifier's trees cannot be read: {error}") from None
        forest.check()
        return forest

    def check(self) -> None:
        """Refuse arrays that are not a forest (a damaged or hand-made file): every child
        after its parent inside its own tree (so prediction ends), features in range."""
        n = self.left.size
        if (
            self.offsets.ndim != 1
            or self.offsets.size < 2
            or self.offsets[0] != 0
            or self.offsets[-1] != n
            or np.any(np.diff(self.offsets) < 1)
            or any(a.shape != (n,) for a in (self.right, self.feature, self.threshold))
            or self.value.ndim != 2
            or self.value.shape[0] != n
            or self.value.shape[1] < 2
        ):
            raise ClassifierError("the classifier's trees are malformed (array sizes disagree).")
        local = np.arange(n) - np.repeat(self.offsets[:-1], np.diff(self.offsets))
        sizes = np.repeat(np.diff(self.offsets), np.diff(self.offsets))
        leaf = self.left < 0
        children_ok = (
            (leaf == (self.right < 0))
            & (leaf | ((self.left > local) & (self.left < sizes)))
            & (leaf | ((self.right > local) & (self.right < sizes)))
        )
        features_ok = leaf | ((self.feature >= 0) & (self.feature < self.n_features))
        if not (children_ok.all() and features_ok.all() and np.isfinite(self.value).all()):
            raise ClassifierError("the classifier's trees are malformed (bad node links).")
