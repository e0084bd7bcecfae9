"""Writing files so that a failure never leaves half a file.

:func:`atomic_write` is how every file of ours reaches the disk (label images, tables,
embedding entries, autosaves, progress files): the data goes to a temporary file in the
target folder, is flushed, then renamed over the target in one step. An interrupted or
failed write leaves the previous file as it was and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from ..errors import ExportError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    Raises
    ------
    ExportError
        The folder is missing or unwritable, the disk is full, or ``write`` failed. The
        previous file at ``path`` (if any) is untouched and no temporary file is left.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: the folder {folder} does not exist.")
    if path.is_dir():
        raise ExportError(f"cannot write {path}: it is a folder.")
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc} (folder {folder}).") from exc
    try:
        os.close(handle)
        with open(temp_name, "wb") as file:  # by name: tifffile wants a named file
            write(file)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {path}: {exc.strerror or exc}.") from exc
        raise
    return path


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; on success it becomes ``folder`` in one rename.

    ``folder`` must not exist or be empty (an empty one is replaced). On any failure the
    temporary folder is removed and ``folder`` is left as it was; an ``OSError`` becomes an
    :class:`ExportError` naming ``folder``.
    """
    folder = Path(folder)
    try:
        staging = Path(
            tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent)
        )
    except OSError as exc:
        raise ExportError(f"cannot write {folder}: {exc.strerror or exc}.") from exc
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp made it private (0700)
        if folder.is_dir():
            folder.rmdir()  # only an empty one; rename cannot replace a folder everywhere
        os.replace(staging, folder)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {folder}: {exc.strerror or exc}.") from exc
        raise


def _read_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back). Read once,
    at import: umask is process-wide, and a worker thread creating a file between the two
    calls would get the wrong mode."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
