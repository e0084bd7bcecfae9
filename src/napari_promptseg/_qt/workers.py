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
from typing import Any

log = logging.getLogger(__name__)
#: How much lower than the GUI a background job runs (Linux nice). 0: the same priority.
#: Measured (benchmarks/bench_busy.py, vit_b, 2 cores): with another process busy on one core,
#: load + embed took 2.28x its quiet time at nice 10 — torch's worker threads inherit the
#: nice value and the one sharing a core with the other process loses it, so every parallel
#: region waits — against 1.63x at nice 0 (micro-sam, which embeds on the GUI thread: 1.6x);
#: the GUI's longest gap while embedding was 44 / 87 ms (quiet / busy) at nice 10 and
#: 49 / 66 ms at nice 0. Fair sharing of 2 cores with a third busy thread bounds the ratio
#: near 1.5x.
BACKGROUND_NICE = 0
#: Overrides BACKGROUND_NICE (an integer 0-19): a higher value keeps napari smoother while
#: embedding on a machine where nothing else runs, at the cost of slow embeddings when
#: something does.
NICE_ENV = "NAPARI_PROMPTSEG_BACKGROUND_NICE"

SIGNALS = ("started", "yielded", "returned", "errored", "aborted", "finished")

#: Idle worker threads of Qt's global pool exit after this many ms (Qt's default: 30 000).
#: A thread that ran torch keeps an OpenMP thread team for as long as it lives; with more
#: OpenMP threads than cores libgomp stops spinning between parallel regions, and a decode on
#: the GUI thread then sleeps and wakes its helper thread at each of its ~200 regions. Measured
#: (vit_b, 2 cores, point added → mask drawn, medians of 20): 119 ms with the embedding
#: worker's thread idling on, 106 ms once it has exited.
WORKER_EXPIRY_MS = 100


def let_idle_workers_exit() -> None:
    """Make idle pool threads exit after :data:`WORKER_EXPIRY_MS` (never lengthens it)."""
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    if pool is not None and (pool.expiryTimeout() < 0 or pool.expiryTimeout() > WORKER_EXPIRY_MS):
        pool.setExpiryTimeout(WORKER_EXPIRY_MS)


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


class WorkerSlot:
    """Room for one background worker: starting a new one quits the old, whose results are dropped.

    Every long job of the session and the panels runs in a slot. A worker that was replaced
    (a newer :meth:`start`) or cancelled (:meth:`cancel`) may still emit ``yielded``,
    ``returned`` or ``errored`` before it stops at its next ``yield``; those emissions never
    reach the slots given to :meth:`start`. When the current worker finishes, the slot is
    freed first (:attr:`running` is False), then its ``finished`` slot is called.

    Parameters
    ----------
    owner
        The QObject (panel, session) whose methods the slots are. When Qt deletes it —
        possibly without ``close()``, e.g. with its window — the slot cancels its worker, so
        nothing calls into a deleted widget.
    """

    def __init__(self, owner: Any = None) -> None:
        self._worker: Any = None
        if owner is not None:
            owner.destroyed.connect(self.cancel)

    @property
    def worker(self) -> Any:
        """The current worker (a napari ``WorkerBase``), or None."""
        return self._worker

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, job: Callable, *args: Any, background: bool = False, **slots: Callable) -> Any:
        """Quit the current worker (if any), then run ``job(*args)`` in a new one; returns it.

        ``background`` and ``slots`` are as for :func:`connected_worker`.
        """
        unknown = sorted(set(slots) - set(SIGNALS))
        if unknown:
            raise TypeError(f"workers have no signal {', '.join(unknown)}; they have {SIGNALS}.")
        self.cancel()
        worker = connected_worker(job, *args, background=background)
        finished = slots.pop("finished", None)
        for name, slot in slots.items():
            getattr(worker, name).connect(self._only_if_current(worker, slot))
        worker.finished.connect(lambda: self._finish(worker, finished))
        self._worker = worker
        worker.start()
        return worker

    def quit(self) -> None:
        """Ask the current worker to stop at its next ``yield``; its ``aborted`` and
        ``finished`` still arrive (a user's Cancel that reports what was kept)."""
        if self._worker is not None:
            self._worker.quit()

    def cancel(self) -> None:
        """Ask the current worker to stop at its next ``yield`` and forget it: nothing more
        of it arrives (a replaced job, a closing panel)."""
        if self._worker is not None:
            self._worker.quit()
            self._worker = None

    def is_current(self, worker: Any) -> bool:
        return worker is not None and worker is self._worker

    def _only_if_current(self, worker: Any, slot: Callable) -> Callable:
        def call(*args: Any) -> None:
            if worker is self._worker:
                slot(*args)

        return call

    def _finish(self, worker: Any, slot: Callable | None) -> None:
        if worker is not self._worker:
            return
        self._worker = None
        if slot is not None:
            slot()


def run_in_background(job: Callable) -> Callable:
    """``job`` (a function or generator function) that first sets its thread's priority to
    :func:`background_nice` (no change at the default 0; see :data:`BACKGROUND_NICE`).

    Linux only (elsewhere thread priorities are not set this way); threads torch starts
    from this thread inherit the priority. A pool thread keeps a lower priority afterwards
    (raising it back needs privileges).
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


def background_nice() -> int:
    """The nice value of background jobs: ``$NAPARI_PROMPTSEG_BACKGROUND_NICE`` or the default."""
    try:
        return max(0, min(19, int(os.environ.get(NICE_ENV, BACKGROUND_NICE))))
    except ValueError:
        return BACKGROUND_NICE


def lower_this_thread(nice: int | None = None) -> None:
    """Raise the calling thread's nice value to at least ``nice`` (Linux; no-op elsewhere)."""
    nice = background_nice() if nice is None else nice
    if not sys.platform.startswith("linux") or nice <= 0:
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
