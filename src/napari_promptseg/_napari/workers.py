"""Background workers for the dock widget's sections: napari's ``create_worker``, wired up.

Every long job of a panel runs in a napari worker whose errors come back through its
``errored`` signal (never re-raised on the main thread) and whose results reach the layers
only through signal callbacks, which Qt runs on the main thread.
"""

from __future__ import annotations

from collections.abc import Callable

SIGNALS = ("started", "yielded", "returned", "errored", "aborted", "finished")


def connected_worker(job: Callable, *args, progress: dict | None = None, **slots: Callable):
    """``create_worker(job, *args)`` with ``slots`` connected by signal name; not started.

    Parameters
    ----------
    job
        The function (or generator function: ``yielded`` per step, quit at a ``yield``).
    progress
        napari's ``_progress`` option (an activity-dock bar: ``desc``, ``total``), or None.
    slots
        ``yielded=...``, ``returned=...``, ``errored=...`` etc. Prefer bound methods of a
        QObject to lambdas: Qt drops those connections if the object is deleted mid-run.

    Errors do not propagate to the main thread: pass ``errored`` to hear of them.
    """
    from napari.qt.threading import create_worker

    unknown = sorted(set(slots) - set(SIGNALS))
    if unknown:
        raise TypeError(f"workers have no signal {', '.join(unknown)}; they have {SIGNALS}.")
    worker = create_worker(job, *args, _progress=progress, _ignore_errors=True)
    for name, slot in slots.items():
        getattr(worker, name).connect(slot)
    return worker
