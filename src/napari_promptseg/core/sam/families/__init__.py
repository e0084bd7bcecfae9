"""Running each model family: SAM, MobileSAM and SAM 2.1 behind one interface.

:func:`runner_for` picks the :class:`~.base.FamilyRunner` of a loaded model's family; the
engine (:class:`~napari_promptseg.core.sam.engine.PromptSegmenter`) talks to nothing else.
``sam2`` is imported only when a SAM 2.1 model is run.
"""

from __future__ import annotations

from typing import Any

from ...models.families import MOBILESAM, SAM, SAM2_1, get_family
from .base import EVERYTHING, FINETUNE, Decoder, FamilyError, FamilyRunner, require
from .sam import MobileSamRunner, SamRunner


def runner_for(model: Any, family: str = SAM) -> FamilyRunner:
    """The runner of ``family`` (``"sam"``, ``"mobilesam"``, ``"sam2.1"``) for ``model``."""
    get_family(family)  # a clear error for an unknown name
    if family == MOBILESAM:
        return MobileSamRunner(model)
    if family == SAM2_1:
        from .sam2 import Sam2Runner

        return Sam2Runner(model)
    return SamRunner(model)


__all__ = [
    "EVERYTHING",
    "FINETUNE",
    "Decoder",
    "FamilyError",
    "FamilyRunner",
    "MobileSamRunner",
    "SamRunner",
    "require",
    "runner_for",
]
