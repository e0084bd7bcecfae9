"""The progress file of an annotated image folder: each image's state and the folder's shape.

``<output>/promptseg_progress.json`` records, per image file name, one state:

* ``done``: the user moved on with *Next* (its labels were saved, possibly empty: "nothing
  here" is an annotation too);
* ``started``: labels saved without moving on (*Previous*, a jump, the folder closed) —
  not done, so resuming comes back to it and loads what was saved;
* ``skipped``: it could not be read or has another shape, with the reason.

An image with no entry is ``done`` if its labels file exists (results made before the
progress file, or by ``promptseg segment``), else ``todo``. The file also keeps the shape
every image of the folder must have, with the image it came from (see :mod:`core.folder`).

A missing or unreadable file is not an error: the labels files still say what is done
(the problem is kept in :attr:`FolderProgress.problems`) and the next save rewrites it.
The file is replaced atomically, so a crash never leaves half of it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ImageError
from .files import atomic_write

log = logging.getLogger("napari_promptseg.core.storage.folder")  # the folder's, as before the split

PROGRESS_NAME = "promptseg_progress.json"
TODO, STARTED, DONE, SKIPPED = "todo", "started", "done", "skipped"
STATES = (TODO, STARTED, DONE, SKIPPED)
_FORMAT = "napari-promptseg folder progress"


@dataclass(frozen=True)
class ImageState:
    """Where one image stands: ``state`` is todo, started, done or skipped."""

    state: str
    reason: str = ""  # why it was skipped
    objects: int | None = None  # objects in the saved labels, when saved by us

    @property
    def is_done(self) -> bool:
        return self.state == DONE


class FolderProgress:
    """The progress of the images of one folder, kept in ``output/promptseg_progress.json``.

    Parameters
    ----------
    output
        The folder the progress file is in.
    images_folder
        The folder of the images (recorded in the file, for the reader).
    shape
        Shape every image must have; default: the one in the file, else the first image
        checked (:meth:`check_shape`).
    """

    def __init__(
        self, output: Path, images_folder: Path, shape: tuple[int, ...] | None = None
    ) -> None:
        self.path = output / PROGRESS_NAME
        self.images_folder = images_folder
        self.problems: list[str] = []  # things the user should know (unreadable file)
        self._lock = threading.Lock()  # the reference shape: set from worker threads too
        self._entries: dict[str, dict[str, Any]] = {}
        self.shape: tuple[int, ...] | None = tuple(shape) if shape is not None else None
        self._shape_source = "given" if shape is not None else ""
        self._read()

    def state(self, name: str, saved: bool) -> ImageState:
        """The state of image file ``name``, given whether its labels file exists.

        No entry: done if saved, else todo. Done or started but the labels file is gone:
        todo again (annotate it afresh).
        """
        entry = self._entries.get(name)
        if entry is None:
            return ImageState(DONE if saved else TODO)
        if entry["state"] in (DONE, STARTED) and not saved:
            return ImageState(TODO)
        return ImageState(entry["state"], entry.get("reason", ""), entry.get("objects"))

    def mark_skipped(self, name: str, reason: str) -> None:
        """Record that ``name`` was skipped and why, and write the file.

        Raises
        ------
        ExportError
            The file cannot be written; the state is still kept in memory.
        """
        self._entries[name] = {"state": SKIPPED, "reason": str(reason)}
        self.write()

    def mark_saved(self, name: str, objects: int, *, done: bool) -> None:
        """Record that ``name``'s labels were saved (done, or started unless done already)."""
        previous = self._entries.get(name, {}).get("state")
        self._entries[name] = {
            "state": DONE if done or previous == DONE else STARTED,
            "objects": objects,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.write()

    def check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """Take ``shape`` as the folder's if it has none yet; raise if it differs.

        Raises
        ------
        ImageError
            ``shape`` is not the folder's, naming both and where the folder's came from.
        """
        with self._lock:
            if self.shape is None:
                self.shape, self._shape_source = tuple(shape), name
            elif tuple(shape) != self.shape:
                source = f" like {self._shape_source}" if self._shape_source else ""
                raise ImageError(
                    f"{name} is {describe_shape(shape)}; the images of this folder "
                    f"are {describe_shape(self.shape)}{source}. Annotate it in a folder of its own."
                )

    def write(self) -> None:
        """Replace the progress file with the states and shape held now."""
        with self._lock:
            shape, source = self.shape, self._shape_source
        data = {
            "format": _FORMAT,
            "version": 1,
            "images_folder": str(self.images_folder.resolve()),
            "shape": list(shape) if shape is not None else None,
            "shape_from": source,
            "images": self._entries,
        }
        payload = json.dumps(data, indent=1, sort_keys=True).encode("utf-8")
        atomic_write(self.path, lambda file: file.write(payload))

    def _read(self) -> None:
        path = self.path
        if not path.is_file():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT:
                raise ValueError("not a napari-promptseg progress file")
            entries = {
                str(name): dict(entry)
                for name, entry in data.get("images", {}).items()
                if isinstance(entry, dict) and entry.get("state") in STATES
            }
            shape = data.get("shape")
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            # Annotating goes on: the labels files still say what is done.
            self.problems.append(
                f"the progress file {path} cannot be read ({exc}); done images are those with "
                "a labels file. It is rewritten at the next save."
            )
            log.warning("promptseg: %s", self.problems[-1])
            return
        self._entries = entries
        if self.shape is None and isinstance(shape, list) and shape:
            self.shape = tuple(int(s) for s in shape)
            self._shape_source = str(data.get("shape_from", ""))


def describe_shape(shape: Iterable[int]) -> str:
    """``(120, 160)`` → ``"120x160"``."""
    return "x".join(str(int(s)) for s in shape)
