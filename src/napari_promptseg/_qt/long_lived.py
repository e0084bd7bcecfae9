"""Keep Python's full garbage collections out of the clicks.

With napari, Qt, torch and a SAM model loaded a process holds ~600 000 objects that the
cyclic garbage collector tracks, and a full (generation 2) collection walks all of them:
~300 ms on this project's 2-core test machine, run on whichever thread allocates when the
counters say so — often the GUI thread in the middle of a prompt's decode, where it made one
click in twenty take twice the median (``benchmarks/peers/ours_driver.py``'s per-click trace
records the collections). Those objects live as long as the session does, so once a model is
loaded they are moved out of the collector's generations (:func:`gc.freeze`): later full
collections walk only what was made since, well under a millisecond's work per thousand
objects.

Once per process: garbage that existed at that moment is kept (its memory is not returned),
which is a one-time, bounded cost; everything made afterwards is collected as usual.
``NAPARI_PROMPTSEG_GC_FREEZE=0`` turns it off (the test suite does: its viewers come and go
in one process, and napari's fixtures check that they are collected).
"""

from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger(__name__)

FREEZE_ENV = "NAPARI_PROMPTSEG_GC_FREEZE"

_frozen = False


def freeze_long_lived_objects() -> bool:
    """Move every object tracked now into the collector's permanent generation (once).

    Returns True the first time (it froze), False afterwards.
    """
    global _frozen
    if _frozen or os.environ.get(FREEZE_ENV, "1").strip() == "0":
        return False
    _frozen = True
    gc.freeze()  # O(1); gc.get_freeze_count() would walk the 600 000 objects (~50 ms)
    log.debug("froze the long-lived objects out of the garbage collector")
    return True


__all__ = ["FREEZE_ENV", "freeze_long_lived_objects"]
