"""``promptseg gui``: napari opens with the sample and the widget docked, no download."""

from __future__ import annotations

import napari

from napari_promptseg.cli import main


def test_gui_opens_sample_with_widget_and_says_what_to_download(monkeypatch, qtbot):
    shown = {}

    def fake_run():
        viewer = napari.current_viewer()
        shown["layers"] = [layer.name for layer in viewer.layers]
        widget = viewer.window.dock_widgets["Prompt segmentation"]
        shown["status"] = widget.status_label.text()
        widget.close_session()
        viewer.close()

    monkeypatch.setattr(napari, "run", fake_run)
    assert main(["gui"]) == 0
    assert "cells (sample)" in shown["layers"]
    assert "promptseg points" in shown["layers"]
    # nothing cached in the test cache folder: the user is told what to get and where
    assert "not downloaded yet" in shown["status"]
    assert "sam_vit_b_01ec64.pth" in shown["status"]
