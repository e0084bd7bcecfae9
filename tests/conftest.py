"""Fixtures shared by every test, and the guards for the tests that open napari.

Fixtures: the tiny randomly initialised SAM, a segmenter on it, an odd-sized RGB image, and
private cache, store and autosave folders (tests never touch the user's).

GUI tests need Qt and a real OpenGL context. ``make test`` runs them under Xvfb with Mesa's
software rasteriser (``xvfb-run``); ``QT_QPA_PLATFORM=offscreen`` is not enough, because vispy
cannot get an OpenGL context there.

* Every test in ``tests/qt``, and every other test that uses napari's
  ``make_napari_viewer`` fixture, gets the ``gui`` marker: ``pytest -m "not gui"`` skips them.
* Without a usable X display (or Wayland) they are skipped, with the reason. With
  ``PROMPTSEG_REQUIRE_DISPLAY=1`` (``make test`` sets it) that is an error instead, so a CI run
  can't go green by skipping the GUI.
* napari reads and writes its settings in a throw-away file, not the user's config.

Create viewers with ``make_napari_viewer`` (napari's pytest plugin, registered through its
``pytest11`` entry point): it resets settings and closes the viewer afterwards. Pass
``show=True`` when a test needs the window rendered (screenshots, canvas events).
Shared helpers live beside this file: ``widgetkit.py`` (the dock widget with the tiny SAM)
and ``loopback.py`` (a file server on 127.0.0.1).

Do NOT add an ``__init__.py`` to the test folders: with pytest's default import mode
``tests/napari`` would become importable as the package ``napari`` and shadow the real one.
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

import numpy as np
import pytest

QT_TESTS = Path(__file__).resolve().parent / "qt"
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
# Qt warns on every run when this is missing (e.g. as root in CI).
if sys.platform.startswith("linux") and not os.environ.get("XDG_RUNTIME_DIR"):
    os.environ["XDG_RUNTIME_DIR"] = _private_tmpdir("promptseg-xdg-runtime-")


def _x_display_reachable(display: str) -> bool:
    """Whether an X server answers on ``display`` (Qt aborts the whole process if not)."""
    name = ctypes.util.find_library("X11")
    if name is None:
        return True  # can't check; let Qt report the problem
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
        return None  # macOS and Windows always have a display
    display = os.environ.get("DISPLAY", "")
    if display:
        if not _x_display_reachable(display):
            return f"DISPLAY={display} is set but no X server answers there; {hint}"
        return None
    if os.environ.get("WAYLAND_DISPLAY"):
        return None
    return f"no display (DISPLAY and WAYLAND_DISPLAY are unset); {hint}"


def _needs_display(item: pytest.Item) -> bool:
    """Every test in tests/qt (the dock widget), and every test that opens a napari viewer."""
    if QT_TESTS in Path(str(item.path)).resolve().parents:
        return True
    return "make_napari_viewer" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # add the `gui` marker before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _needs_display(item)]
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


@pytest.fixture(scope="session")
def tiny_sam():
    from napari_promptseg.testing import build_tiny_sam

    return build_tiny_sam(seed=0)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """The tiny SAM saved with torch.save: what the CLI and the loaders read (never modified)."""
    from napari_promptseg.testing import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth")


@pytest.fixture
def segmenter(tiny_sam):
    from napari_promptseg.core import PromptSegmenter

    return PromptSegmenter(tiny_sam, "tiny-test")


@pytest.fixture
def rgb_300x517():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (300, 517, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # never touch the user's real model cache from tests
    monkeypatch.setenv("NAPARI_PROMPTSEG_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("NAPARI_PROMPTSEG_STORE", str(tmp_path_factory.mktemp("store")))
    monkeypatch.setenv("NAPARI_PROMPTSEG_AUTOSAVE_DIR", str(tmp_path_factory.mktemp("autosave")))
    monkeypatch.setenv("NAPARI_PROMPTSEG_MY_MODELS", str(tmp_path_factory.mktemp("my_models")))
    monkeypatch.setenv("NAPARI_PROMPTSEG_CONFIG", str(tmp_path_factory.mktemp("config")))
    # viewers come and go in one process here: keep the collector as it is (see _qt/long_lived)
    monkeypatch.setenv("NAPARI_PROMPTSEG_GC_FREEZE", "0")


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test(request):
    """After a GUI test (its viewer closed), wait until Qt's pool threads are done: an
    embedding or warm-up decode of a closed viewer must not run into the next test (a
    torch forward left running that way crashed a later test in CI)."""
    yield
    if not _needs_display(request.node):
        return
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    if pool is not None and not pool.waitForDone(30_000):
        pytest.fail("a background worker was still running 30 s after the test ended")


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of 2 worker processes (the ``--scheduler local:2`` code path), started
    once per test module that asks for it (and stopped after it, so no other module forks a
    process with a cluster's threads running); tests pass its address as ``tcp://...``."""
    pytest.importorskip("distributed")
    from napari_promptseg.core.workflows.distributed.scheduler import (
        open_client,
        parse_scheduler,
    )

    with open_client(parse_scheduler("local:2")) as client:
        client.wait_for_workers(2, timeout=120)
        yield client
