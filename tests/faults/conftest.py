"""Fixtures and guards for the fault matrix (see docs/faults.md).

Core cases run anywhere. GUI cases (``test_gui_*.py`` and the soak, i.e. every test that uses
napari's ``make_napari_viewer``) get the ``gui`` marker and need an X display: run them under
Xvfb, e.g. ``QT_QPA_PLATFORM=xcb xvfb-run -a python -m pytest tests/faults``. Without one they
are skipped, or fail when ``PROMPTSEG_REQUIRE_DISPLAY=1`` (as ``make test`` sets).

The guards are copied from ``tests/napari/conftest.py`` (conftest modules cannot import each
other without an ``__init__.py``, which must not exist in these folders).

Every test here writes autosaves into its own temporary folder, never the user's.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REQUIRE_ENV = "PROMPTSEG_REQUIRE_DISPLAY"


def _private_tmpdir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)  # mode 0700, as XDG_RUNTIME_DIR must be
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# napari reads NAPARI_CONFIG when napari.settings is first imported, i.e. after this runs.
if "NAPARI_CONFIG" not in os.environ and "napari.settings" not in sys.modules:
    os.environ["NAPARI_CONFIG"] = os.path.join(
        _private_tmpdir("promptseg-napari-config-"), "settings.yaml"
    )
if sys.platform.startswith("linux") and not os.environ.get("XDG_RUNTIME_DIR"):
    os.environ["XDG_RUNTIME_DIR"] = _private_tmpdir("promptseg-xdg-runtime-")


def _x_display_reachable(display: str) -> bool:
    name = ctypes.util.find_library("X11")
    if name is None:
        return True
    try:
        xlib = ctypes.CDLL(name)
    except OSError:
        return True
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    handle = xlib.XOpenDisplay(display.encode())
    if not handle:
        return False
    xlib.XCloseDisplay(handle)
    return True


def gui_unavailable_reason() -> str | None:
    """Why napari can't open a window with OpenGL here, or ``None`` if it should be able to."""
    hint = "run the suite with `make test` (Xvfb), or under `xvfb-run -a`"
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal")):
        return f"QT_QPA_PLATFORM={platform} gives vispy no OpenGL context; {hint}"
    if not sys.platform.startswith("linux"):
        return None
    display = os.environ.get("DISPLAY", "")
    if display:
        if not _x_display_reachable(display):
            return f"DISPLAY={display} is set but no X server answers there; {hint}"
        return None
    if os.environ.get("WAYLAND_DISPLAY"):
        return None
    return f"no display (DISPLAY and WAYLAND_DISPLAY are unset); {hint}"


@pytest.hookimpl(tryfirst=True)  # add the `gui` marker before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [
        item
        for item in items
        if HERE in Path(str(item.path)).resolve().parents
        and "make_napari_viewer" in getattr(item, "fixturenames", ())
    ]
    if not ours:
        return
    for item in ours:
        item.add_marker(pytest.mark.gui)
    reason = gui_unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        raise pytest.UsageError(f"napari tests need a display ({REQUIRE_ENV} is set): {reason}")
    skip = pytest.mark.skip(reason=f"napari GUI test: {reason}")
    for item in ours:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def autosave_dir(tmp_path_factory, monkeypatch):
    """A private autosave folder (the Autosave panel is on by default)."""
    folder = tmp_path_factory.mktemp("autosave")
    monkeypatch.setenv("NAPARI_PROMPTSEG_AUTOSAVE_DIR", str(folder))
    return folder
