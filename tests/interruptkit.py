"""A ``promptseg`` command in its own process with a slowed-down encoder, and Ctrl-C pressed.

The command runs in a new session (its own process group), like a command in a terminal:
:func:`press_ctrl_c` sends SIGINT to the whole group, as the terminal does, so a local
cluster's worker processes get it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

# The CLI with every model's encoder slowed down (a picklable recipe adaptation, so the
# workers of a cluster load the slow model too). The __main__ guard matters: Dask's worker
# processes are spawned and import the main module again.
SCRIPT = """
import dataclasses, functools, signal, sys
# as in a terminal, even when the tests run in a background job (whose SIGINT is ignored,
# and an ignored signal stays ignored in the processes it starts)
signal.signal(signal.SIGINT, signal.default_int_handler)
from napari_promptseg.cli import main, scale
from napari_promptseg.testing import make_slow

def slow_recipe(args, _real=scale.recipe_from_args, **kwargs):
    slow = functools.partial(make_slow, seconds_per_block={seconds})
    return dataclasses.replace(_real(args, **kwargs), adapt=slow)

if __name__ == "__main__":
    scale.recipe_from_args = slow_recipe
    sys.exit(main(sys.argv[1:]))
"""


def start_slow_command(folder, *args, seconds_per_block: float = 0.5) -> subprocess.Popen:
    """Start ``promptseg ARGS`` with a slow encoder in a new process group."""
    script = folder / "slow_promptseg.py"
    script.write_text(SCRIPT.format(seconds=seconds_per_block))
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_for(condition, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until ``condition()``; fail if the command ends or the time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            _out, err = process.communicate()
            raise AssertionError(f"the command ended first ({process.returncode}): {err.decode()}")
        if time.monotonic() > deadline:
            press_ctrl_c(process)
            raise AssertionError(f"nothing happened in {timeout} s")
        time.sleep(0.05)


def press_ctrl_c(process: subprocess.Popen, timeout: float = 30.0) -> tuple[int, str]:
    """SIGINT to the command's process group; its exit status and stderr."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        _out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return process.returncode, err.decode()
