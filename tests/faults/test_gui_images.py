"""Fault matrix, images in napari: odd layers, and layers changed or removed mid-embedding.

Each case: a clear message (exact substring) or a correct result, no crash, and the
committed labels unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
from faultkit import LabelsGuard, commit_one, wait_problem, watch_problems
from widgetkit import WAIT_MS, add_point_and_wait, open_widget, sample_image, wait_embedded

from napari_promptseg._napari.slices import slice_rgb
from napari_promptseg.core import PromptSegmenter, to_rgb_uint8
from napari_promptseg.testing import build_tiny_sam, make_slow


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture(scope="module")
def slow_sam():
    # two encoder blocks of 0.4 s: an embedding takes about a second
    return make_slow(build_tiny_sam(seed=0), seconds_per_block=0.4)


def expected_key(session):
    """The key of the pixels the session shows now, under its current model."""
    rgb = slice_rgb(session.image_layer, session.current_slice)
    return session.segmenter.key_for(rgb)


def test_data_replaced_while_embedding_runs(viewer, qtbot, slow_sam):
    widget = open_widget(viewer, qtbot, slow_sam)
    session = widget.session
    problems = watch_problems(widget)
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)
    layer = viewer.layers["image"]

    layer.data = sample_image(seed=8)  # starts a new embedding
    qtbot.wait(300)  # well inside it
    assert session.embedding is None
    final = sample_image(seed=9)[::-1].copy()
    layer.data = final  # replaced again before the first finished
    wait_embedded(qtbot, widget)
    qtbot.wait(1200)  # any late worker for the older data finishes now
    assert session.embedding.key == session.segmenter.key_for(to_rgb_uint8(final))
    assert session.embedding.key == expected_key(session)
    assert problems == []
    guard.assert_unchanged()


def test_layer_deleted_while_embedding_runs(viewer, qtbot, slow_sam):
    viewer.add_image(sample_image(seed=2), name="other")
    widget = open_widget(viewer, qtbot, slow_sam)
    session = widget.session
    problems = watch_problems(widget)
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)

    viewer.layers["image"].data = sample_image(seed=8)  # embedding runs...
    qtbot.wait(200)
    viewer.layers.remove(viewer.layers["image"])  # ...and its layer goes away
    qtbot.waitUntil(lambda: session.image_layer is not None, timeout=WAIT_MS)
    assert session.image_layer.name == "other"  # the widget picked the remaining image
    wait_embedded(qtbot, widget)
    qtbot.wait(1200)
    assert session.embedding.key == expected_key(session)
    assert session.result is None
    assert problems == []
    guard.assert_unchanged()


def test_data_replaced_by_another_shape_keeps_labels(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    session = widget.session
    problems = watch_problems(widget)
    commit_one(qtbot, widget)
    guard = LabelsGuard(session.labels_layer)
    viewer.layers["image"].data = sample_image(shape=(200, 260))
    wait_embedded(qtbot, widget)
    add_point_and_wait(qtbot, widget, (80, 120))
    assert session.commit() is None
    message = wait_problem(qtbot, problems, "has shape (300, 517)")
    assert "the image (200, 260)" in message
    guard.assert_unchanged()


@pytest.mark.parametrize(
    "data",
    [
        sample_image() > 100,
        sample_image().astype(np.int64) * 10**15 - 2**62,
        np.where(sample_image() > 200, np.inf, sample_image().astype(np.float32)),
        np.dstack([sample_image()] * 3 + [np.zeros((300, 517), np.uint8)]),
    ],
    ids=["bool", "int64-huge", "float-with-inf", "rgba"],
)
def test_odd_dtypes_segment_and_commit(viewer, qtbot, tiny_sam, data):
    widget = open_widget(viewer, qtbot, tiny_sam, image=data)
    session = widget.session
    layer = viewer.layers["image"]
    limits = None if data.dtype == bool else tuple(layer.contrast_limits)
    rgb = to_rgb_uint8(data, contrast_limits=limits, rgb=layer.rgb)
    assert session.embedding.key == session.segmenter.key_for(rgb)
    row = commit_one(qtbot, widget)
    assert (session.labels_layer.data == row["id"]).sum() == row["area"] > 0


def test_five_channel_stack_is_segmented_plane_by_plane(viewer, qtbot, tiny_sam):
    stack = np.stack([sample_image(seed=s) for s in range(5)])  # (5, H, W): napari shows planes
    widget = open_widget(viewer, qtbot, tiny_sam, image=stack)
    session = widget.session
    assert session.current_slice.fixed == (viewer.dims.current_step[0],)
    viewer.dims.set_current_step(0, 3)
    wait_embedded(qtbot, widget)
    assert session.embedding.key == session.segmenter.key_for(to_rgb_uint8(stack[3]))
    row = commit_one(qtbot, widget, (3, 80, 120))
    assert row["slice"] == "3"
    labels = session.labels_layer.data
    assert labels.shape == stack.shape and (labels[3] == row["id"]).any() and not labels[:3].any()


def test_dask_stack(viewer, qtbot, tiny_sam):
    da = pytest.importorskip("dask.array")
    stack = np.stack([sample_image(seed=s) for s in range(3)])
    widget = open_widget(viewer, qtbot, tiny_sam, image=da.from_array(stack, chunks=(1, 150, 517)))
    session = widget.session
    viewer.dims.set_current_step(0, 2)
    wait_embedded(qtbot, widget)
    assert session.embedding.key == session.segmenter.key_for(to_rgb_uint8(stack[2]))
    row = commit_one(qtbot, widget, (2, 200, 350))
    assert isinstance(session.labels_layer.data, np.ndarray)
    assert (session.labels_layer.data[2] == row["id"]).sum() == row["area"]


def test_lazy_layer_that_fails_to_load(viewer, qtbot, tiny_sam, request):
    """Storage that fails when the embedding reads a plane (napari's own display read works:
    when that fails too, napari reports it itself, see docs/faults.md)."""
    import threading

    da = pytest.importorskip("dask.array")
    import dask
    from dask import delayed

    good = sample_image()
    # chunks load in the thread that asks for them, so the failure can pick its reader
    config = dask.config.set(scheduler="synchronous")
    request.addfinalizer(lambda: config.__exit__(None, None, None))

    def plane(index):
        if index == 1 and threading.current_thread() is not threading.main_thread():
            raise OSError("cannot read plane 1 from /data/stack.zarr")
        return good

    lazy = da.stack(
        [da.from_delayed(delayed(plane)(i), shape=good.shape, dtype=good.dtype) for i in range(2)]
    )
    viewer.add_image(lazy, name="image", contrast_limits=(0, 255))
    viewer.dims.set_current_step(0, 0)
    widget = open_widget(viewer, qtbot, tiny_sam, add_image=False)
    wait_embedded(qtbot, widget)
    problems = watch_problems(widget)
    commit_one(qtbot, widget, (0, 80, 120))
    guard = LabelsGuard(widget.session.labels_layer)
    viewer.dims.set_current_step(0, 1)
    message = wait_problem(qtbot, problems, "cannot compute the embedding")
    assert "cannot read plane 1 from /data/stack.zarr" in message
    assert widget.session.embedding is None
    guard.assert_unchanged()


def _empty_layer(data):
    from types import SimpleNamespace

    return SimpleNamespace(name="empty", data=data, rgb=False, multiscale=False)


@pytest.mark.parametrize("data", [np.zeros((0, 10), np.uint8), np.zeros(10, np.uint8)])
def test_zero_size_or_1d_layer_is_refused(viewer, qtbot, tiny_sam, data):
    """napari refuses zero-size and 1D images itself; a layer-like object that gets past it
    (a plugin's own layer type) is refused by the session."""
    widget = open_widget(viewer, qtbot, tiny_sam)
    commit_one(qtbot, widget)
    guard = LabelsGuard(widget.session.labels_layer)
    problems = watch_problems(widget)
    widget.session.set_image_layer(_empty_layer(data))
    assert f"has shape {data.shape}: SAM needs a 2D image" in problems[-1]
    assert widget.session.image_layer is None
    assert widget.session.commit() is None
    guard.assert_unchanged()


def test_refused_layer_drops_the_previous_image_state(viewer, qtbot, tiny_sam):
    widget = open_widget(viewer, qtbot, tiny_sam)
    old = viewer.layers["image"]
    widget.session.set_image_layer(_empty_layer(np.zeros((0, 10), np.uint8)))
    assert widget.session.embedding is None
    calls = []
    widget.session.refresh = lambda: calls.append(1)  # what the old layer's events call
    old.data = sample_image(seed=3)
    assert calls == []


def test_image_model_switch_keeps_one_embedding_per_target(viewer, qtbot, slow_sam):
    """The embedding that lands is always the one of the image, slice and model shown."""
    widget = open_widget(viewer, qtbot, slow_sam)
    session = widget.session
    other = PromptSegmenter(make_slow(build_tiny_sam(seed=1), 0.4), "tiny-other", name="other")
    session.set_segmenter(other)
    viewer.layers["image"].data = sample_image(seed=4)
    wait_embedded(qtbot, widget)
    qtbot.wait(1200)
    assert session.embedding.key.model_id == "tiny-other"
    assert session.embedding.key == expected_key(session)
