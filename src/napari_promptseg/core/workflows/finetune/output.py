"""Writing a finetuned model into "my models": a weights-only checkpoint and its entry.

The order makes every failure harmless (see :mod:`...models.my_models` for the layout):

1. the checkpoint goes to a *new* file name through :func:`...storage.files.atomic_write`
   (hashed while it is written) — a full disk leaves no file and the old model untouched;
2. the entry ``<name>.model.json`` is replaced atomically to point at it — if that fails,
   the new checkpoint is removed and the old entry still points at the old file;
3. only then is the old checkpoint deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import torch

from ...errors import ExportError
from ...models.my_models import (
    METADATA_KEY,
    NAME_PATTERN,
    MyModel,
    entry_path,
    entry_record,
    my_models_dir,
    read_my_models,
)
from ...models.registry import MODELS
from ...storage.files import atomic_write
from .settings import FinetuneError
from .trainer import FinetuneResult


@dataclass(frozen=True)
class SavedModel:
    """What :func:`save_finetuned` wrote."""

    model: MyModel
    entry: Path

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def path(self) -> Path:
        return self.model.path

    @property
    def sha256(self) -> str:
        return self.model.sha256


def check_model_name(name: str) -> str:
    """``name`` if it can name a model of mine; :class:`FinetuneError` otherwise."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise FinetuneError(
            f"model name {name!r} must start with a letter or digit and use only letters, "
            "digits, '.', '_' and '-' (64 characters at most)."
        )
    taken = MODELS.get(name)
    mine = {m.name for m in read_my_models()}
    if taken is not None and name not in mine:
        raise FinetuneError(
            f"{name!r} is the name of a registry model; choose another name for yours."
        )
    return name


def save_finetuned(
    result: FinetuneResult, name: str, folder: str | os.PathLike | None = None
) -> SavedModel:
    """Write ``result`` as model ``name`` of "my models" (replacing an older one of that name).

    Parameters
    ----------
    folder
        Where to write; :func:`...models.my_models.my_models_dir` by default.

    Raises
    ------
    FinetuneError
        The name is not a plain name, or a registry model's name.
    ExportError
        Nothing could be written (disk full, unwritable folder); the previous model of
        that name, if any, is intact and no partial file is left.
    """
    check_model_name(name)
    target = Path(folder).expanduser() if folder is not None else my_models_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder {target}: {exc.strerror or exc}.") from exc
    entry = entry_path(target, name)
    previous = _previous_file(entry)
    path = _fresh_checkpoint_path(target, name)
    state = {key: value.detach().cpu() for key, value in result.sam.state_dict().items()}
    payload: dict[str, Any] = {"model_state": state, METADATA_KEY: _json_safe(result.metadata)}
    decoder = getattr(result, "decoder", None)  # an instance decoder: micro-sam's layout
    if decoder is not None:
        payload["decoder_state"] = {k: v.detach().cpu() for k, v in decoder.state_dict().items()}
    hasher = hashlib.sha256()

    def write(file: IO[bytes]) -> None:
        torch.save(payload, cast(IO[bytes], _HashingFile(file, hasher)))

    atomic_write(path, write)
    model = MyModel(
        name=name,
        path=path,
        sha256=hasher.hexdigest(),
        size_bytes=path.stat().st_size,
        model_type=str(result.metadata.get("model_type", "custom")),
        family=str(result.metadata.get("family", "sam")),
        metadata=_json_safe(result.metadata),
    )
    text = json.dumps(entry_record(model), indent=2, allow_nan=False) + "\n"
    try:
        atomic_write(entry, lambda file: file.write(text.encode("utf-8")))
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    if previous is not None and previous != path:
        for stale in (previous, previous.with_name(previous.name + ".verified.json")):
            with contextlib.suppress(OSError):
                stale.unlink()
    return SavedModel(model=model, entry=entry)


def _previous_file(entry: Path) -> Path | None:
    try:
        record = json.loads(entry.read_text(encoding="utf-8"))
        return entry.parent / Path(str(record["file"])).name
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fresh_checkpoint_path(folder: Path, name: str) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = folder / f"{name}-{stamp}.pt"
    counter = 1
    while path.exists():
        counter += 1
        path = folder / f"{name}-{stamp}-{counter}.pt"
    return path


def _json_safe(value: Any) -> Any:
    """Plain JSON values (NaN and infinities become None; tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


class _HashingFile:
    """Writes through to ``file`` and hashes what passes (torch.save needs write/flush)."""

    def __init__(self, file: IO[bytes], hasher: Any) -> None:
        self.file = file
        self.hasher = hasher

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()
