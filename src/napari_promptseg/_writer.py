"""npe2 writer: a Labels layer → a tif label image plus its objects table as CSV beside it.

``File > Save Selected Layer(s)`` with a ``.tif`` name writes ``name.tif`` (uint16 when the
ids fit, else uint32) and ``name_objects.csv`` (one row per object present in the image,
from the layer's features). Both are written atomically.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .core.storage.export import write_labels_and_objects, write_labels_tif


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer; returns the paths written (napari shows them)."""
    labels = np.asarray(data)
    rows = _feature_rows(meta.get("features"))
    if not rows:
        return [str(write_labels_tif(path, labels))]
    present = set(np.unique(labels).tolist())
    rows = [row for row in rows if int(row.get("id", row.get("index", 0))) in present]
    return [str(p) for p in write_labels_and_objects(path, labels, rows)]


def _feature_rows(features) -> list[dict]:
    if features is None:
        return []
    if hasattr(features, "to_dict"):
        records = features.to_dict(orient="records")
    else:
        columns = {k: list(v) for k, v in dict(features).items()}
        length = max((len(v) for v in columns.values()), default=0)
        records = [{k: v[i] for k, v in columns.items()} for i in range(length)]
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k != "index"}
        if "id" not in row and "index" in record:
            row["id"] = record["index"]
        if "id" in row:
            rows.append(row)
    return rows
