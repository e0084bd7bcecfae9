"""Large planes are embedded by tiles, on demand, and their masks come back at full size."""

from __future__ import annotations

import numpy as np
from widgetkit import WAIT_MS, open_widget, points_layer

from napari_promptseg.core import to_rgb_uint8
from napari_promptseg.core.workflows.tiling.tiled_image import TiledImage


def test_large_plane_is_tiled_on_demand(make_napari_viewer, qtbot, tiny_sam):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(3)
    image = (rng.random((2300, 2400)) * 255).astype(np.uint8)
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    session = widget.session
    session.tile_above = 1024  # treat this 2300x2400 plane as large (3x3 tiles)
    calls = []
    hook = tiny_sam.image_encoder.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    try:
        viewer.add_image(image, name="large")
        widget.image_combo.setCurrentIndex(widget.image_combo.findText("large"))
        qtbot.waitUntil(lambda: session.tiled is not None, timeout=WAIT_MS)
        assert session.embedding is None and calls == []  # nothing embedded before a prompt
        assert "tiles" in widget.status_label.text()
        point = (2250.0, 2350.0)  # in the bottom-right tile
        points_layer(viewer).add(np.array(point))
        qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    finally:
        hook.remove()
    result = session.result
    assert result.masks.shape[1:] == (2300, 2400)
    assert 1 <= len(calls) <= 4 < len(session.tiled.grid)  # the corner tile and its neighbours
    # the same as the core's tiled engine on the same pixels
    expected = TiledImage(session.segmenter, to_rgb_uint8(image)).predict(
        session.decoding.result_prompts, embed_missing=True
    )
    np.testing.assert_array_equal(result.masks, expected.masks)
    session.commit()
    labels = session.labels_layer
    np.testing.assert_array_equal(labels.data == 1, result.masks[result.best])
