"""Ours against micro-sam's 2D annotator, same work, same window, same run; printed as ratios.

Same 512x512 uint16 nuclei image, same random vit_b checkpoint (each plugin loads it with its own
loader), same 20 positive points, same real napari window (Xvfb + Mesa), each tool in a fresh
process, quiet and with ``--busy`` (a competing process spinning on one core). micro-sam runs in
its own virtual environment (``make bench-peers`` builds it); where it is absent its side is
skipped with a message and ours is still measured.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_peers.py [--busy|--both]
        [--n-points 20] [--no-peer] [--json results.json]

Figures (see benchmarks/peers/common.py): load + embed and the longest GUI gap meanwhile, time
to first mask ("Load model" → the first mask drawn), prompt → mask drawn (median, p95). Ratios
are ours / micro-sam (< 1: we are faster); busy / quiet per tool for the embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
import common  # noqa: E402
from run_microsam import run_microsam  # noqa: E402


def run_ours(
    inputs: common.Inputs, busy: bool, n_points: int | None, extra_env: dict | None = None
) -> dict:
    """Our driver in a fresh process of this interpreter (same display)."""
    with tempfile.TemporaryDirectory(prefix="ours-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(HERE / "peers" / "ours_driver.py"),
            "--image",
            str(inputs.image),
            "--checkpoint",
            str(inputs.checkpoint),
            "--points",
            str(inputs.points),
            "--out",
            str(out),
        ]
        if busy:
            command.append("--busy")
        if n_points is not None:
            command += ["--n-points", str(n_points)]
        env = dict(os.environ)
        env.setdefault("QT_QPA_PLATFORM", "xcb")
        env.update(extra_env or {})
        print(f"ours: running ours_driver.py ({'busy' if busy else 'quiet'})", flush=True)
        subprocess.run(command, env=env, check=True, timeout=3600)
        return common.check_result(json.loads(out.read_text(encoding="utf-8")))


def _ratio(a, b) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def _row(name: str, ours, peer, unit: str, digits: int = 1) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.{digits}f} {unit}"  # noqa: E731
    return f"| {name} | {fmt(ours)} | {fmt(peer)} | {_ratio(ours, peer)} |"


def table(ours: dict, peer: dict | None, label: str) -> str:
    peer = peer or {}
    p_ours, p_peer = ours.get("prompt_to_mask_ms") or {}, peer.get("prompt_to_mask_ms") or {}
    version = peer.get("tool_version", "absent")
    lines = [
        f"### {label}",
        "",
        f"| | ours | micro-sam {version} | ours / micro-sam |",
        "|---|---|---|---|",
        _row("prompt → mask drawn, median", p_ours.get("median"), p_peer.get("median"), "ms", 0),
        _row("prompt → mask drawn, p95", p_ours.get("p95"), p_peer.get("p95"), "ms", 0),
        _row("load + embed", ours.get("load_embed_s"), peer.get("load_embed_s"), "s"),
        _row(
            "longest GUI gap while loading + embedding",
            ours.get("load_embed_longest_gap_ms"),
            peer.get("load_embed_longest_gap_ms"),
            "ms",
            0,
        ),
        _row(
            "time to first mask",
            ours.get("time_to_first_mask_s"),
            peer.get("time_to_first_mask_s"),
            "s",
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--busy", action="store_true", help="only with a competing process")
    mode.add_argument("--both", action="store_true", help="quiet, then busy (default: quiet)")
    parser.add_argument("--n-points", type=int, default=None, help="first N points only")
    parser.add_argument("--no-peer", action="store_true", help="skip micro-sam")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    args = parser.parse_args(argv)

    inputs = common.prepare_inputs()
    modes = [False, True] if args.both else [args.busy]
    results: dict[str, dict] = {}
    for busy in modes:
        key = "busy" if busy else "quiet"
        results[f"ours_{key}"] = run_ours(inputs, busy, args.n_points)
        if not args.no_peer:
            peer = run_microsam(inputs, busy, n_points=args.n_points)
            if peer is not None:
                results[f"microsam_{key}"] = peer

    print()
    for busy in modes:
        key = "busy" if busy else "quiet"
        label = "one other process busy on one core" if busy else "quiet machine"
        print(table(results[f"ours_{key}"], results.get(f"microsam_{key}"), label))
        print()
    if len(modes) == 2:
        print("### busy / quiet (load + embed)")
        for tool in ("ours", "microsam"):
            quiet, busy_ = results.get(f"{tool}_quiet"), results.get(f"{tool}_busy")
            if quiet and busy_:
                print(f"- {tool}: {_ratio(busy_['load_embed_s'], quiet['load_embed_s'])}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
