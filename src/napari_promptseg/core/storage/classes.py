"""Object classes: a list of names with colours, saved as a small JSON file.

Objects carry their class *name* in the ``class`` column of the objects table
(:data:`~napari_promptseg.core.labels.OBJECT_COLUMNS`; "" = no class). The class list gives
the names an order (COCO category ids 1, 2, ... follow it; keys 1–9 in the dock pick the
first nine) and a colour each. Tables written before classes existed have no ``class``
column: their objects simply have no class.

File format (``*.json``, UTF-8)::

    {
      "format": "napari-promptseg classes",
      "version": 1,
      "classes": [
        {"name": "nucleus", "colour": "#1f77b4"},
        {"name": "mitochondrion", "colour": "#ff7f0e"}
      ]
    }

Names are non-empty, stripped, and unique ignoring case; colours are ``#rrggbb`` (written in
lower case). Unknown keys are ignored, so later versions can add some.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PromptSegError
from .files import atomic_write

FORMAT = "napari-promptseg classes"
VERSION = 1
# matplotlib's tab10: distinct on dark and light backgrounds, readable by most colour-blind eyes
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class ClassListError(PromptSegError, ValueError):
    """A class list (or class file) that cannot be used: says which entry and why."""


@dataclass(frozen=True)
class ObjectClass:
    """One class: its ``name`` and display ``colour`` (``#rrggbb``)."""

    name: str
    colour: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ClassListError(f"a class name must be a non-empty text; got {self.name!r}.")
        if not isinstance(self.colour, str) or not _COLOUR.fullmatch(self.colour.strip()):
            raise ClassListError(
                f"class {self.name!r}: colour must be #rrggbb (e.g. #1f77b4); got {self.colour!r}."
            )
        object.__setattr__(self, "name", self.name.strip())
        object.__setattr__(self, "colour", self.colour.strip().lower())


@dataclass(frozen=True)
class ClassList:
    """Object classes in order; immutable (editing returns a new list).

    ``ClassList.from_names(["nucleus", "cell"])`` gives them palette colours.
    """

    classes: tuple[ObjectClass, ...] = ()

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        seen: set[str] = set()
        for item in classes:
            if not isinstance(item, ObjectClass):
                raise ClassListError(f"a class list holds ObjectClass entries; got {item!r}.")
            if item.name.casefold() in seen:
                raise ClassListError(f"class {item.name!r} is listed twice.")
            seen.add(item.name.casefold())
        object.__setattr__(self, "classes", classes)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> ClassList:
        """Classes of these names (duplicates and empty names dropped), palette colours."""
        result = cls()
        for name in names:
            name = str(name).strip()
            if name and result.find(name) is None:
                result = result.with_class(name)
        return result

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[ObjectClass]:
        return iter(self.classes)

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.classes]

    def find(self, name: str) -> ObjectClass | None:
        """The class called ``name`` (ignoring case and surrounding spaces), or None."""
        key = str(name).strip().casefold()
        return next((item for item in self.classes if item.name.casefold() == key), None)

    def category_id(self, name: str) -> int | None:
        """1-based position of class ``name`` (its COCO category id), or None."""
        item = self.find(name)
        return None if item is None else self.classes.index(item) + 1

    def for_key(self, key: int) -> ObjectClass | None:
        """The class picked by number key ``key`` (1–9): the key-th class, or None."""
        return self.classes[key - 1] if 1 <= key <= min(9, len(self.classes)) else None

    def with_class(self, name: str, colour: str | None = None) -> ClassList:
        """This list plus class ``name`` at the end; colour defaults to the next palette one."""
        if colour is None:
            used = {item.colour for item in self.classes}
            free = [c for c in PALETTE if c not in used]
            colour = free[0] if free else PALETTE[len(self.classes) % len(PALETTE)]
        return ClassList((*self.classes, ObjectClass(name, colour)))

    def without(self, name: str) -> ClassList:
        """This list without class ``name``."""
        item = self._get(name)
        return ClassList(tuple(c for c in self.classes if c is not item))

    def renamed(self, name: str, new_name: str) -> ClassList:
        """Class ``name`` called ``new_name`` (same place and colour)."""
        item = self._get(name)
        return ClassList(
            tuple(ObjectClass(new_name, c.colour) if c is item else c for c in self.classes)
        )

    def recoloured(self, name: str, colour: str) -> ClassList:
        """Class ``name`` with another colour."""
        item = self._get(name)
        return ClassList(
            tuple(ObjectClass(c.name, colour) if c is item else c for c in self.classes)
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see the module docstring)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "classes": [{"name": c.name, "colour": c.colour} for c in self.classes],
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ClassList:
        """Read the JSON document; :class:`ClassListError` names what is wrong."""
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise ClassListError(f'not a class list: expected "format": "{FORMAT}".')
        version = document.get("version")
        if not isinstance(version, int) or version < 1:
            raise ClassListError(f"class list version must be a whole number; got {version!r}.")
        if version > VERSION:
            raise ClassListError(
                f"the class list is version {version}, newer than this napari-promptseg reads "
                f"({VERSION}); update napari-promptseg."
            )
        entries = document.get("classes")
        if not isinstance(entries, list):
            raise ClassListError('a class list needs "classes": a list of {"name", "colour"}.')
        classes = []
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise ClassListError(f'class {number}: expected {{"name": ..., "colour": ...}}.')
            colour = entry.get("colour", PALETTE[(number - 1) % len(PALETTE)])
            classes.append(ObjectClass(entry["name"], colour))
        return cls(tuple(classes))

    def _get(self, name: str) -> ObjectClass:
        item = self.find(name)
        if item is None:
            raise ClassListError(f"there is no class {name!r}; classes: {', '.join(self.names)}.")
        return item


def save_class_list(path: str | os.PathLike, classes: ClassList) -> Path:
    """Write ``classes`` as JSON to ``path`` (``.json``), atomically."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ClassListError(f"class lists are saved as .json; got {path.name}.")
    payload = (json.dumps(classes.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()
    return atomic_write(path, lambda file: file.write(payload))


def load_class_list(path: str | os.PathLike) -> ClassList:
    """Read a class list file; :class:`ClassListError` names the file and the problem."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClassListError(f"class list {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ClassListError(f"cannot read class list {path}: {error}") from None
    try:
        return ClassList.from_dict(document)
    except ClassListError as error:
        raise ClassListError(f"{path}: {error}") from None


def row_class(row: Mapping[str, Any]) -> str:
    """The class name of an objects-table row: its ``class`` cell, else a ``category`` cell
    (the column COCO export read before classes existed); "" when it has neither."""
    for column in ("class", "category"):
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""
