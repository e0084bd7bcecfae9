"""Packaging checks: cheap, GUI-free imports and a valid napari (npe2) manifest.

These run against the installed distribution (``pip install -e '.[all,test]'``, i.e. ``make venv``).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_MANIFEST = ROOT / "src" / "napari_promptseg" / "napari.yaml"
TOP_LEVEL_MANIFEST = ROOT / "napari.yaml"
DIST_NAME = "napari-promptseg"

QT = {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6"}
GUI = QT | {"napari", "vispy"}


def _imported_top_level_modules(module: str) -> set[str]:
    """Import ``module`` in a fresh interpreter; return the top-level modules it pulled in."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, f"import {module} failed:\n{proc.stderr}"
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # The engine runs in scripts, notebooks and worker processes: no GUI stack.
        ("napari_promptseg.core", GUI),
        # napari imports the package while discovering plugins: keep that cheap.
        ("napari_promptseg", GUI | {"torch", "segment_anything"}),
        # Sample data is numpy only (the CLI uses it too).
        ("napari_promptseg._sample_data", GUI | {"torch", "segment_anything"}),
    ],
)
def test_import_does_not_pull_in(module, forbidden):
    leaked = _imported_top_level_modules(module) & forbidden
    assert not leaked, f"`import {module}` imports {sorted(leaked)}"


def test_top_level_manifest_is_a_symlink_to_the_package_manifest():
    assert PACKAGE_MANIFEST.is_file()
    assert not PACKAGE_MANIFEST.is_symlink(), "the package manifest must be a real file"
    assert TOP_LEVEL_MANIFEST.is_symlink(), "top-level napari.yaml must be a symlink"
    assert TOP_LEVEL_MANIFEST.resolve() == PACKAGE_MANIFEST.resolve()
    # Relative, so it survives clones and copies of the repository.
    assert not Path(TOP_LEVEL_MANIFEST.readlink()).is_absolute()
    assert TOP_LEVEL_MANIFEST.read_bytes() == PACKAGE_MANIFEST.read_bytes()


def test_installed_manifest_loads():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution(DIST_NAME)
    assert manifest.name == DIST_NAME
    # What is installed is the manifest in the source tree (editable or fresh install).
    source = npe2.PluginManifest.from_file(PACKAGE_MANIFEST)
    assert manifest.display_name == source.display_name
    assert manifest.contributions == source.contributions
    samples = {s.key: s for s in manifest.contributions.sample_data or []}
    assert samples["cells"].command == "napari-promptseg.sample_cells"


def test_npe2_validate_passes():
    pytest.importorskip("npe2")
    # --imports also imports every python_name in the manifest.
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", DIST_NAME, "--imports"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sample_data_command_returns_an_image_layer():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution(DIST_NAME)
    [command] = [
        c for c in manifest.contributions.commands if c.id == "napari-promptseg.sample_cells"
    ]
    module, _, attr = command.python_name.partition(":")
    provider = getattr(importlib.import_module(module), attr)
    [(data, meta, kind)] = provider()
    assert kind == "image"
    assert meta["name"] == "cells (sample)"
    assert data.ndim == 2
