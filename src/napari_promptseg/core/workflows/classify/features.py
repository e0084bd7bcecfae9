"""Per-object features: the SAM embedding pooled under each object, plus shape and intensity.

For every object (id > 0 of a label image, 2D or a stack of planes):

* ``emb_mean_<k>``, ``emb_std_<k>`` for each embedding channel k: the mean and spread of the
  plane's cached image embedding under the object's pixels. The embedding is a (C, G, G)
  grid of the image *as the encoder saw it*: SAM and MobileSAM resize the longest side to
  S (1024) and pad bottom/right, so only the top-left ``input_size / S * G`` cells hold the
  image; SAM 2.1 squeezes the whole image to S x S (``input_size == (S, S)``). Each pixel
  (r, c) of the H x W image sits in cell ``floor((r + 0.5) * h / H * G / S)`` (rows; columns
  alike with w, W), where (h, w) = ``input_size`` and S = max(h, w). The pooled figures are
  those of the embedding resampled to the image's pixels (nearest cell) under the mask, so a
  non-square image is mapped into the valid part of the grid only, never into the padding.
* ``area`` (pixels, summed over planes) and the area-weighted mean over planes of
  regionprops' ``perimeter``, ``eccentricity``, ``solidity``, ``extent``,
  ``axis_major_length``, ``axis_minor_length``;
* ``intensity_mean_<r|g|b>``, ``intensity_std_<r|g|b>``: of the (H, W, 3) uint8 pixels SAM
  sees (the user's contrast limits applied), so they compare across images shown alike.

Nothing is re-encoded here: the caller hands each plane's embedding (``embedding_for``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

import numpy as np

from ...errors import PromptSegError
from ...sam.embedding import ImageEmbedding

SHAPE_MEASURES = (
    "perimeter",
    "eccentricity",
    "solidity",
    "extent",
    "axis_major_length",
    "axis_minor_length",
)
COLOURS = ("r", "g", "b")


class ClassifierError(PromptSegError, ValueError):
    """Objects cannot be classified or a classifier trained or read: says what and why."""


@dataclass(frozen=True)
class EmbeddingSignature:
    """Which embeddings features were pooled from: the model and its embedding's channels.

    A classifier trained on one model's embeddings is meaningless on another's; the
    signature travels with the classifier and is compared before it is applied.
    """

    model: str  # the model's name, for messages ("vit_b", "vit_t_lm", a file's type)
    model_id: str  # identity of the weights (name and hash prefix, or file fingerprint)
    family: str
    channels: int

    @classmethod
    def of(cls, embedding: ImageEmbedding) -> EmbeddingSignature:
        key = embedding.key
        model = str(embedding.metadata.get("model") or key.model_id)
        return cls(model, key.model_id, key.family, int(embedding.features.shape[1]))

    def describe(self) -> str:
        return f"model {self.model!r} ({self.family}, weights {self.model_id}, {self.channels} ch)"

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "model_id": self.model_id,
            "family": self.family,
            "channels": self.channels,
        }

    @classmethod
    def from_dict(cls, document: dict) -> EmbeddingSignature:
        try:
            return cls(
                str(document["model"]),
                str(document["model_id"]),
                str(document["family"]),
                int(document["channels"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ClassifierError(
                "the classifier names no embedding signature (model, model_id, family, channels)."
            ) from None


def feature_names(channels: int) -> tuple[str, ...]:
    """Column names of the feature matrix for an embedding of ``channels`` channels."""
    return (
        *(f"emb_mean_{k}" for k in range(channels)),
        *(f"emb_std_{k}" for k in range(channels)),
        "area",
        *SHAPE_MEASURES,
        *(f"intensity_mean_{c}" for c in COLOURS),
        *(f"intensity_std_{c}" for c in COLOURS),
    )


@dataclass(frozen=True)
class ObjectFeatures:
    """The feature matrix of a label image's objects.

    Attributes
    ----------
    ids
        (N,) int64 object ids, ascending.
    values
        (N, F) float64, one row per id, columns :attr:`names`.
    names
        F column names (:func:`feature_names`).
    signature
        The embeddings the ``emb_*`` columns come from.
    """

    ids: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]
    signature: EmbeddingSignature

    def rows_of(self, ids: Iterable[int]) -> np.ndarray:
        """Row indices of ``ids``; :class:`ClassifierError` names ids that are not objects."""
        wanted = [int(i) for i in ids]
        where = {int(i): n for n, i in enumerate(self.ids)}
        missing = [i for i in wanted if i not in where]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
            raise ClassifierError(
                f"{len(missing)} example id(s) are not objects of the label image: {shown}."
            )
        return np.array([where[i] for i in wanted], dtype=np.int64)


def embedding_cells(
    plane_shape: tuple[int, int], embedding: ImageEmbedding
) -> tuple[np.ndarray, int]:
    """The embedding cell of every pixel: (H, W) int64 flat indices into the G x G grid, and G.

    Accounts for SAM's resize of the longest side and bottom/right padding (and SAM 2.1's
    squeeze to a square): see the module docstring.
    """
    height, width = plane_shape
    if tuple(embedding.original_size) != (height, width):
        raise ClassifierError(
            f"the embedding is of a {embedding.original_size[0]}x{embedding.original_size[1]} "
            f"image, the labels' plane is {height}x{width}."
        )
    grid = int(embedding.features.shape[-1])
    in_h, in_w = (int(v) for v in embedding.input_size)
    side = max(in_h, in_w)
    rows = np.floor((np.arange(height) + 0.5) * (in_h / height) * (grid / side)).astype(np.int64)
    cols = np.floor((np.arange(width) + 0.5) * (in_w / width) * (grid / side)).astype(np.int64)
    rows, cols = np.minimum(rows, grid - 1), np.minimum(cols, grid - 1)
    return rows[:, None] * grid + cols[None, :], grid


@dataclass
class _Sums:
    """Running sums per object over planes (pixel-weighted)."""

    channels: int
    pixels: dict[int, float] = field(default_factory=dict)
    emb: dict[int, np.ndarray] = field(default_factory=dict)  # (2, C): sum x, sum x²
    shape: dict[int, np.ndarray] = field(default_factory=dict)  # area-weighted measures
    colour: dict[int, np.ndarray] = field(default_factory=dict)  # (2, 3): sum, sum²

    def add(self, key: int, store: dict[int, np.ndarray], value: np.ndarray) -> None:
        store[key] = store[key] + value if key in store else value.copy()


class FeatureAccumulator:
    """Features of objects spread over planes: :meth:`add_plane` each, then :meth:`finish`."""

    def __init__(self) -> None:
        self._sums: _Sums | None = None
        self.signature: EmbeddingSignature | None = None

    def add_plane(self, labels: np.ndarray, rgb: np.ndarray, embedding: ImageEmbedding) -> None:
        """Add one plane: ``labels`` (H, W) ints, ``rgb`` (H, W, 3) uint8 as SAM saw it,
        ``embedding`` that plane's (whole, not tiled) embedding."""
        from scipy import sparse
        from skimage.measure import regionprops

        labels = np.asarray(labels)
        if labels.ndim != 2 or rgb.shape[:2] != labels.shape:
            raise ClassifierError(
                f"a labels plane {labels.shape} does not match its image plane {rgb.shape[:2]}."
            )
        signature = EmbeddingSignature.of(embedding)
        if self.signature is None:
            self.signature = signature
            self._sums = _Sums(signature.channels)
        elif signature != self.signature:
            raise ClassifierError(
                f"planes embedded by different models: {self.signature.describe()} and "
                f"{signature.describe()}."
            )
        sums = self._sums
        assert sums is not None
        inside = labels > 0
        if not inside.any():
            return
        cells, grid = embedding_cells(labels.shape, embedding)
        ids, index = np.unique(labels[inside], return_inverse=True)
        counts = sparse.csr_matrix(
            (np.ones(index.size), (index, cells[inside])), shape=(ids.size, grid * grid)
        )
        table = embedding.features[0].detach().float().cpu().numpy().reshape(sums.channels, -1)
        table = table.astype(np.float64).T  # (G*G, C)
        first, second = counts @ table, counts @ (table * table)
        pixels = np.asarray(counts.sum(axis=1)).ravel()
        flat_rgb = rgb[inside].astype(np.float64)
        colour_sum = np.stack([np.bincount(index, flat_rgb[:, c]) for c in range(3)], axis=1)
        colour_sq = np.stack([np.bincount(index, flat_rgb[:, c] ** 2) for c in range(3)], axis=1)
        props = {int(p.label): p for p in regionprops(labels.astype(np.int64, copy=False))}
        for n, object_id in enumerate(int(i) for i in ids):
            area = float(pixels[n])
            sums.pixels[object_id] = sums.pixels.get(object_id, 0.0) + area
            sums.add(object_id, sums.emb, np.stack([first[n], second[n]]))
            measures = np.array([float(getattr(props[object_id], m)) for m in SHAPE_MEASURES])
            sums.add(object_id, sums.shape, np.nan_to_num(measures) * area)
            sums.add(object_id, sums.colour, np.stack([colour_sum[n], colour_sq[n]]))

    def finish(self) -> ObjectFeatures:
        """The feature matrix; :class:`ClassifierError` when no plane held an object."""
        sums = self._sums
        if sums is None or self.signature is None or not sums.pixels:
            raise ClassifierError("the labels hold no objects (no pixel above 0).")
        ids = np.array(sorted(sums.pixels), dtype=np.int64)
        rows = []
        for object_id in ids.tolist():
            area = sums.pixels[object_id]
            emb_mean = sums.emb[object_id][0] / area
            emb_std = np.sqrt(np.maximum(sums.emb[object_id][1] / area - emb_mean**2, 0.0))
            colour_mean = sums.colour[object_id][0] / area
            colour_std = np.sqrt(np.maximum(sums.colour[object_id][1] / area - colour_mean**2, 0))
            shape = sums.shape[object_id] / area
            rows.append(np.concatenate([emb_mean, emb_std, [area], shape, colour_mean, colour_std]))
        return ObjectFeatures(ids, np.vstack(rows), feature_names(sums.channels), self.signature)


PlaneEmbedding = Callable[[tuple[int, ...], np.ndarray], ImageEmbedding | None]


def object_features(
    planes: Iterable[tuple[tuple[int, ...], np.ndarray]],
    labels: np.ndarray,
    embedding_for: PlaneEmbedding,
) -> ObjectFeatures:
    """Features of every object of ``labels`` (the image's shape without colour: (H, W) or
    (..., H, W)) over the image ``planes`` ((plane index, (H, W, 3) uint8) pairs).

    ``embedding_for(plane_index, rgb)`` gives that plane's embedding (cached, or computed
    if the caller allows); None for a plane holding objects raises a clear
    :class:`ClassifierError`. Planes without objects are skipped without asking.
    """
    steps = iter_object_features(planes, labels, embedding_for)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def iter_object_features(
    planes: Iterable[tuple[tuple[int, ...], np.ndarray]],
    labels: np.ndarray,
    embedding_for: PlaneEmbedding,
) -> Generator[tuple[int, int], None, ObjectFeatures]:
    """:func:`object_features` that yields (planes done, planes with objects) after each
    plane (a napari worker shows progress and stops there when cancelled)."""
    labels = np.asarray(labels)
    if labels.ndim < 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ClassifierError(
            f"labels must be an integer image of 2 or more dimensions; got {labels.dtype} "
            f"{labels.shape}."
        )
    occupied = labels.reshape(-1, *labels.shape[-2:]).any(axis=(1, 2))
    total, done = int(occupied.sum()), 0
    accumulator = FeatureAccumulator()
    for index, rgb in planes:
        plane = labels[tuple(index)]
        if plane.shape != rgb.shape[:2]:
            raise ClassifierError(
                f"the labels {labels.shape} do not match the image (plane {rgb.shape[:2]})."
            )
        if not (plane > 0).any():
            continue
        embedding = embedding_for(tuple(index), rgb)
        if embedding is None:
            where = f"plane {tuple(index)}" if index else "the image"
            raise ClassifierError(
                f"{where} has objects but no embedding: compute its embedding first "
                "(open the plane with a model loaded, or `promptseg embed`)."
            )
        accumulator.add_plane(plane, rgb, embedding)
        done += 1
        yield done, total
    return accumulator.finish()
