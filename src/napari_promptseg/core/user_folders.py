"""Per-user folders: an environment variable if set, else the platform's standard folder.

One rule for the model cache, the embedding store, the autosave folder and the settings, so
they move the same way (``NAPARI_PROMPTSEG_CACHE``, ``NAPARI_PROMPTSEG_STORE``,
``NAPARI_PROMPTSEG_AUTOSAVE_DIR``, ``NAPARI_PROMPTSEG_CONFIG``) and land in the places users
look on each system (``~/.cache/napari-promptseg/...``, ``~/.local/share/napari-promptseg/...``
and ``~/.config/napari-promptseg`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

APP_NAME = "napari-promptseg"


def user_folder(env: str, kind: Literal["cache", "data", "config"], name: str) -> Path:
    """``$env`` if set (``~`` expanded), else ``<platform user {kind} dir>/napari-promptseg/name``.

    The folder may not exist yet.
    """
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    import platformdirs

    # appauthor=False: no extra "<author>" level in the Windows path
    base = {
        "cache": platformdirs.user_cache_dir,
        "data": platformdirs.user_data_dir,
        "config": platformdirs.user_config_dir,  # settings, e.g. the dock's layout
    }[kind](APP_NAME, appauthor=False)
    return Path(base) / name
