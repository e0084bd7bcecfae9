"""How the background worker's CPU priority trades embedding speed on a busy machine against GUI
smoothness: our widget's load + embed, quiet and with one other process busy on one core.

For each nice value of the embedding worker (``NAPARI_PROMPTSEG_BACKGROUND_NICE``), in fresh
processes: load + embed (s) quiet and busy, their ratio, and the longest gap of a 10 ms GUI timer
during each (same harness as bench_peers.py: vit_b random checkpoint, 512x512 image, real
window). Goals: busy / quiet ≤ 1.3, gap ≤ 50 ms quiet and ≤ 100 ms busy.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_busy.py [--nice 10 4 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
import common  # noqa: E402
from bench_peers import run_ours  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nice", type=int, nargs="+", default=[10, 4, 0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (medians)")
    args = parser.parse_args()
    inputs = common.prepare_inputs()
    rows = []
    for nice in args.nice:
        env = {"NAPARI_PROMPTSEG_BACKGROUND_NICE": str(nice)}
        runs = {False: [], True: []}
        for _ in range(args.repeats):  # alternated, so a slow spell hits both
            for busy in (False, True):
                runs[busy].append(run_ours(inputs, busy, 1, env))
        rows.append((nice, runs[False], runs[True]))
    print("\n| worker nice | load + embed quiet | busy | busy / quiet | longest gap quiet | busy |")
    print("|---|---|---|---|---|---|")
    for nice, quiet, busy in rows:
        q = median(r["load_embed_s"] for r in quiet)
        b = median(r["load_embed_s"] for r in busy)
        gq = median(r["load_embed_longest_gap_ms"] for r in quiet)
        gb = median(r["load_embed_longest_gap_ms"] for r in busy)
        all_b = ", ".join(f"{r['load_embed_s']:.1f}" for r in busy)
        print(
            f"| {nice} | {q:.1f} s | {b:.1f} s ({all_b}) | {b / q:.2f} | {gq:.0f} ms | {gb:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
