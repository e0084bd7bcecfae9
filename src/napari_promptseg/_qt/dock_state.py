"""The dock's layout between sessions: the chosen tab, which sections are open, the split.

A small JSON file, ``dock.json`` in the user's config folder (``~/.config/napari-promptseg``
on Linux; ``NAPARI_PROMPTSEG_CONFIG`` moves it)::

    {"version": 1, "tab": "Volume & time",
     "sections": {"Edit objects": false, "Propagate through slices": true},
     "splitter": [520, 300]}

The layout is a convenience, never a reason to fail: a missing, unreadable or garbled file,
one written by another version, or a field of the wrong type gives the default for that part
(logged), and a file that cannot be written is logged once per session.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import PromptSegError
from ..core.storage.files import atomic_write
from ..core.user_folders import user_folder

log = logging.getLogger(__name__)

CONFIG_ENV = "NAPARI_PROMPTSEG_CONFIG"
FILE_NAME = "dock.json"
VERSION = 1  # bump when a field changes meaning; other versions are ignored

_warned: set[Path] = set()


@dataclass
class DockState:
    """What the dock restores.

    Attributes
    ----------
    tab
        The chosen group's name (``None``: the first tab).
    sections
        Section title -> expanded. A title not here gets its default (a new panel).
    splitter
        Heights in px of the always-visible part and of the tabs (``None``: as they fit).
    """

    tab: str | None = None
    sections: dict[str, bool] = field(default_factory=dict)
    splitter: tuple[int, int] | None = None


def state_path() -> Path:
    """Where the layout is kept (the folder may not exist yet)."""
    return user_folder(CONFIG_ENV, "config", "") / FILE_NAME


def load_state(path: Path | None = None) -> DockState:
    """The saved layout, or the default for whatever part of it is missing or not understood."""
    path = state_path() if path is None else path
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DockState()
    except (OSError, UnicodeDecodeError, ValueError) as error:
        log.info("dock layout %s not read (%s): using the default layout", path, error)
        return DockState()
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        version = raw.get("version") if isinstance(raw, dict) else None
        log.info("dock layout %s is from another version (%r): ignored", path, version)
        return DockState()
    return DockState(
        tab=_tab(raw.get("tab")),
        sections=_sections(raw.get("sections")),
        splitter=_splitter(raw.get("splitter")),
    )


def save_state(state: DockState, path: Path | None = None) -> bool:
    """Write ``state``; False (and a log line) if it could not be written."""
    path = state_path() if path is None else path
    payload: dict[str, Any] = {
        "version": VERSION,
        "tab": state.tab,
        "sections": dict(state.sections),
        "splitter": list(state.splitter) if state.splitter is not None else None,
    }
    text = json.dumps(payload, indent=1, sort_keys=True).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: file.write(text))
    except (OSError, PromptSegError) as error:  # a layout file must never break the dock
        if path not in _warned:  # once: every tab change would say it again
            _warned.add(path)
            log.warning("dock layout not saved to %s: %s", path, error)
        return False
    return True


def _tab(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _sections(value: object) -> dict[str, bool]:
    if not isinstance(value, dict):
        return {}
    return {
        title: expanded
        for title, expanded in value.items()
        if isinstance(title, str) and isinstance(expanded, bool)
    }


def _splitter(value: object) -> tuple[int, int] | None:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(type(size) is int and 0 <= size < 100_000 for size in value)
        and sum(value) > 0
    ):
        return (value[0], value[1])
    return None
