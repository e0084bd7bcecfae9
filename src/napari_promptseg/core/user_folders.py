"""Per-user folders: an environment variable if set, else the platform's standard folder.

One rule for the model cache, the embedding store and the autosave folder, so they move the
same way (``NAPARI_PROMPTSEG_CACHE``, ``NAPARI_PROMPTSEG_STORE``,
``NAPARI_PROMPTSEG_AUTOSAVE_DIR``) and land in the places users look on each system
(``~/.cache/napari-promptseg/...`` and ``~/.local/share/napari-promptseg/...`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

APP_NAME = "napari-promptseg"


def user_folder(env: str, kind: Literal["cache", "data"], name: str) -> Path:
    """``$env`` if set (``~`` expanded), else ``<platform user cache|data dir>/napari-promptseg/name``.

    The folder may not exist yet.
    """
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    import platformdirs

    # appauthor=False: no extra "<author>" level in the Windows path
    base = (
        platformdirs.user_cache_dir(APP_NAME, appauthor=False)
        if kind == "cache"
        else platformdirs.user_data_dir(APP_NAME, appauthor=False)
    )
    return Path(base) / name
