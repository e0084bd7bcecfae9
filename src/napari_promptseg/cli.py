"""The ``promptseg`` command line: the engine without napari, for scripts and batch work.

    promptseg models
    promptseg segment IMAGE --model vit_b --points points.csv [--boxes boxes.csv] -o labels.tif

Errors in the input print one line naming the problem (exit status 2) and write nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DESCRIPTION = "Prompted segmentation with Segment Anything (SAM), without a GUI."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from .core.errors import PromptSegError

    try:
        return int(args.run(args) or 0)
    except PromptSegError as error:
        print(f"promptseg: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promptseg: interrupted; nothing more was written.", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptseg", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = commands.add_parser("models", help="list the SAM models, their size and whether they are cached")
    models.set_defaults(run=run_models)

    segment = commands.add_parser(
        "segment",
        help="segment objects from prompt tables into a label image + objects table",
        description=(
            "One object per prompt group. Points CSV: object,row,col[,label] (label 1/0 or "
            "positive/negative, default 1). Boxes CSV: object,row0,col0,row1,col1. Coordinates "
            "are (row, col) pixels as napari shows them. Writes LABELS.tif and LABELS_objects.csv."
        ),
    )
    segment.add_argument("image", type=Path, help="image file (tif, png, jpg, ...)")
    add_model_arguments(segment)
    segment.add_argument("--points", type=Path, help="points CSV: object,row,col[,label]")
    segment.add_argument("--boxes", type=Path, help="boxes CSV: object,row0,col0,row1,col1")
    segment.add_argument("-o", "--output", type=Path, required=True, help="label image to write (.tif)")
    segment.add_argument(
        "--multimask",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: 3 candidates for a lone point (best kept), 1 mask otherwise",
    )
    segment.add_argument(
        "--overwrite", action="store_true", help="later objects may overwrite earlier ones (default: never)"
    )
    add_image_arguments(segment)
    segment.set_defaults(run=run_segment)
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", help="registry name (see `promptseg models`); default vit_b")
    group.add_argument("--checkpoint", type=Path, help="a local SAM checkpoint file instead")
    group.add_argument("--model-type", help="vit_b, vit_l, vit_h (for --checkpoint; guessed if omitted)")
    group.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    group.add_argument("--offline", action="store_true", help="never download; use cached files only")


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("image conversion (see core.image)")
    group.add_argument("--contrast-limits", nargs=2, type=float, metavar=("LOW", "HIGH"))
    group.add_argument("--channel-axis", type=int, help="axis of channels for multichannel images")
    group.add_argument("--channels", type=int, nargs="+", help="one channel (gray) or three (R G B)")


def load_segmenter(args):
    from .core import PromptSegmenter
    from .core.errors import ModelError

    if args.model and args.checkpoint:
        raise ModelError("give either --model or --checkpoint, not both.")
    started = time.perf_counter()
    segmenter = PromptSegmenter.load(
        args.model if not args.checkpoint else None,
        checkpoint=args.checkpoint,
        model_type=args.model_type,
        device=args.device,
        offline=args.offline,
    )
    print(f"model {segmenter.name} loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return segmenter


def run_models(args) -> int:
    from .core.models import cache_dir, list_models

    rows = list_models()
    print(f"{'name':<24} {'type':<8} {'size':>9}  {'cached':<6}  path")
    for row in rows:
        size = f"{row['size'] / 1e6:.0f} MB" if row.get("size") else "?"
        print(f"{row['name']:<24} {row['model_type']:<8} {size:>9}  {'yes' if row['cached'] else 'no':<6}  {row['path']}")
    print(f"\ncache folder: {cache_dir()} (set NAPARI_PROMPTSEG_CACHE to move it)")
    return 0


def run_segment(args) -> int:
    import numpy as np

    from .core import Prompts, to_rgb_uint8
    from .core.export import LABEL_SUFFIXES, objects_csv_path, write_labels_tif, write_objects_csv
    from .core.io import read_image, read_prompt_tables
    from .core.labels import object_row, paste_mask, smallest_dtype_for
    from .core.prompts import to_sam_prompts

    output = check_output_path(args.output, LABEL_SUFFIXES)
    image = read_image(args.image)
    rgb = to_rgb_uint8(
        image, contrast_limits=args.contrast_limits, channel_axis=args.channel_axis, channels=args.channels
    )
    if args.points is None and args.boxes is None:
        from .core.errors import PromptError

        raise PromptError("give prompts with --points and/or --boxes.")
    objects = read_prompt_tables(args.points, args.boxes)
    prompts = []
    for obj in objects:  # validate everything before the slow part
        prompt = Prompts(points=np.array(obj.points).reshape(-1, 2), labels=obj.labels, box=obj.box)
        try:
            to_sam_prompts(prompt, rgb.shape[:2])
        except Exception as error:
            raise type(error)(f"object {obj.name!r}: {error}") from None
        prompts.append(prompt)
    ids = object_ids([obj.name for obj in objects])

    segmenter = load_segmenter(args)
    started = time.perf_counter()
    embedding = segmenter.embed(rgb, progress=progress_printer("embedding"))
    print(f"embedding: {time.perf_counter() - started:.1f} s", file=sys.stderr)

    multimask = {"auto": None, "on": True, "off": False}[args.multimask]
    labels = np.zeros(rgb.shape[:2], dtype=smallest_dtype_for(max(ids, default=1)))
    rows = []
    for obj, prompt, label_id in zip(objects, prompts, ids, strict=True):
        result = segmenter.predict(embedding, prompt, multimask=multimask)
        labels, area = paste_mask(labels, result.mask, label_id, overwrite=args.overwrite)
        row = object_row(
            label_id,
            labels == label_id,
            predicted_iou=result.iou[result.best],
            stability=result.stability[result.best],
            prompts=prompt.summary(),
            candidate=result.best,
            model=segmenter.name,
        )
        row["object"] = obj.name
        rows.append(row)
        print(
            f"object {obj.name}: id {label_id}, predicted IoU {row['predicted_iou']:.3f}, "
            f"stability {row['stability']:.3f}, area {area} px"
        )
    write_labels_tif(output, labels)
    table = write_objects_csv(objects_csv_path(output), rows)
    print(f"wrote {output} and {table}")
    return 0


def object_ids(names: Sequence[str]) -> list[int]:
    """Label ids: the object names themselves if all are distinct positive integers, else 1..N."""
    try:
        numbers = [int(name) for name in names]
    except ValueError:
        numbers = []
    if numbers and min(numbers) > 0 and len(set(numbers)) == len(numbers):
        return numbers
    return list(range(1, len(names) + 1))


def check_output_path(path: Path, suffixes: Sequence[str]) -> Path:
    """Refuse a bad output path before any slow work starts."""
    import os

    from .core.errors import ExportError

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


if __name__ == "__main__":
    sys.exit(main())
