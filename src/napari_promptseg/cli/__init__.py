"""The ``promptseg`` command line: the engine without napari, for scripts and batch work.

    promptseg models
    promptseg segment IMAGE --model vit_b --points points.csv [--boxes boxes.csv] -o labels.tif
    promptseg classify IMAGE LABELS --train examples.csv --save cells.npz -o table.csv
    promptseg gui [IMAGE]

Each subcommand lives in its own module with a ``register(commands)`` function. Errors in
the input print one line naming the problem (exit status 2) and write nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import classify, embed, evaluate, everything, export, finetune, gui, models, segment, track

DESCRIPTION = "Prompted segmentation with Segment Anything (SAM), without a GUI."
SUBCOMMANDS = (models, segment, track, everything, embed, gui, export, evaluate, finetune, classify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptseg", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from ..core.errors import PromptSegError

    try:
        return int(args.run(args) or 0)
    except PromptSegError as error:
        print(f"promptseg: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promptseg: interrupted; nothing more was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
