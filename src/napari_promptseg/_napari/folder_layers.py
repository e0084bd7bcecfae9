"""The "Image folder" panel's two layers, reused from one image of the folder to the next.

ONE image layer shows the image and ONE labels layer its saved labels: moving on swaps
their data, contrast limits and names rather than replacing layers, which costs napari
about a second per image. A layer is replaced only when the new data does not fit it
(another shape, colour vs grey) or the user removed it. Touch them on the main thread.
"""

from __future__ import annotations

import numpy as np

from . import layers as prompt_layers
from . import objects

# In the image layer's metadata: which file it shows. Not prompt_layers.TAG, which marks
# the plugin's prompt and output layers (the session keeps those selected).
FILE_KEY = "promptseg_folder_image"
# labels metadata kept across images
_LAYER_KEYS = (prompt_layers.TAG, "promptseg_colormap", objects.CONFIDENCE_COLORMAP_KEY)


def is_rgb(image: np.ndarray) -> bool:
    """Whether the last axis of a read image is colour (3 or 4 values)."""
    return image.ndim >= 3 and image.shape[-1] in (3, 4)


def display_limits(image: np.ndarray) -> tuple[float, float]:
    """Contrast limits the panel gives every image: napari's default rule, on all the data.

    uint8 → (0, 255); otherwise the finite min and max ((min(v, 0), max(v, 1)) if flat).
    The prefetch uses the same limits, so its embedding is the one the session asks for.
    """
    if image.dtype == np.uint8:
        return (0.0, 255.0)
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        low, high = min(low, 0.0), max(high, 1.0)
    return (low, high)


def show_image(viewer, layer, image: np.ndarray, name: str, path: str):
    """Show ``image`` (as read: (H, W), (H, W, 3)...) in ``layer``, or in a new image layer.

    ``layer`` (None, or the layer that showed the previous image) is reused when it is
    still in the viewer with the same shape and colour flag; otherwise it is removed and
    a new layer is added. Returns the layer showing ``image``.
    """
    rgb, limits = is_rgb(image), display_limits(image)
    if (
        layer is not None
        and layer in viewer.layers
        and layer.rgb == rgb
        and layer.data.shape == image.shape
    ):
        layer.data = image
        layer.contrast_limits_range = limits
        layer.contrast_limits = limits
        layer.name = name
        layer.metadata[FILE_KEY] = path
        return layer
    if layer is not None and layer in viewer.layers:
        viewer.layers.remove(layer)
    return viewer.add_image(
        image, name=name, rgb=rgb, contrast_limits=limits, metadata={FILE_KEY: path}
    )


def show_labels(viewer, session, layer, image_layer, shape, labels, rows, name: str):
    """Put an image's saved labels and rows (or nothing) in the folder's labels layer.

    ``layer`` (None, or the labels layer of the previous image) is reused when it fits,
    with its undo history cleared: undo must not reach into the previous image. Otherwise
    a new labels layer goes above ``image_layer``. Either becomes the session's labels
    layer. Returns it.
    """
    from napari.layers import Labels

    data = np.zeros(shape, np.uint32) if labels is None else labels.astype(np.uint32)
    if layer is not None and layer in viewer.layers and layer.data.shape == data.shape:
        layer.data = data
        layer.editable = False  # napari's public way to drop a Labels undo history
        layer.editable = True
        # Other metadata is per-image state (rows of undone objects, the autosave name):
        # it belonged to the previous image. Kept: the tag, the widget's own colormap.
        layer.metadata = {k: v for k, v in layer.metadata.items() if k in _LAYER_KEYS}
        layer.name = f"{name} objects"
        session.set_labels_layer(layer)
    else:
        if layer is not None and layer in viewer.layers:
            viewer.layers.remove(layer)
        layer = Labels(
            data,
            name=f"{name} objects",
            scale=image_layer.scale,
            translate=image_layer.translate,
            metadata={prompt_layers.TAG: "objects"},
        )
        # Set before inserting: the dock widget's labels choice follows the session's.
        session.set_labels_layer(layer)
        viewer.layers.insert(viewer.layers.index(image_layer) + 1, layer)
    objects.set_rows(layer, list(rows))
    return layer
