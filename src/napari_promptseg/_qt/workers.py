"""Background workers for the dock widget's sections: napari's ``create_worker``, wired up.

Every long job of a panel runs in a napari worker whose errors come back through its
``errored`` signal (never re-raised on the main thread) and whose results reach the layers
only through signal callbacks, which Qt runs on the main thread.

Progress is shown in the dock widget (:class:`BarProgress`), not in napari's activity dock:
while any napari progress item is open, the activity button animates a GIF, and on machines
without a GPU (software OpenGL) every frame of it recomposites the window. Measured here
(vit_b, 2 cores): the embedding took 34 s with it and 18 s without, and the GUI's longest
stall went from 172 ms to 31 ms.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
BACKGROUND_NICE = 10  # how much lower than the GUI a background job runs (Linux)

SIGNALS = ("started", "yielded", "returned", "errored", "aborted", "finished")


def connected_worker(job: Callable, *args, background: bool = False, **slots: Callable):
    """``create_worker(job, *args)`` with ``slots`` connected by signal name; not started.

    Parameters
    ----------
    job
        The function (or generator function: ``yielded`` per step, quit at a ``yield``).
    background
        Run at a lower CPU priority than the GUI (see :func:`run_in_background`): for
        minutes of encoder work that must not make napari stutter.
    slots
        ``yielded=...``, ``returned=...``, ``errored=...`` etc. Prefer bound methods of a
        QObject to lambdas: Qt drops those connections if the object is deleted mid-run.

    Errors do not propagate to the main thread: pass ``errored`` to hear of them.
    """
    from napari.qt.threading import create_worker

    unknown = sorted(set(slots) - set(SIGNALS))
    if unknown:
        raise TypeError(f"workers have no signal {', '.join(unknown)}; they have {SIGNALS}.")
    if background:
        job = run_in_background(job)
    worker = create_worker(job, *args, _ignore_errors=True)
    for name, slot in slots.items():
        getattr(worker, name).connect(slot)
    return worker


def run_in_background(job: Callable) -> Callable:
    """``job`` (a function or generator function) that first lowers its thread's priority.

    On 2-4 cores a SAM encoder using every core starves napari's GUI thread (measured:
    timer gaps over 100 ms). A nicer worker thread leaves the GUI the CPU when it needs
    it and costs the embedding almost nothing when the GUI is idle. Linux only (elsewhere
    thread priorities are not set this way); threads torch starts from this thread
    inherit the priority. A pool thread keeps the lower priority afterwards (raising it
    back needs privileges), which suits the background jobs that reuse it.
    """
    if inspect.isgeneratorfunction(job):

        @functools.wraps(job)
        def generator(*args, **kwargs):
            lower_this_thread()
            return (yield from job(*args, **kwargs))

        return generator

    @functools.wraps(job)
    def function(*args, **kwargs):
        lower_this_thread()
        return job(*args, **kwargs)

    return function


def lower_this_thread(nice: int = BACKGROUND_NICE) -> None:
    """Raise the calling thread's nice value to at least ``nice`` (Linux; no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as error:  # e.g. a sandbox forbids it: run at normal priority
        log.debug("could not lower the priority of thread %s: %s", tid, error)


class BarProgress:
    """The ``n`` / ``total`` / ``update`` / ``close`` of ``napari.utils.progress``, on a bar
    inside the dock widget (see the module docstring for why not napari's)."""

    def __init__(self, bar, total: int = 0) -> None:
        self.bar, self.n = bar, 0
        self.total = total
        bar.setValue(0)
        bar.setVisible(True)

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = int(value)
        self.bar.setRange(0, max(self._total, 0))  # 0..0 shows a busy bar

    def update(self, steps: int = 1) -> None:
        self.n += steps
        self.bar.setValue(self.n)

    def close(self) -> None:
        self.bar.setVisible(False)
