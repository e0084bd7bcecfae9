"""Nothing is fetched at start-up: opening the dock widget without a cached model makes no
network call and writes no file into the model cache (see also test_fault_security.py)."""

from __future__ import annotations

import socket

from widgetkit import sample_image

from napari_promptseg.core.models import cache_dir


def test_widget_start_up_without_a_cached_model_stays_offline(
    make_napari_viewer, qtbot, monkeypatch
):
    calls = []

    def refuse(kind):
        def blocked(*args, **kwargs):
            calls.append(kind)
            raise OSError("network disabled by the test")

        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    cache = cache_dir()
    assert not cache.exists() or not any(cache.iterdir())

    from napari_promptseg._qt.widget import PromptSegWidget

    viewer = make_napari_viewer()
    viewer.add_image(sample_image(), name="image")
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation")
    qtbot.wait(1500)  # anything started in the background gets its chance to connect
    assert calls == []
    assert not cache.exists() or sorted(p.name for p in cache.iterdir()) == []
    assert "not downloaded yet" in widget.status_label.text()
    assert "Load model" in widget.status_label.text()
    assert widget.session.segmenter is None
