"""Segment everything (SAM's automatic mask generator) on a cached embedding.

:mod:`.generator` plans the crops and turns masks into objects; :mod:`.crops` decodes a
crop's batches of points, filters and de-duplicates them, and cleans small regions.
"""

from .generator import (
    EverythingParams,
    EverythingResult,
    count_steps,
    iter_segment_everything,
    segment_everything,
)

__all__ = [
    "EverythingParams",
    "EverythingResult",
    "count_steps",
    "iter_segment_everything",
    "segment_everything",
]
