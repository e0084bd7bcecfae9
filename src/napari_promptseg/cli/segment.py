"""``promptseg segment``: prompt tables → label image + objects table."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .common import (
    add_image_arguments,
    add_model_arguments,
    check_output_path,
    load_segmenter,
    progress_printer,
)


def register(commands) -> None:
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
    segment.add_argument(
        "-o", "--output", type=Path, required=True, help="label image to write (.tif)"
    )
    segment.add_argument(
        "--multimask",
        choices=("auto", "on", "off"),
        default="auto",
        help="auto: 3 candidates for a lone point (best kept), 1 mask otherwise",
    )
    segment.add_argument(
        "--overwrite",
        action="store_true",
        help="later objects may overwrite earlier ones (default: never)",
    )
    add_image_arguments(segment)
    segment.set_defaults(run=run_segment)


def run_segment(args) -> int:
    import numpy as np

    from ..core import Prompts, to_rgb_uint8
    from ..core.export import LABEL_SUFFIXES, objects_csv_path, write_labels_tif, write_objects_csv
    from ..core.io import read_image, read_prompt_tables
    from ..core.labels import object_row, paste_mask, smallest_dtype_for
    from ..core.prompts import to_sam_prompts

    output = check_output_path(args.output, LABEL_SUFFIXES)
    image = read_image(args.image)
    rgb = to_rgb_uint8(
        image,
        contrast_limits=args.contrast_limits,
        channel_axis=args.channel_axis,
        channels=args.channels,
    )
    if args.points is None and args.boxes is None:
        from ..core.errors import PromptError

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
