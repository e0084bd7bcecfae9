"""Run micro-sam's side of the peer benchmark: microsam_driver.py inside micro-sam's own venv.

    python benchmarks/peers/run_microsam.py [--busy] [--n-points N] [--json out.json]

Standalone it makes (or reuses) the shared inputs in out/peers/, runs the driver and prints the
figures; without $DISPLAY it wraps the driver in xvfb-run. From the orchestrating benchmark::

    from common import prepare_inputs
    from run_microsam import run_microsam
    result = run_microsam(prepare_inputs(), busy=False)   # dict (common.py's schema) or None

micro-sam's venv: $PROMPTSEG_MICROSAM_VENV, else .venv-peers/microsam in the repository root;
build it with ``bash benchmarks/peers/setup_microsam.sh``. Where it is absent, run_microsam
prints how to build it and returns None.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

HERE = Path(__file__).resolve().parent

DRIVER = HERE / "microsam_driver.py"
SETUP = HERE / "setup_microsam.sh"
XVFB_SCREEN = "-screen 0 1600x1000x24"


def microsam_venv() -> Path:
    venv = Path(os.environ.get("PROMPTSEG_MICROSAM_VENV", ".venv-peers/microsam"))
    return venv if venv.is_absolute() else common.REPO_ROOT / venv


def microsam_python() -> Path | None:
    """The micro-sam venv's interpreter, or None (with a message) if the venv is absent."""
    python = microsam_venv() / "bin" / "python"
    if not python.exists():
        print(
            f"micro-sam: skipped, no venv at {microsam_venv()} "
            f"(build it with `make bench-peers` or `bash {SETUP.relative_to(common.REPO_ROOT)}`; "
            "or point $PROMPTSEG_MICROSAM_VENV at one)"
        )
        return None
    return python


def run_microsam(
    inputs: common.Inputs,
    busy: bool,
    *,
    n_points: int | None = None,
    out: Path | None = None,
    timeout: float = 1800.0,
    trigger: str = "key",
) -> dict | None:
    """Run the micro-sam driver on ``inputs`` (quiet or with a competing process) and return its
    result dict, or None with a printed message when micro-sam's venv is absent.

    The driver runs as a subprocess under the caller's display ($DISPLAY, QT_QPA_PLATFORM as
    set, else xcb); with no $DISPLAY it is wrapped in ``xvfb-run -a``. Its output streams to
    ours. Raises RuntimeError if the driver fails, subprocess.TimeoutExpired after ``timeout``
    seconds (the driver's process group is ended then).
    """
    python = microsam_python()
    if python is None:
        return None
    if not Path(inputs.checkpoint).exists():
        raise FileNotFoundError(
            f"no checkpoint at {inputs.checkpoint}: prepare_inputs(checkpoint=True) first"
        )

    with tempfile.TemporaryDirectory(prefix="microsam-") as tmp:
        out_path = Path(out) if out is not None else Path(tmp) / "result.json"
        command = [
            str(python),
            str(DRIVER),
            "--image",
            str(inputs.image),
            "--checkpoint",
            str(inputs.checkpoint),
            "--points",
            str(inputs.points),
            "--out",
            str(out_path),
            "--trigger",
            trigger,
        ]
        if busy:
            command.append("--busy")
        if n_points is not None:
            command += ["--n-points", str(n_points)]

        env = dict(os.environ)
        env.setdefault("QT_QPA_PLATFORM", "xcb")
        # The driver runs in the other venv: keep this venv's paths out of its way.
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(name, None)
        if not env.get("DISPLAY"):
            xvfb = shutil.which("xvfb-run")
            if xvfb is None:
                raise RuntimeError(
                    "no $DISPLAY and no xvfb-run: micro-sam's annotator needs a display"
                )
            command = [xvfb, "-a", "-s", XVFB_SCREEN, *command]

        print(
            f"micro-sam: running {DRIVER.name} in {microsam_venv()} ({'busy' if busy else 'quiet'})",
            flush=True,
        )
        returncode = _run_in_own_group(command, env=env, cwd=str(common.REPO_ROOT), timeout=timeout)
        if returncode != 0 or not out_path.exists():
            raise RuntimeError(f"micro-sam driver failed (exit {returncode}): {' '.join(command)}")
        return common.check_result(json.loads(out_path.read_text(encoding="utf-8")))


def _run_in_own_group(command: list[str], *, env: dict, cwd: str, timeout: float) -> int:
    """Run ``command`` in a new process group; on timeout or Ctrl-C end that group (the driver,
    Xvfb if xvfb-run started one, the busy process) and nothing else."""
    proc = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        raise


def _prepare_inputs(folder: Path | None) -> common.Inputs:
    """prepare_inputs() here, or in micro-sam's venv when this interpreter lacks torch."""
    try:
        import segment_anything  # noqa: F401
        import tifffile  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        python = microsam_python()
        if python is None:
            raise SystemExit(1) from exc
        extra = ["--out-dir", str(folder)] if folder is not None else []
        subprocess.run([str(python), str(HERE / "common.py"), *extra], check=True)
        return common.inputs_in(folder)
    return common.prepare_inputs(folder)


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Time micro-sam's 2D annotator on the shared inputs."
    )
    parser.add_argument(
        "--busy", action="store_true", help="with a competing process spinning on one core"
    )
    parser.add_argument("--n-points", type=int, default=None, help="time only the first N points")
    parser.add_argument(
        "--inputs", type=Path, default=None, help=f"inputs folder (default {common.DEFAULT_DIR})"
    )
    parser.add_argument("--json", type=Path, default=None, help="also keep the result JSON here")
    parser.add_argument("--trigger", choices=("key", "button"), default="key")
    args = parser.parse_args(argv)

    if microsam_python() is None:
        return 0  # skipped, message printed
    inputs = _prepare_inputs(args.inputs)
    result = run_microsam(
        inputs, args.busy, n_points=args.n_points, out=args.json, trigger=args.trigger
    )
    if result is None:
        return 0
    print()
    print(common.format_result(result))
    details = result["details"]
    print(
        f"  breakdown: load {details['load_s']:.1f} s + embed {details['embed_s']:.1f} s "
        f"(both on the {details['embed_thread']} thread); decode median "
        f"{details['decode_ms']['median']:.0f} ms on the {details.get('decode_thread')} thread; "
        f"torch threads {details['torch_threads']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
