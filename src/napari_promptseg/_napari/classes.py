"""Object classes on napari layers: colours by class, the list kept with the labels, keys 1–9.

The class list itself (names, colours, its JSON file) is :mod:`napari_promptseg.core.storage.
classes`; an object's class is the ``class`` cell of its features row. Here:

* :func:`class_colormap` paints each object in its class's colour (no class: grey);
* the list travels with a labels layer in ``layer.metadata["promptseg_classes"]`` (the JSON
  document), so the COCO writer numbers categories in the list's order;
* the list is also kept in ``classes.json`` in the autosave folder and comes back in the next
  session;
* keys 1–9 choose the first nine classes, on the viewer and on our prompt layers (where
  layer key bindings win over the viewer's).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.storage.classes import ClassList, ClassListError, row_class
from . import layers as prompt_layers
from .objects import object_rows

CLASSES_KEY = "promptseg_classes"  # layer.metadata: ClassList.to_dict()
NO_CLASS_COLOUR = np.array([0.6, 0.6, 0.6, 1.0])
PROMPT_ROLES = ("points", "boxes", "scribbles")


def class_file() -> Path:
    """Where the class list is kept between sessions: ``classes.json`` beside the autosaves."""
    from ..core.storage.autosave import default_folder

    return default_folder() / "classes.json"


def hex_to_rgba(colour: str) -> np.ndarray:
    value = colour.lstrip("#")
    return np.array([int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)] + [1.0])


def class_colormap(labels_layer: Any, classes: ClassList):
    """A label colormap painting each object in its class's colour; others grey."""
    from napari.utils.colormaps import DirectLabelColormap

    colours: dict = {None: NO_CLASS_COLOUR, 0: np.zeros(4)}
    for row in object_rows(labels_layer):
        found = classes.find(row_class(row))
        colours[int(row["id"])] = hex_to_rgba(found.colour) if found else NO_CLASS_COLOUR
    return DirectLabelColormap(color_dict=colours)


def store_in_layer(labels_layer: Any, classes: ClassList) -> None:
    """Keep the class list with the labels layer (the COCO writer reads it)."""
    if labels_layer is not None:
        labels_layer.metadata[CLASSES_KEY] = classes.to_dict()


def classes_of_layer(labels_layer: Any) -> ClassList | None:
    """The class list kept with a labels layer, or None (none, or not readable)."""
    document = getattr(labels_layer, "metadata", {}).get(CLASSES_KEY)
    if not document:
        return None
    try:
        return ClassList.from_dict(document)
    except ClassListError:
        return None


def bind_class_keys(viewer: Any, count: int, choose: Callable[[int], None]) -> None:
    """Keys 1..``count`` (at most 9) choose that class; the others back to napari's own."""
    unbind_class_keys(viewer)
    targets = [viewer, *_prompt_layers(viewer)]
    for number in range(1, min(count, 9) + 1):
        for target in targets:
            target.bind_key(str(number), _chooser(choose, number), overwrite=True)


def unbind_class_keys(viewer: Any) -> None:
    for target in [viewer, *_prompt_layers(viewer)]:
        for number in range(1, 10):
            target.bind_key(str(number), None)


def _chooser(choose: Callable[[int], None], number: int) -> Callable[..., None]:
    return lambda *_: choose(number)


def _prompt_layers(viewer: Any) -> list:
    found = (prompt_layers.find_layer(viewer, role) for role in PROMPT_ROLES)
    return [layer for layer in found if layer is not None]
