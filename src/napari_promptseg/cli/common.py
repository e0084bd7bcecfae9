"""Arguments and helpers shared by the ``promptseg`` subcommands."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", help="registry name (see `promptseg models`); default vit_b")
    group.add_argument(
        "--checkpoint", type=Path, help="a local SAM, MobileSAM or SAM 2.1 checkpoint file instead"
    )
    group.add_argument(
        "--model-type",
        help="vit_b, vit_l, vit_h, vit_t (MobileSAM), sam2.1_hiera_t|s|b+|l (SAM 2.1) "
        "(for --checkpoint; recognised from the weights if omitted)",
    )
    group.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    group.add_argument(
        "--offline", action="store_true", help="never download; use cached files only"
    )


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("image conversion (see core.image)")
    group.add_argument("--contrast-limits", nargs=2, type=float, metavar=("LOW", "HIGH"))
    group.add_argument("--channel-axis", type=int, help="axis of channels for multichannel images")
    group.add_argument(
        "--channels", type=int, nargs="+", help="one channel (gray) or three (R G B)"
    )


def add_label_output_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    """``-o OUTPUT`` or, for an OME-Zarr input, ``--into-image NAME`` (one of them)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", type=Path, help=output_help)
    where.add_argument(
        "--into-image",
        metavar="NAME",
        help="for an OME-Zarr input: write the labels into IMAGE.zarr/labels/NAME, where "
        "OME-Zarr readers find them (the image itself is not modified), and the objects "
        "table beside the image as IMAGE_NAME_objects.csv",
    )


def load_segmenter(args, **kwargs):
    """The engine for ``--model`` / ``--checkpoint`` / ``--device`` / ``--offline``."""
    from ..core import PromptSegmenter
    from ..core.errors import ModelError

    if args.model and args.checkpoint:
        raise ModelError("give either --model or --checkpoint, not both.")
    started = time.perf_counter()
    segmenter = PromptSegmenter.load(
        args.model if not args.checkpoint else None,
        checkpoint=args.checkpoint,
        model_type=args.model_type,
        device=args.device,
        offline=args.offline,
        **kwargs,
    )
    from ..core.workflows.instances.clicks import use_instance_clicks

    use_instance_clicks(segmenter)  # the demo model: clicks select its AIS objects
    print(
        f"model {segmenter.name} loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr
    )
    return segmenter


def check_output_path(path: Path, suffixes: Sequence[str]) -> Path:
    """Refuse a bad output path before any slow work starts."""
    from ..core.errors import ExportError

    if path.suffix.lower() not in suffixes:
        raise ExportError(f"output {path} must end in {' or '.join(suffixes)}.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"cannot write {path}: the folder {folder} is not writable.")
    return path


def progress_printer(label: str):
    """A (done, total) callback that draws a one-line progress bar on stderr."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def is_zarr(path: Path) -> bool:
    from ..core.storage.ome_zarr import is_zarr_path

    return is_zarr_path(path)


def input_files(path: Path) -> list[Path]:
    """The image files a command reads: a file, a zarr folder, or the files of a folder."""
    from ..core.errors import ImageError

    if is_zarr(path):
        if not path.exists():
            raise ImageError(f"{path} does not exist.")
        return [path]
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if (p.is_file() or is_zarr(p)) and not p.name.startswith(".")
        )
        if not files:
            raise ImageError(f"the folder {path} holds no files.")
        return files
    raise ImageError(f"{path} does not exist.")


def image_conversion(args) -> dict:
    """The image-conversion settings of the command line, for ImageSource.create."""
    channels = args.channels
    if channels and len(channels) == 1:
        channels = channels[0]
    return {
        "contrast_limits": tuple(args.contrast_limits) if args.contrast_limits else None,
        "channel_axis": args.channel_axis,
        "channels": channels,
    }
