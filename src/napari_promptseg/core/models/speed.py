"""How long each model takes to embed an image on this machine: measured, kept, shown as a hint.

The engine records the wall time of every real encoder run (:func:`record_embed_seconds`);
the model list of the widget and ``promptseg models`` show the median of the last few runs
as ``"≈ 1.2 s / image here"``. Nothing is guessed: a model that never embedded here says
``"not measured yet"``. The figures live in ``speed.json`` in the model cache folder
(:func:`~napari_promptseg.core.models.download.cache_dir`), keyed by model name and device
kind (``cpu``, ``cuda``, ``mps``); an unreadable file is ignored and rewritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .download import cache_dir

SPEED_FILE = "speed.json"
KEEP = 5  # measurements kept per model and device: the hint is their median

log = logging.getLogger(__name__)
_lock = threading.Lock()


def speed_file() -> Path:
    """Where the measurements are kept."""
    return cache_dir() / SPEED_FILE


def record_embed_seconds(model: str, device: str, seconds: float) -> None:
    """Remember that ``model`` embedded one image in ``seconds`` on a ``device`` (e.g. "cpu").

    Never raises for a disk problem: the hint is a convenience, the embedding is what counts.
    """
    if not (seconds > 0 and model):
        return
    kind = device.split(":")[0]
    with _lock:
        data = _read()
        entry = data.setdefault(f"{model}@{kind}", {"seconds": []})
        entry["seconds"] = [*entry.get("seconds", [])[-(KEEP - 1) :], round(float(seconds), 4)]
        entry["model"], entry["device"], entry["when"] = model, kind, time.time()
        try:
            _write(data)
        except OSError as error:
            log.warning("could not keep the embedding time of %s (%s)", model, error)


def embed_seconds(model: str, device: str | None = None) -> tuple[float, str] | None:
    """Median seconds per image and the device kind, for ``device`` or the latest measured."""
    data = _read()
    entries = [
        entry
        for entry in data.values()
        if isinstance(entry, dict)
        and entry.get("model") == model
        and (device is None or entry.get("device") == device.split(":")[0])
        and entry.get("seconds")
    ]
    if not entries:
        return None
    latest = max(entries, key=lambda entry: float(entry.get("when", 0)))
    return float(statistics.median(latest["seconds"])), str(latest.get("device", "?"))


def speed_hint(model: str, device: str | None = None) -> str:
    """``"≈ 1.2 s / image here (cpu)"``, or ``"not measured yet"``."""
    measured = embed_seconds(model, device)
    if measured is None:
        return "not measured yet"
    seconds, kind = measured
    text = f"{seconds:.2g}" if seconds < 10 else f"{seconds:.0f}"
    return f"≈ {text} s / image here ({kind})"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(speed_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(data: dict[str, Any]) -> None:
    path = speed_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{SPEED_FILE}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, sort_keys=True)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
