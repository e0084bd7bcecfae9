"""A downloadable checkpoint's description, :class:`ModelSpec`.

Its own module so that :mod:`.download` (which fetches a spec's file) and :mod:`.registry`
(which names the specs and imports :mod:`.download` and :mod:`.speed`) do not import each
other: ``[tool.importlinter]``'s acyclic contract on ``core.models`` keeps it so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .families import family_of


@dataclass(frozen=True)
class ModelSpec:
    """A downloadable checkpoint.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"vit_b"`` or ``"vit_b_lm"``.
    model_type : str
        Architecture, a key of :data:`BUILDERS` (``"vit_b"``, ``"vit_t"``,
        ``"sam2.1_hiera_t"``, ...); it decides the family (:mod:`.families`).
    url : str
        Where the file is downloaded from.
    hash : str
        Pooch-style ``"<algorithm>:<hex digest>"``. sha256 where the publisher gives one;
        micro-sam only publishes ``xxh128`` hashes (verifying those needs ``xxhash``).
    filename : str
        File name in the cache folder (unique across the registry).
    size_bytes : int or None
        Exact file size when known; lets a truncated copy be spotted without hashing.
    description : str
        One line for users.
    source : str
        Who publishes the file and under which licence / where the hash comes from.
    group : str
        Heading of the model menu it is listed under; empty: its family's title ("SAM",
        "MobileSAM", "SAM 2.1").
    folder : Path or None
        For a model that is never downloaded (``url`` empty): the folder holding its file,
        inside the package (the ``demo`` model) or among "my models" (finetuned here). The
        file is verified by its hash all the same.
    """

    name: str
    model_type: str
    url: str
    hash: str
    filename: str
    size_bytes: int | None
    description: str
    source: str
    group: str = ""
    folder: Path | None = None

    @property
    def family(self) -> str:
        """``"sam"``, ``"mobilesam"`` or ``"sam2.1"``."""
        return family_of(self.model_type).name
