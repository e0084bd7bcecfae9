"""The dock widget with the tiny SAM, for the napari tests and the fault matrix."""

from __future__ import annotations

import numpy as np

WAIT_MS = 30_000


def sample_image(shape=(300, 517), seed=5) -> np.ndarray:
    """A non-square uint8 image with three bright discs."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = 40 + 20 * rng.random(shape)
    for r, c, radius in [(80, 120, 40), (200, 350, 60), (150, 450, 30)]:
        image[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] += 150
    return image.astype(np.uint8)


def open_widget(
    viewer, qtbot, sam, *, image=None, add_image=True, model_id="tiny-test", segmenter=None, **kw
):
    """The dock widget on ``viewer`` using ``sam`` (or ``segmenter``); waits for the embedding
    if an image is added."""
    from napari_promptseg._qt.widget import PromptSegWidget
    from napari_promptseg.core import PromptSegmenter

    if add_image:
        viewer.add_image(sample_image() if image is None else image, name="image", **kw)
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    widget.session.set_segmenter(segmenter or PromptSegmenter(sam, model_id, name="tiny"))
    if add_image:
        wait_embedded(qtbot, widget)
    return widget


def wait_embedded(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.session.embedding is not None, timeout=WAIT_MS)


def points_layer(viewer):
    from napari_promptseg._napari import layers as prompt_layers

    return prompt_layers.find_layer(viewer, "points")


def add_point_and_wait(qtbot, widget, point, label="positive"):
    """Add a point (data coordinates, any ndim) and wait for a new mask."""
    session = widget.session
    layer = points_layer(widget.viewer)
    before = session.result
    defaults = layer.feature_defaults
    defaults["label"] = label
    layer.feature_defaults = defaults
    layer.add(np.asarray(point, dtype=float))
    qtbot.waitUntil(
        lambda: session.result is not None and session.result is not before, timeout=WAIT_MS
    )
    return session.result
