"""Extending a committed object through the slices of a stack (z or t).

:mod:`.propagate` walks plane by plane, the previous mask prompting the next;
:mod:`.rows` updates the object's row in the objects table with per-slice scores.
"""

from .propagate import Propagation, PropagationStep, iter_propagate, propagate
from .rows import propagated_row

__all__ = ["Propagation", "PropagationStep", "iter_propagate", "propagate", "propagated_row"]
