"""Security checks: safe unpickling only, no path escapes, nothing fetched unasked.

Hash verification before a download enters the cache is tested in
tests/core/test_download.py (test_wrong_hash_leaves_nothing_in_cache) and in
test_fault_models.py; the widget start-up without network is in test_gui_startup.py.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from faultkit import register_served_model
from loopback import LoopbackServer
from registrykit import private_registry

from napari_promptseg.core import models
from napari_promptseg.core.errors import ModelError
from napari_promptseg.testing import build_tiny_sam, save_tiny_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src" / "napari_promptseg"


@pytest.fixture
def torch_load_calls(monkeypatch):
    """Every torch.load call made, with its keyword arguments."""
    calls = []
    real = torch.load

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording)
    return calls


def test_every_checkpoint_load_passes_weights_only(tmp_path, monkeypatch, torch_load_calls):
    path = save_tiny_checkpoint(tmp_path / "tiny.pth")
    models.load_model(checkpoint=path)
    models.load_model(checkpoint=path, model_type="vit_tiny")
    models.load_state_dict(path)
    build_tiny_sam(checkpoint=path)
    # a registry model, downloaded from a loopback server and then loaded
    root = tmp_path / "www"
    root.mkdir()
    served = save_tiny_checkpoint(root / "tiny.pth")
    server = LoopbackServer(root)
    try:
        sha = hashlib.sha256(served.read_bytes()).hexdigest()
        register_served_model(monkeypatch, server, served, sha256=sha)
        models.load_model("tiny_served", progress=False)
    finally:
        server.stop()
    assert len(torch_load_calls) == 5
    assert all(call.get("weights_only") is True for call in torch_load_calls), torch_load_calls


def _calls(tree: ast.AST, module: str, name: str):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == name
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == module
        ):
            yield node


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_source_unpickles_only_safely():
    """No torch.load without weights_only=True, no np.load with pickles, no pickle.load."""
    problems, torch_loads = [], 0
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(SRC)
        for call in _calls(tree, "torch", "load"):
            torch_loads += 1
            if _keyword(call, "weights_only") is not True:
                problems.append(f"{where}:{call.lineno} torch.load without weights_only=True")
        for call in _calls(tree, "np", "load"):
            if _keyword(call, "allow_pickle") is not False:
                problems.append(f"{where}:{call.lineno} np.load without allow_pickle=False")
        for name in ("load", "loads", "Unpickler"):
            for call in _calls(tree, "pickle", name):
                problems.append(f"{where}:{call.lineno} pickle.{name}")
    assert torch_loads >= 1  # the scan does see the loader
    assert problems == []


@pytest.mark.parametrize(
    "filename", ["../x", "../../etc/passwd", "..", ".hidden", "/etc/passwd", "a/b", "", "~/x"]
)
def test_registry_file_names_cannot_leave_the_cache(filename, monkeypatch):
    _assert_file_name_refused(filename, monkeypatch)


@pytest.mark.parametrize("filename", ["a\\..\\..\\x.pth", "C:x.pth", "x\x00y.pth", "x\ny.pth"])
def test_registry_file_names_are_plain_on_every_system(filename, monkeypatch):
    _assert_file_name_refused(filename, monkeypatch)


def _assert_file_name_refused(filename: str, monkeypatch) -> None:
    private_registry(monkeypatch)
    spec = models.ModelSpec(
        name="escape",
        model_type="vit_b",
        url="https://example.invalid/x.pth",
        hash="sha256:" + "a" * 64,
        filename=filename,
        size_bytes=None,
        description="",
        source="",
    )
    with pytest.raises(ModelError, match="must be a plain name"):
        models.register_model(spec)
    assert "escape" not in models.MODELS


_NO_NETWORK = r"""
import json, os, socket, sys
calls = []
def refuse(kind):
    def blocked(*args, **kwargs):
        calls.append(kind)
        raise OSError("network disabled by the test")
    return blocked
socket.socket.connect = refuse("connect")
socket.socket.connect_ex = refuse("connect_ex")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
import napari_promptseg, napari_promptseg.core, napari_promptseg.core.models.registry
import napari_promptseg.core.models.download, napari_promptseg.core.storage.store, napari_promptseg.core.storage.autosave
import napari_promptseg.cli, napari_promptseg._writer, napari_promptseg._sample_data
from napari_promptseg.core.models import list_models
rows = list_models()
print(json.dumps({"calls": calls, "models": len(rows), "cached": [r["name"] for r in rows if r["cached"]]}))
"""


def test_import_fetches_nothing_and_writes_nothing(tmp_path):
    cache = tmp_path / "cache"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NAPARI_PROMPTSEG")},
        "NAPARI_PROMPTSEG_CACHE": str(cache),
        "NAPARI_PROMPTSEG_STORE": str(tmp_path / "store"),
        "NAPARI_PROMPTSEG_AUTOSAVE_DIR": str(tmp_path / "autosave"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["calls"] == []
    # nothing in the (new, empty) cache: only the demo model, whose file is in the package
    assert report["models"] >= 7 and report["cached"] == ["demo"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder was even created
