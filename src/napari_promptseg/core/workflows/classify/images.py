"""Classifying the objects of image files: features per file (here or on Dask), tables out.

One :class:`FeaturesTask` per image (a file, a stack, an OME-Zarr) names the image, how it
is converted, and its label image; :func:`features_task` runs where
:func:`~napari_promptseg.core.workflows.distributed.runner.run_items` puts it (this
process, or a Dask worker with the model loaded once) and sends back the objects' features
(small: a few hundred numbers per object). Training and prediction then run in the
calling process, which holds the classifier. Embeddings come from the engine's cache and
its store; a plane not yet embedded is embedded once (and kept in the store if there is
one), the same embedding the napari session would use.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ImageError
from ...sam.embedding import ImageEmbedding
from ...sam.engine import PromptSegmenter
from ...storage.files import atomic_write
from ...storage.ome_zarr import is_zarr_path, open_zarr_image
from ...storage.readers import read_image
from ..distributed.sources import ImageSource
from .classifier import Prediction
from .features import ClassifierError, ObjectFeatures, PlaneEmbedding, object_features

TABLE_COLUMNS = ("id", "class", "probability")


@dataclass(frozen=True)
class FeaturesTask:
    """The objects of ``labels_path`` over the image ``source`` (a stack: plane by plane)."""

    source: ImageSource
    labels_path: str


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """A label image (tif, png, zarr / OME-Zarr) as an integer array."""
    path = Path(path)
    if is_zarr_path(path):
        labels = np.asarray(open_zarr_image(path).data)
    else:
        labels = read_image(path)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ImageError(f"{path} is not a label image: its pixels are {labels.dtype}, not ids.")
    return labels


def embedding_of(segmenter: PromptSegmenter) -> PlaneEmbedding:
    """``embedding_for`` that takes the cached or stored embedding, else computes it once."""

    def embedding_for(_index: tuple[int, ...], rgb: np.ndarray) -> ImageEmbedding:
        return segmenter.embed(rgb, prepare=False)

    return embedding_for


def features_of(
    segmenter: PromptSegmenter, source: ImageSource, labels: np.ndarray
) -> ObjectFeatures:
    """Features of every object of ``labels`` over the image of ``source``."""
    planes = source.planes()
    leading = len(planes.labels[0])
    expected = tuple(max(label[a] for label in planes.labels) + 1 for a in range(leading))
    if labels.shape != (*expected, *planes.plane_shape):
        raise ClassifierError(
            f"the labels {labels.shape} do not fit the image {source.name} (planes "
            f"{expected or '—'} of {planes.plane_shape[0]}x{planes.plane_shape[1]})."
        )
    return object_features(planes, labels, embedding_of(segmenter))


def features_task(segmenter: PromptSegmenter, task: FeaturesTask) -> ObjectFeatures:
    """Run one :class:`FeaturesTask` (module level: Dask workers import it by name)."""
    return features_of(segmenter, task.source, read_labels(task.labels_path))


def read_examples(path: str | os.PathLike) -> dict[int, str]:
    """An examples table (CSV with columns ``id,class``; other columns ignored): id → class.

    Rows with an empty class are skipped (objects not labelled). Raises
    :class:`ClassifierError` naming the file and line of a bad row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ClassifierError(f"examples table {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ClassifierError(f"cannot read examples table {path}: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "id" not in fields or "class" not in fields:
        raise ClassifierError(f"{path}: the examples table needs columns id,class; got {fields}.")
    examples: dict[int, str] = {}
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("class"):
            continue
        try:
            object_id = int(float(row["id"]))
        except ValueError:
            raise ClassifierError(
                f"{path} line {line}: id {row['id']!r} is not a number."
            ) from None
        if object_id <= 0:
            raise ClassifierError(
                f"{path} line {line}: id {object_id} is background, not an object."
            )
        if examples.get(object_id, row["class"]) != row["class"]:
            raise ClassifierError(
                f"{path} line {line}: object {object_id} is given two classes "
                f"({examples[object_id]!r} and {row['class']!r})."
            )
        examples[object_id] = row["class"]
    return examples


def prediction_rows(predictions: Iterable[Prediction]) -> list[dict[str, object]]:
    return [
        {"id": p.object_id, "class": p.class_name, "probability": round(p.probability, 4)}
        for p in predictions
    ]


def write_table(path: str | os.PathLike, rows: Iterable[Mapping[str, object]]) -> Path:
    """Write the ``id,class,probability`` table atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(TABLE_COLUMNS), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    payload = buffer.getvalue().encode()
    return atomic_write(path, lambda file: file.write(payload))
