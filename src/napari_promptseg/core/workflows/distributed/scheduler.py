"""Where the work runs: ``--scheduler`` parsed, and the Dask client opened and closed.

* absent / ``None`` — in this process, one item after the other (no Dask needed);
* ``local:N`` — a ``dask.distributed.LocalCluster`` of N worker *processes* on this machine,
  started by :func:`open_client` and shut down when its ``with`` block ends;
* ``tcp://host:port`` (or ``tls://``, ``ucx://``, ``ws://``...) — the scheduler of a running
  cluster (SLURM or PBS through dask-jobqueue, Kubernetes, ``dask scheduler`` by hand).
  Its workers must see the same files (images, checkpoint, store) at the same paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import PromptSegError

CONNECT_TIMEOUT_S = 10.0
_LOCAL = re.compile(r"local(?::(\d+))?")
_ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss|inproc)://\S+")


class SchedulerError(PromptSegError):
    """A ``--scheduler`` that cannot be used: bad syntax, unreachable, Dask missing."""


@dataclass(frozen=True)
class SchedulerSpec:
    """Parsed ``--scheduler``: ``kind`` is ``"process"``, ``"local"`` or ``"address"``."""

    kind: str
    workers: int = 0  # local: how many worker processes
    address: str = ""  # address: the scheduler's

    @property
    def distributed(self) -> bool:
        return self.kind != "process"

    def describe(self) -> str:
        if self.kind == "local":
            return f"a local Dask cluster of {self.workers} worker(s)"
        if self.kind == "address":
            return f"the Dask cluster at {self.address}"
        return "this process"


def parse_scheduler(text: str | None) -> SchedulerSpec:
    """``None`` → in-process; ``local:N`` (``local`` = one worker per 4 CPUs); an address.

    Raises
    ------
    SchedulerError
        Anything else, naming the accepted forms.
    """
    if text is None or not str(text).strip():
        return SchedulerSpec("process")
    text = str(text).strip()
    local = _LOCAL.fullmatch(text)
    if local:
        count = int(local.group(1)) if local.group(1) else max(1, (os.cpu_count() or 1) // 4)
        if count < 1:
            raise SchedulerError(f"--scheduler {text}: a local cluster needs at least 1 worker.")
        return SchedulerSpec("local", workers=count)
    if _ADDRESS.fullmatch(text):
        return SchedulerSpec("address", address=text)
    raise SchedulerError(
        f"--scheduler {text!r} is not understood; give local:N (N worker processes on this "
        "machine) or a scheduler address such as tcp://10.0.0.5:8786."
    )


def torch_threads_for(spec: SchedulerSpec) -> int | None:
    """Intra-op threads per worker: the CPUs shared out between local workers; None keeps
    the workers' own setting (``OMP_NUM_THREADS`` / ``PROMPTSEG_TORCH_THREADS`` on the
    cluster's side)."""
    if spec.kind != "local":
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // spec.workers)


@contextlib.contextmanager
def open_client(spec: SchedulerSpec, *, timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Any | None]:
    """A ``distributed.Client`` for ``spec`` (None for in-process), closed on exit.

    A local cluster is started here and shut down on exit, also on Ctrl-C or an error
    (its worker processes end with it). The client is not made Dask's default, so lazy
    images read on this side are read here, not shipped to the cluster.

    Raises
    ------
    SchedulerError
        ``dask.distributed`` is not installed, or the scheduler does not answer in
        ``timeout`` seconds (default :data:`CONNECT_TIMEOUT_S`; nothing has been written then).
    """
    if not spec.distributed:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SchedulerError(
            "--scheduler needs dask.distributed: pip install 'napari-promptseg[distributed]'."
        ) from None
    if spec.kind == "local":
        import dask

        # Dask's workers sample every thread's stack every 10 ms for the dashboard's profile,
        # holding the GIL each time: with it, vit_t on local:2 took 1.27x the in-process
        # time per plane, without it 0.94x. The nanny passes this setting to its worker.
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(
                n_workers=spec.workers,
                threads_per_worker=1,  # one model call at a time per worker; torch inside
                processes=True,
                dashboard_address=":0",  # any free port: no clash with another cluster here
                silence_logs=logging.CRITICAL,  # the command reports errors itself, once
                preload=[f"{__package__}.quiet"],  # Ctrl-C: the command stops the workers
            )
        try:
            with Client(cluster, set_as_default=False) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(spec.address, timeout=timeout or CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {spec.address} ({error}); is the cluster "
            "running, and are the address and port right? Nothing was written."
        ) from None
    with client:
        yield client
