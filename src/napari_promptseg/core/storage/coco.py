"""Label images → COCO instance segmentation (JSON) with compressed RLE masks.

One COCO image per plane: a 2D label image is one image; an nD one (..., H, W) gives one
image per plane that holds objects (or every plane with ``all_planes``), with the plane's
index along the leading axes in the image entry as ``"plane"``. One annotation per object
per plane:

* ``segmentation``: ``{"size": [H, W], "counts": str}``, pycocotools' compressed RLE: run
  lengths over the mask in column-major (Fortran) order, starting with a run of zeros, each
  written as the difference to the run two before (from the third on) in 5-bit groups
  offset by 48 (the format of ``pycocotools.mask.encode``, ``maskApi.c`` rleToString);
* ``bbox`` ``[x, y, width, height]`` in pixels (x = column), ``area`` in pixels;
* ``iscrowd`` 0 (each mask is one instance; COCO tools accept RLE for those);
* ``object_id``: the label id; ``score`` (SAM's predicted IoU) and ``stability`` from the
  objects table row of that id, when there is one (absent otherwise).

Nothing here needs pycocotools; the tests check its decoder reads our masks back.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError
from .classes import row_class
from .export import label_image_for_export
from .files import atomic_write

DEFAULT_CATEGORY = "object"


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """An (H, W) mask as COCO compressed RLE: ``{"size": [H, W], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ExportError(f"an RLE mask is 2D (H, W); got shape {mask.shape}.")
    height, width = mask.shape
    positions = np.flatnonzero(mask.ravel(order="F"))
    return _rle(positions, height, width)


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """The (H, W) bool mask of a compressed (str/bytes) or uncompressed (list) COCO RLE."""
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = decompress_counts(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != height * width or (counts < 0).any():
        raise ExportError(f"RLE counts do not add up to a {height}x{width} mask.")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True  # runs alternate 0, 1, 0, ... starting with zeros
    return np.repeat(values, counts).reshape((height, width), order="F")


def compress_counts(counts: Sequence[int]) -> str:
    """pycocotools' string form of RLE run lengths (``rleToString``)."""
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative differences end at -1
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(c + 48 + (0x20 if more else 0)))
    return "".join(out)


def decompress_counts(text: str) -> list[int]:
    """RLE run lengths from pycocotools' string form (``rleFrString``)."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def labels_to_coco(
    labels: np.ndarray,
    rows: Iterable[Mapping[str, Any]] | None = None,
    *,
    image_name: str = "image.tif",
    categories: Sequence[str] | None = None,
    all_planes: bool = False,
) -> dict[str, Any]:
    """A COCO instance-segmentation dict for a label image.

    Parameters
    ----------
    labels
        (H, W) or (..., H, W) non-negative integer ids; 0 is background.
    rows
        Objects table rows (``layer.features`` records or CSV rows, values may be strings):
        ``id`` → ``predicted_iou`` (as ``score``), ``stability``, and optionally ``class``
        (a name; ``category`` is read where a table has no ``class``).
    image_name
        ``file_name`` of every image entry (planes of a stack share it; see ``plane``).
    categories
        Category names, ids 1, 2, ... in this order (e.g. a class list's names). Class names
        found in the rows are added after them. Objects without a class get the first; without
        ``categories`` they get ``"object"``, listed first, and only when some object has no
        class (or no category would be left).
    all_planes
        Also list planes of an nD image that hold no object (as images without
        annotations: "nothing here"). By default they are left out, since an unannotated
        plane is not known to be empty.

    Raises
    ------
    ExportError
        Labels that are not integer ids, negative, or fewer than two dimensions.
    """
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise ExportError(f"labels must be (H, W) or (..., H, W); got shape {labels.shape}.")
    labels = label_image_for_export(labels)
    explicit = list(dict.fromkeys(categories or []))
    fallback = explicit[0] if explicit else DEFAULT_CATEGORY
    by_id = _rows_by_id(rows)
    row_names = [name for name in map(row_class, by_id.values()) if name]

    height, width = labels.shape[-2:]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for plane_index in np.ndindex(labels.shape[:-2]):
        objects = list(_objects(labels[plane_index]))
        if not objects and labels.ndim > 2 and not all_planes:
            continue
        image = {"id": len(images) + 1, "file_name": image_name, "height": height, "width": width}
        if labels.ndim > 2:
            image["plane"] = [int(i) for i in plane_index]
        images.append(image)
        for label_id, positions in objects:
            row = by_id.get(label_id, {})
            rows_, cols = positions % height, positions // height
            x, y = int(cols.min()), int(rows_.min())
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image["id"],
                "category_id": row_class(row) or fallback,  # a name until all are known
                "segmentation": _rle(positions, height, width),
                "area": len(positions),
                "bbox": [float(x), float(y), float(cols.max() - x + 1), float(rows_.max() - y + 1)],
                "iscrowd": 0,
                "object_id": label_id,
            }
            for key, column in (("score", "predicted_iou"), ("stability", "stability")):
                value = _number(row.get(column))
                if value is not None:
                    annotation[key] = value
            annotations.append(annotation)
    used_fallback = any(a["category_id"] == fallback for a in annotations)
    leading = [] if explicit or (row_names and not used_fallback) else [DEFAULT_CATEGORY]
    names = list(dict.fromkeys([*explicit, *leading, *row_names]))
    category_ids = {name: i + 1 for i, name in enumerate(names)}
    for annotation in annotations:
        annotation["category_id"] = category_ids[annotation["category_id"]]
    return {
        "info": {
            "description": "napari-promptseg export",
            "date_created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": name, "supercategory": "object"} for name, i in category_ids.items()
        ],
    }


def write_coco_json(
    path: str | os.PathLike,
    labels: np.ndarray,
    rows: Iterable[Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> Path:
    """Write :func:`labels_to_coco` as JSON to ``path`` (``.json``), atomically.

    The whole document is built before the file is touched: bad labels leave an earlier
    file as it was.
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ExportError(f"COCO annotations are written as .json; got {path.name}.")
    payload = json.dumps(labels_to_coco(labels, rows, **kwargs)).encode("utf-8")
    return atomic_write(path, lambda file: file.write(payload))


def _objects(plane: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(label id, sorted column-major pixel positions) of every object in an (H, W) plane."""
    flat = plane.ravel(order="F")
    positions = np.flatnonzero(flat)
    if len(positions) == 0:
        return
    ids = flat[positions]
    order = np.argsort(ids, kind="stable")  # stable: positions stay sorted within an id
    ids, positions = ids[order], positions[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
    for begin, end in zip(starts, np.r_[starts[1:], len(ids)], strict=True):
        yield int(ids[begin]), positions[begin:end]


def _rle(positions: np.ndarray, height: int, width: int) -> dict[str, Any]:
    """Compressed RLE of the mask whose column-major pixel indices are ``positions`` (sorted)."""
    total = height * width
    if len(positions) == 0:
        counts = [total]
    else:
        breaks = np.flatnonzero(np.diff(positions) != 1)
        starts = positions[np.r_[0, breaks + 1]]
        ends = positions[np.r_[breaks, len(positions) - 1]] + 1
        gaps = starts - np.r_[0, ends[:-1]]
        counts = np.column_stack([gaps, ends - starts]).ravel().tolist()
        if ends[-1] < total:
            counts.append(int(total - ends[-1]))
    return {"size": [int(height), int(width)], "counts": compress_counts(counts)}


def _rows_by_id(rows: Iterable[Mapping[str, Any]] | None) -> dict[int, Mapping[str, Any]]:
    by_id: dict[int, Mapping[str, Any]] = {}
    for row in rows or ():
        try:
            label_id = int(float(row["id"]))
        except (KeyError, TypeError, ValueError):
            continue  # a row without a usable id describes no object in the image
        by_id.setdefault(label_id, row)
    return by_id


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


__all__ = [
    "compress_counts",
    "decode_rle",
    "decompress_counts",
    "encode_rle",
    "labels_to_coco",
    "write_coco_json",
]
