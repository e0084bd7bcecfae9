"""Smoke test for the GUI test setup: napari opens a window and OpenGL really renders.

If this fails, the napari tests can't be trusted: check Xvfb, Mesa (libgl1-mesa-dri) and the
xcb libraries (.ci/install-system-deps), and that the suite runs under ``make test``.
"""

from __future__ import annotations

import numpy as np

from napari_promptseg._sample_data import sample_cells_image


def test_viewer_renders_an_image(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    data = sample_cells_image()
    viewer.add_image(data, name="cells", contrast_limits=(0, 255))
    viewer.reset_view()

    path = tmp_path / "viewer.png"
    window = viewer.screenshot(path=str(path), canvas_only=False)
    canvas = viewer.screenshot(canvas_only=True)

    assert path.is_file()
    assert path.stat().st_size > 1000
    assert window.dtype == np.uint8
    assert window.ndim == 3
    assert window.shape[2] == 4
    assert (window != window[0, 0]).any(), "window screenshot is blank"
    # The window (canvas plus layer list, controls...) is larger than the canvas.
    assert window.shape[0] * window.shape[1] > canvas.shape[0] * canvas.shape[1]

    # Qt widgets alone would make the window screenshot non-constant; the canvas is drawn by
    # vispy with OpenGL, so bright cells on a dark background there prove that GL works.
    gray = canvas[..., :3].astype(np.float32).mean(axis=-1)
    assert np.ptp(gray) > 150, "canvas is (nearly) uniform: OpenGL drew nothing"
    bright = float((gray > 150).mean())
    data_bright = float((data > 150).mean())
    # The image fills part of the canvas (letterboxed), so it covers fewer canvas pixels.
    assert 0.2 * data_bright < bright <= 1.2 * data_bright, (bright, data_bright)
