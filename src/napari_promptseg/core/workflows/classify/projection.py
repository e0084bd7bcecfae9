"""The pooled embedding columns reduced to their principal components before the forest.

Why: a random forest picks each split among ~√F random columns. Pooled SAM embeddings give
2 x 256 columns (mean and spread per channel) against 18 shape and intensity measures, and
with 5 examples per class some of those 512 columns separate the examples by chance: the
splits then follow noise. Measured (``benchmarks/bench_classify.py``, MobileSAM random
weights, two-class synthetic cells, 5 examples per class, 10 draws): 0.77 held-out accuracy
with the raw columns, 1.00 with the embedding reduced to 16 principal components fitted on
all objects of the training image (no classes used: the unlabelled objects count too).
The projection is part of the classifier (its file) so other images are projected alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import ClassifierError

COMPONENTS = 16
PREFIX = "emb_"
ARRAYS = ("projection_columns", "projection_mean", "projection_components")


@dataclass(frozen=True, eq=False)
class EmbeddingProjection:
    """``columns`` (the ``emb_*`` columns of the feature vector) → ``components`` (k, D)
    principal directions around ``mean`` (D,); the other columns pass through."""

    columns: np.ndarray
    mean: np.ndarray
    components: np.ndarray

    @classmethod
    def fit(
        cls, names: tuple[str, ...], values: np.ndarray, components: int = COMPONENTS
    ) -> EmbeddingProjection:
        columns = np.array([i for i, n in enumerate(names) if n.startswith(PREFIX)], np.int64)
        block = np.asarray(values, np.float64)[:, columns]
        mean = block.mean(axis=0) if len(block) else np.zeros(len(columns))
        k = max(0, min(components, len(block) - 1, len(columns)))
        if k == 0:
            return cls(columns, mean, np.zeros((0, len(columns))))
        _u, _s, vt = np.linalg.svd(block - mean, full_matrices=False)
        # each direction's largest entry positive: the same projection from the same data
        signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
        return cls(columns, mean, vt[:k] * np.where(signs == 0, 1, signs)[:, None])

    def apply(self, values: np.ndarray) -> np.ndarray:
        """(N, F) features → (N, k + F - D): components first, then the other columns."""
        values = np.asarray(values, np.float64)
        rest = np.setdiff1d(np.arange(values.shape[1]), self.columns)
        reduced = (values[:, self.columns] - self.mean) @ self.components.T
        return np.hstack([reduced, values[:, rest]])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "projection_columns": self.columns,
            "projection_mean": self.mean,
            "projection_components": self.components,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_features: int) -> EmbeddingProjection:
        try:
            columns = np.asarray(arrays["projection_columns"], np.int64).reshape(-1)
            mean = np.asarray(arrays["projection_mean"], np.float64).reshape(-1)
            components = np.asarray(arrays["projection_components"], np.float64)
        except (KeyError, ValueError, TypeError) as error:
            raise ClassifierError(f"the embedding projection is damaged ({error}).") from None
        valid = (
            components.ndim == 2
            and components.shape[1] == len(columns) == len(mean)
            and (not len(columns) or (columns.min() >= 0 and columns.max() < n_features))
            and len(np.unique(columns)) == len(columns)
            and np.isfinite(components).all()
            and np.isfinite(mean).all()
        )
        if not valid:
            raise ClassifierError("the embedding projection is damaged (shapes or values).")
        return cls(columns, mean, components)

    def reduced_width(self, n_features: int) -> int:
        return len(self.components) + n_features - len(self.columns)
