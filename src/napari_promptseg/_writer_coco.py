"""npe2 writer: a Labels layer → COCO instance segmentation JSON with RLE masks.

``File > Save Selected Layer(s)`` with a ``.json`` name writes one annotation per object
(per plane for nD labels), with SAM's predicted IoU as ``score`` and the stability from
the layer's features (see :mod:`napari_promptseg.core.storage.coco`). Written atomically.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._writer import _feature_rows
from .core.storage.classes import ClassList, ClassListError
from .core.storage.coco import write_coco_json


def write_coco(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer as COCO JSON; returns the path written (napari shows it).

    The images' ``file_name`` is the layer's ``metadata["image_file"]`` when the plugin
    recorded the image it segmented, else the layer name. Categories follow the class list
    kept with the layer (the dock's "Object classes"), then classes found in the rows.
    """
    if isinstance(data, list):  # multiscale labels: the full-resolution level
        data = data[0]
    metadata = meta.get("metadata") or {}
    image_name = str(metadata.get("image_file") or meta.get("name") or "image")
    rows = _feature_rows(meta.get("features"))
    categories = _class_names(metadata)
    written = write_coco_json(
        path, np.asarray(data), rows, image_name=image_name, categories=categories
    )
    return [str(written)]


def _class_names(metadata: dict) -> list[str] | None:
    """The class list kept with the layer (napari_promptseg._napari.classes): category order."""
    document = metadata.get("promptseg_classes")
    if not document:
        return None
    try:
        return ClassList.from_dict(document).names or None
    except ClassListError:
        return None  # categories then follow the classes found in the rows
