"""A napari Tracks layer showing a Labels layer's lineage: a view, never the owner.

The layer is rebuilt from ``Lineage.tracks_layer_data(labels)`` (centroid of every track on
every frame, ``{daughter: [parent]}``) whenever the labels or the lineage change; editing or
deleting it changes nothing else. napari's Tracks layers put time on the first world axis,
so only tracks along the labels' axis 0 are shown.
"""

from __future__ import annotations

import numpy as np

from ..core.workflows.tracking.lineage import Lineage
from .layers import TAG, keeping_selection

ROLE = "tracks"
SOURCE_KEY = "promptseg_tracks_of"  # metadata: the unique_id of the labels layer shown


def find_tracks_layer(viewer, labels_layer):
    """The Tracks layer showing ``labels_layer``'s lineage, or None."""
    for layer in viewer.layers:
        if layer.metadata.get(TAG) == ROLE and layer.metadata.get(SOURCE_KEY) == str(
            labels_layer.unique_id
        ):
            return layer
    return None


def show_tracks(viewer, labels_layer, lineage: Lineage, axis: int, *, create: bool = True):
    """Make (or update) the Tracks layer of ``labels_layer``; returns it, or None.

    None when there is nothing to show (no track), the tracks run along an axis other than
    0, or ``create`` is False and no such layer exists yet. An existing layer with nothing
    to show is hidden, not removed (its display settings stay).
    """
    layer = find_tracks_layer(viewer, labels_layer)
    labels = np.asarray(labels_layer.data)
    if int(axis) != 0 or labels.ndim < 3 or not lineage.tracks:
        if layer is not None:
            layer.visible = False
        return None
    data, graph = lineage.tracks_layer_data(labels)
    if layer is None:
        if not create:
            return None
        with keeping_selection(viewer):
            layer = viewer.add_tracks(
                data,
                graph=graph,
                name=f"{labels_layer.name} tracks",
                scale=labels_layer.scale,
                translate=labels_layer.translate,
                tail_length=max(2, min(30, labels.shape[0])),
                metadata={TAG: ROLE, SOURCE_KEY: str(labels_layer.unique_id)},
            )
        return layer
    layer.graph = {}  # the old graph may name tracks the new data no longer has
    layer.data = data
    layer.graph = graph
    layer.visible = True
    return layer
