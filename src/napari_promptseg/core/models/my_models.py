""" "My models": the user's finetuned checkpoints, listed beside the registry's models.

Each finetuned model is two files in :func:`my_models_dir` (``NAPARI_PROMPTSEG_MY_MODELS``,
else ``~/.local/share/napari-promptseg/models`` on Linux):

    <name>.model.json        the entry: name, checkpoint file, sha256, size, model type,
                             family and the finetune's metadata (base model, data, figures)
    <name>-<time>.pt         the weights: {"model_state": state dict,
                             "promptseg_finetune": metadata}, loadable with
                             torch.load(weights_only=True) and by any SAM loader

The checkpoint has a new name each time a model of that name is saved and the entry is
switched to it atomically afterwards, so a failed save (disk full, cancel) leaves the
previous model whole. :func:`my_model_specs` turns the entries into registry
:class:`~.registry.ModelSpec` s whose file is verified by its sha256, like a download.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..user_folders import user_folder

MY_MODELS_ENV = "NAPARI_PROMPTSEG_MY_MODELS"
ENTRY_SUFFIX = ".model.json"
ENTRY_FORMAT = 1
METADATA_KEY = "promptseg_finetune"  # beside "model_state" in the checkpoint
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

log = logging.getLogger(__name__)


def my_models_dir() -> Path:
    """The folder of the user's finetuned models (it may not exist yet)."""
    return user_folder(MY_MODELS_ENV, "data", "models")


@dataclass(frozen=True)
class MyModel:
    """One entry of :func:`my_models_dir`.

    Attributes
    ----------
    name
        The model's name in the model list.
    path
        Its checkpoint file.
    sha256
        Hex digest of the checkpoint file.
    size_bytes
        Size of the checkpoint file.
    model_type
        Architecture (``"vit_b"``, ``"vit_tiny"`` ...).
    family
        Model family (``"sam"``).
    metadata
        The finetune's description (base model, data summary, validation figures...).
    """

    name: str
    path: Path
    sha256: str
    size_bytes: int
    model_type: str
    family: str
    metadata: dict[str, Any]

    def description(self) -> str:
        """One line for the model list."""
        data = self.metadata.get("data", {})
        figures = self.metadata.get("validation", {})
        before = figures.get("before", {}).get("miou_at_1")
        after = figures.get("after", {}).get("miou_at_1")
        text = f"my model: {self.metadata.get('base_model', self.model_type)} finetuned"
        if data.get("objects"):
            text += f" on {data['objects']} objects"
        if isinstance(before, float) and isinstance(after, float):
            text += f" (validation mIoU@1 {before:.2f} -> {after:.2f})"
        return text


def entry_path(folder: Path, name: str) -> Path:
    return folder / f"{name}{ENTRY_SUFFIX}"


def read_my_models(folder: Path | None = None) -> list[MyModel]:
    """The entries of ``folder`` (default :func:`my_models_dir`), by name.

    Unreadable or malformed entries are skipped with a warning in the log: one damaged
    file never hides the other models.
    """
    folder = my_models_dir() if folder is None else folder
    if not folder.is_dir():
        return []
    models = []
    for path in sorted(folder.glob(f"*{ENTRY_SUFFIX}")):
        try:
            models.append(_read_entry(path))
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("skipping the model entry %s: %s", path, error)
    return models


def _read_entry(path: Path) -> MyModel:
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("format") != ENTRY_FORMAT:
        raise ValueError(f"unknown entry format {record.get('format')!r}")
    name, file = str(record["name"]), str(record["file"])
    if not re.fullmatch(NAME_PATTERN, name) or not re.fullmatch(NAME_PATTERN + r"\.pt", file):
        raise ValueError("the name or file name is not a plain name")
    sha256 = str(record["sha256"]).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("the sha256 is not 64 hex digits")
    return MyModel(
        name=name,
        path=path.parent / file,
        sha256=sha256,
        size_bytes=int(record["size_bytes"]),
        model_type=str(record["model_type"]),
        family=str(record.get("family", "sam")),
        metadata=dict(record.get("metadata") or {}),
    )


def entry_record(model: MyModel) -> dict[str, Any]:
    """The JSON object of ``model``'s entry file."""
    return {
        "format": ENTRY_FORMAT,
        "name": model.name,
        "file": model.path.name,
        "sha256": model.sha256,
        "size_bytes": model.size_bytes,
        "model_type": model.model_type,
        "family": model.family,
        "metadata": model.metadata,
    }
