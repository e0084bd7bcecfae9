"""Run jobs on one background thread where only the newest waiting job matters.

Prompts can change faster than SAM decodes (dragging a point fires dozens of events). A
queue would decode every intermediate state and lag further and further behind; instead
a new job replaces the one waiting, and a job that finishes after a newer one was
submitted is reported as stale so the caller can drop it.

A caller that would rather have a short job's result at once (the GUI thread showing a mask
in the same frame as the click that asked for it) can :meth:`~LatestOnlyRunner.wait` for it,
with a time limit; ``on_done`` is still called, and the caller drops that second delivery.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class JobOutcome:
    """What a job produced: its ticket, a result or an error, and whether it is stale."""

    ticket: int
    result: Any = None
    error: BaseException | None = None
    stale: bool = False


class LatestOnlyRunner:
    """A single worker thread that runs the most recently submitted job.

    Parameters
    ----------
    on_done
        Called on the worker thread with a :class:`JobOutcome` after each job. GUI callers
        forward it to their main thread (e.g. with a Qt signal).
    name
        Thread name, for debugging.
    """

    def __init__(self, on_done: Callable[[JobOutcome], None], name: str = "latest-only") -> None:
        self._on_done = on_done
        self._condition = threading.Condition()
        self._pending: tuple[int, Callable[[], Any]] | None = None
        self._latest_ticket = 0
        self._finished: JobOutcome | None = None  # the last job that ran to its end
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def latest_ticket(self) -> int:
        return self._latest_ticket

    def submit(self, job: Callable[[], Any]) -> int:
        """Queue ``job``, replacing any job still waiting. Returns its ticket number."""
        with self._condition:
            if self._closed:
                raise RuntimeError("runner is closed")
            self._latest_ticket += 1
            self._pending = (self._latest_ticket, job)
            self._condition.notify_all()
            return self._latest_ticket

    def cancel_pending(self) -> None:
        """Drop the waiting job (a running one finishes and is reported stale)."""
        with self._condition:
            self._pending = None
            self._latest_ticket += 1

    def is_current(self, ticket: int) -> bool:
        return ticket == self._latest_ticket

    def wait(self, ticket: int, timeout: float) -> JobOutcome | None:
        """Block until job ``ticket`` has run, at most ``timeout`` seconds; its outcome.

        None if it did not finish in time, was replaced before it ran, or the runner closed.
        The outcome is delivered to ``on_done`` as well.
        """
        with self._condition:
            self._condition.wait_for(
                lambda: (
                    self._closed
                    or (self._finished is not None and self._finished.ticket >= ticket)
                    or (self._pending is not None and self._pending[0] > ticket)
                ),
                timeout,
            )
            finished = self._finished
        return finished if finished is not None and finished.ticket == ticket else None

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the thread after the running job; waiting jobs are dropped."""
        with self._condition:
            self._closed = True
            self._pending = None
            self._condition.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                if self._closed or self._pending is None:
                    return
                ticket, job = self._pending
                self._pending = None
            outcome = JobOutcome(ticket)
            try:
                outcome.result = job()
            except Exception as error:  # reported to the caller, never lost in the thread
                outcome.error = error
            outcome.stale = ticket != self._latest_ticket
            with self._condition:
                self._finished = outcome
                self._condition.notify_all()
            self._on_done(outcome)
