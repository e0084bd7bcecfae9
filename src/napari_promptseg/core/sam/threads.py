"""How many CPU threads a decode uses: all of torch's when the cores are free, one when
another process competes for them.

Why: torch runs a decode as a few hundred short parallel regions, and each one waits at
its barrier for the slowest of its threads. When another busy process takes one of two
cores, one of our two threads is preempted for a scheduler time slice at a time, and every
region waits for it: a vit_b decode took 705 ms instead of 92 ms
(``benchmarks/bench_peers.py --busy``). On one thread nothing waits, and the decode costs
about 1.5x its quiet time. Which case holds is only known by measuring, so the chooser
times every decode and keeps the thread count that is faster now, trying the other one
now and then (the machine's load changes).

Thread counts are per calling thread in torch's OpenMP backend: the embedding worker's
threads are not touched. :func:`torch_threads` restores the count after each decode.

Used for the napari session's prompt decodes only (``_napari/decoding.py``): a decode on one
thread equals upstream's on one thread, but may differ from a two-thread decode in the last
bits of the logits (floating-point sums in another order; after 20 refining clicks, one
object of 23 differed by 6e-7 in IoU). Batch work, evaluation and the CLI keep torch's own
thread count, so their results equal upstream's run in the same process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

#: A fixed thread count for the session's decodes instead of choosing, e.g. "2".
THREADS_ENV = "NAPARI_PROMPTSEG_DECODE_THREADS"


class _ThreadCountGate:
    """Keeps ``torch.set_num_threads`` from running while another thread computes.

    ``set_num_threads`` is not only the calling thread's OpenMP setting: it also resizes
    torch's shared thread pool and clears oneDNN's cache of compiled kernels, under the feet
    of a forward running in another thread. A GUI decode changing the count while the
    embedding worker ran a block (or two warm-ups of consecutive planes) crashed the
    process (a segfault inside a torch forward, twice in CI). So: compute registered with
    :func:`torch_work` waits while another thread runs with a changed count, and a count is
    changed only while no other thread computes (else the block runs with the count in
    force).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._working: dict[int, int] = {}  # thread ident -> nesting depth
        self._changer: int | None = None  # the thread running with a changed count
        self._changes = 0  # its nesting depth

    @contextmanager
    def work(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            while self._changer is not None and self._changer != me:
                self._cond.wait()
            self._working[me] = self._working.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                depth = self._working.pop(me) - 1
                if depth:
                    self._working[me] = depth
                self._cond.notify_all()

    def try_change(self) -> bool:
        """Become the one thread with a changed count, if no other thread computes."""
        me = threading.get_ident()
        with self._cond:
            others = any(ident != me for ident in self._working)
            if others or (self._changer is not None and self._changer != me):
                return False
            self._changer = me
            self._changes += 1
            return True

    def end_change(self) -> None:
        with self._cond:
            self._changes -= 1
            if self._changes == 0:
                self._changer = None
                self._cond.notify_all()


_GATE = _ThreadCountGate()


def torch_work() -> Any:
    """Register the torch compute of the block (see :class:`_ThreadCountGate`)."""
    return _GATE.work()


@contextmanager
def torch_threads(count: int) -> Iterator[bool]:
    """Run the block with ``count`` torch intra-op threads, then restore the count.

    Yields whether the count was applied: it is not while another thread computes (the
    block then runs with the count in force; a timing of it says nothing of ``count``).
    """
    before = torch.get_num_threads()
    if count == before:
        yield True
        return
    if not _GATE.try_change():
        yield False
        return
    try:
        torch.set_num_threads(count)
        try:
            with _GATE.work():
                yield True
        finally:
            torch.set_num_threads(before)
    finally:
        _GATE.end_change()


class DecodeThreads:
    """Chooses between all threads and one from the measured durations of recent decodes.

    The option in use keeps a moving average of its durations, the other one its latest
    time; the chooser stays with the option in use until the other one is clearly faster
    (by ``margin``), so single noisy decodes do not flip it. The option not in use is timed again every ``explore_every``
    decodes: a busy process may have stopped, or started.

    Parameters
    ----------
    threads
        The "all threads" option (default: ``torch.get_num_threads()`` when created).
    explore_every
        Every this many decodes, the option not in use is timed once more. An option never
        timed is tried on the next decode (the engine's warm-up decode times both).
    margin
        The other option takes over when its average is below ``margin`` times this one's.
    """

    def __init__(
        self, threads: int | None = None, *, explore_every: int = 32, margin: float = 0.9
    ) -> None:
        many = threads if threads is not None else torch.get_num_threads()
        self.options: tuple[int, ...] = (many, 1) if many > 1 else (1,)
        fixed = os.environ.get(THREADS_ENV, "").strip()
        if fixed:  # a fixed count: no choosing (reproducible timings, or a known machine)
            self.options = (max(1, int(fixed)),)
        self.explore_every = explore_every
        self.margin = margin
        self.average: dict[int, float] = {}  # option → moving average of its durations (s)
        self.current = self.options[0]
        self._count = 0
        self._lock = threading.Lock()

    def choose(self) -> int:
        """The thread count for the next decode."""
        with self._lock:
            if len(self.options) == 1:
                return self.current
            self._count += 1
            other = self._other()
            if other not in self.average or self._count % self.explore_every == 0:
                return other
            return self.current

    def record(self, threads: int, seconds: float) -> None:
        """Note that a decode on ``threads`` threads took ``seconds``."""
        with self._lock:
            if threads not in self.options:
                return
            before = self.average.get(threads)
            # the option in use: a moving average; the other one was timed only now and
            # then, under whatever load there was: its latest time replaces the old figure
            if before is None or threads != self.current:
                self.average[threads] = seconds
            else:
                self.average[threads] = (before + seconds) / 2
            other = self._other()
            known = other in self.average and self.current in self.average
            if known and self.average[other] < self.margin * self.average[self.current]:
                self.current = other

    def _other(self) -> int:
        return self.options[-1] if self.current == self.options[0] else self.options[0]


def runs_on_cpu(model: Any) -> bool:
    """Whether ``model``'s weights are on the CPU (where the thread count matters)."""
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return parameter is None or parameter.device.type == "cpu"


__all__ = ["THREADS_ENV", "DecodeThreads", "runs_on_cpu", "torch_threads"]
