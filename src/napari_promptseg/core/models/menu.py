"""The model menu: registry models grouped by family, each with download size and speed here.

One description for the dock widget's model list and ``promptseg models``: groups in a fixed
order (SAM, MobileSAM, SAM 2.1, micro-sam's microscopy models), each entry a line such as
``"vit_t  ·  39 MiB  ·  ≈ 1.2 s / image here (cpu)"``. A model whose family's package is not
installed says so instead of a speed (``"needs the [sam2] extra"``).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import families
from .families import FAMILIES, SAM2_1, family_of
from .registry import DEMO_GROUP, MICROSAM_GROUP, list_models

GROUP_ORDER = (DEMO_GROUP, "SAM", "MobileSAM", "SAM 2.1", MICROSAM_GROUP)


@dataclass(frozen=True)
class MenuEntry:
    """One model of the menu."""

    name: str  # registry name, what load_model takes
    group: str  # heading it is listed under
    text: str  # the line shown: name, download size, speed here (or what is missing)
    tooltip: str  # description, family, size, where the file is (or will be)
    available: bool  # its family's package is installed


def model_menu() -> list[tuple[str, list[MenuEntry]]]:
    """``[(group heading, [entries])]`` in :data:`GROUP_ORDER`; unknown groups go last."""
    groups: dict[str, list[MenuEntry]] = {}
    for row in list_models():
        family = family_of(row["model_type"])
        available = families.is_installed(family)
        if available:
            state = row["speed"]
        elif family.name == SAM2_1:
            state = "needs the [sam2] extra"
        else:
            state = f"needs {family.package}"
        size = row["size_text"] if row["size"] else "size unknown"
        if row["shipped"]:
            cached = "available offline" if row["cached"] else "its file is missing"
        else:
            cached = "downloaded" if row["cached"] else "not downloaded yet"
        entry = MenuEntry(
            name=row["name"],
            group=row["group"],
            text=f"{row['name']}  ·  {size}  ·  {state}",
            tooltip=(
                f"{row['description']}\n{family.title} model ({row['model_type']}), "
                f"download {size}, {cached}: {row['path']}"
                + ("" if available else f"\ninstall with: {FAMILIES[family.name].install}")
            ),
            available=available,
        )
        groups.setdefault(row["group"], []).append(entry)
    order = {name: index for index, name in enumerate(GROUP_ORDER)}
    return sorted(groups.items(), key=lambda item: order.get(item[0], len(order)))
