"""Fixtures for the fault matrix (see docs/faults.md).

Core cases run anywhere. GUI cases (``test_gui_*.py`` and the soak: every test that uses
napari's ``make_napari_viewer``) get the ``gui`` marker from ``tests/conftest.py`` and need an
X display: run them under Xvfb, e.g. ``QT_QPA_PLATFORM=xcb xvfb-run -a python -m pytest
tests/faults``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def autosave_dir(tmp_path_factory, monkeypatch):
    """A private autosave folder (the Autosave panel is on by default), for tests to read."""
    folder = tmp_path_factory.mktemp("autosave")
    monkeypatch.setenv("NAPARI_PROMPTSEG_AUTOSAVE_DIR", str(folder))
    return folder
