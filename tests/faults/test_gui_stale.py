"""No stale results, ever: an embedding or a mask is only ever shown for the image, slice
and model it was computed for, however fast the user switches.

A slowed tiny SAM makes every embedding last about a second, so switches land while work is
in flight. Invariants are checked each time the session applies something (its
``embedding_ready`` and ``result_changed`` signals), against the key of the pixels the
viewer shows at that moment.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from faultkit import LabelsGuard, commit_one
from widgetkit import WAIT_MS, open_widget, points_layer, sample_image, wait_embedded

from napari_promptseg._napari.slices import slice_rgb
from napari_promptseg.core import PromptSegmenter, to_rgb_uint8
from napari_promptseg.testing import build_tiny_sam, make_slow


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def shown_key(session):
    """Key of what the viewer shows now under the session's model (None if nothing)."""
    if session.image_layer is None or session.current_slice is None or session.segmenter is None:
        return None
    return session.segmenter.key_for(slice_rgb(session.image_layer, session.current_slice))


class StaleWatch:
    """Checks, every time the session applies an embedding or a mask, that it is current."""

    def __init__(self, session) -> None:
        self.session = session
        self.violations: list[str] = []
        self.embeddings = 0
        self.results = 0
        session.embedding_ready.connect(self._on_embedding)
        session.result_changed.connect(self._on_result)

    def _on_embedding(self, embedding) -> None:
        self.embeddings += 1
        expected = shown_key(self.session)
        if embedding.key != expected:
            self.violations.append(f"embedding {embedding.key} applied while showing {expected}")

    def _on_result(self) -> None:
        result = self.session.result
        if result is None:
            return
        self.results += 1
        expected = shown_key(self.session)
        embedding = self.session.embedding
        if result.key != expected:
            self.violations.append(f"mask for {result.key} shown while showing {expected}")
        if embedding is None or result.key != embedding.key:
            self.violations.append(f"mask for {result.key} shown with embedding {embedding}")


def test_rapid_switches_of_image_slice_and_model(viewer, qtbot):
    rng = np.random.default_rng(7)
    stack = np.stack([sample_image(seed=10 + z) for z in range(4)])
    viewer.add_image(stack, name="stack")
    viewer.add_image(sample_image(seed=20), name="flat")
    models = [
        PromptSegmenter(make_slow(build_tiny_sam(seed=s), 0.3), f"slow-{s}", name=f"slow{s}")
        for s in (0, 1)
    ]
    widget = open_widget(viewer, qtbot, models[0].sam, add_image=False, model_id="slow-0")
    session = widget.session
    watch = StaleWatch(session)
    actions = []
    for step in range(24):
        action = ["image", "slice", "model", "prompt", "prompt"][step % 5]
        if action == "image":
            name = "flat" if session.image_layer.name == "stack" else "stack"
            widget.image_combo.setCurrentIndex(widget.image_combo.findText(name))
        elif action == "slice" and session.image_layer.name == "stack":
            viewer.dims.set_current_step(0, int(rng.integers(0, 4)))
        elif action == "model":
            session.set_segmenter(models[step % 2])
        elif action == "prompt":
            point = [float(rng.integers(20, 280)), float(rng.integers(20, 500))]
            if session.image_layer.name == "stack":
                point = [float(viewer.dims.current_step[0]), *point]
            if points_layer(viewer).ndim == len(point):
                points_layer(viewer).add(np.array(point))
        actions.append(action)
        qtbot.wait(int(rng.integers(20, 700)))  # sometimes mid-embedding, sometimes after
    wait_embedded(qtbot, widget)
    qtbot.wait(1500)  # late workers of earlier targets finish and must be dropped
    print(
        f"\n{len(actions)} switches, {watch.embeddings} embeddings, {watch.results} masks applied"
    )
    assert watch.violations == []
    assert watch.embeddings >= 3  # the test did see work land, not only cancellations
    assert session.embedding.key == shown_key(session)


@pytest.mark.parametrize("change", ["data", "contrast_limits"])
def test_mask_decoded_before_an_image_change_is_not_shown_after_it(viewer, qtbot, change):
    slow = make_slow(build_tiny_sam(seed=0), 0.5)
    widget = open_widget(viewer, qtbot, slow, image=sample_image().astype(np.uint16))
    session = widget.session
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)

    decoded = threading.Event()
    predict = session.segmenter.predict

    def predict_and_tell(*args, **kwargs):
        result = predict(*args, **kwargs)
        decoded.set()
        return result

    session.segmenter.predict = predict_and_tell
    points_layer(viewer).add(np.array([200.0, 350.0]))
    # The decode finishes on its thread while this (main) thread processes no events, so
    # its outcome waits in the Qt queue; then the image changes, then the outcome arrives.
    assert decoded.wait(WAIT_MS / 1000)
    time.sleep(0.2)
    layer = viewer.layers["image"]
    if change == "data":
        layer.data = sample_image(seed=99).astype(np.uint16)
    else:
        layer.contrast_limits = (0, 120)
    qtbot.wait(150)  # the queued outcome is delivered; the new embedding is still running
    assert session.embedding is None
    assert session.result is None, "a mask of the previous pixels is shown"
    assert session.commit() is None
    guard.assert_unchanged()


def test_mask_shown_after_an_image_change_is_for_the_new_pixels(viewer, qtbot):
    """The end state after the change above is right (only the window in between is not)."""
    slow = make_slow(build_tiny_sam(seed=0), 0.3)
    widget = open_widget(viewer, qtbot, slow)
    session = widget.session
    watch_points = points_layer(viewer)
    watch_points.add(np.array([200.0, 350.0]))
    new = sample_image(seed=99)
    viewer.layers["image"].data = new
    qtbot.waitUntil(
        lambda: (
            session.result is not None
            and session.result.key == session.segmenter.key_for(to_rgb_uint8(new))
        ),
        timeout=WAIT_MS,
    )
    assert session.embedding.key == session.result.key == shown_key(session)
