"""Preloaded into the worker processes of a local cluster (``--scheduler local:N``).

Ctrl-C in a terminal sends SIGINT to every process of the command's process group, the
local cluster's worker processes included. The command itself cancels the tasks and shuts
the cluster down (:func:`.scheduler.open_client`); a worker interrupted on its own would
only print a ``KeyboardInterrupt`` traceback of its event loop, so workers ignore SIGINT.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def ignore_interrupts() -> None:
    """Ignore SIGINT in this process (only the main thread may set signal handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: runs in the worker process when the worker starts."""
    ignore_interrupts()
