"""``promptseg everything``: automatic instance segmentation → label image + objects table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import (
    add_image_arguments,
    add_model_arguments,
    check_output_path,
    load_segmenter,
    progress_printer,
)

# (flag, EverythingParams field, type, help)
PARAMETERS = (
    ("--points-per-side", "points_per_side", int, "grid of N×N point prompts (32)"),
    ("--points-per-batch", "points_per_batch", int, "points decoded together (64)"),
    ("--pred-iou-thresh", "pred_iou_thresh", float, "keep masks with predicted IoU above (0.88)"),
    ("--stability-score-thresh", "stability_score_thresh", float, "keep masks this stable (0.95)"),
    ("--stability-score-offset", "stability_score_offset", float, "logit offset (1.0)"),
    ("--box-nms-thresh", "box_nms_thresh", float, "box IoU of duplicates (0.7)"),
    ("--crop-n-layers", "crop_n_layers", int, "also run on (2^i)² crops, i = 1..N (0)"),
    ("--crop-nms-thresh", "crop_nms_thresh", float, "box IoU of duplicates across crops (0.7)"),
    ("--crop-overlap-ratio", "crop_overlap_ratio", float, "overlap of first-layer crops (0.34)"),
    (
        "--crop-n-points-downscale-factor",
        "crop_n_points_downscale_factor",
        int,
        "crop layer i gets points-per-side / F^i points (1)",
    ),
    (
        "--min-mask-region-area",
        "min_mask_region_area",
        int,
        "fill holes and drop islands smaller than this many pixels (0: off)",
    ),
)


def register(commands) -> None:
    everything = commands.add_parser(
        "everything",
        help="segment every object automatically (SAM's automatic mask generator)",
        description=(
            "Prompt SAM with a grid of points and keep the confident, stable, distinct masks "
            "(the parameters and results of segment_anything's SamAutomaticMaskGenerator). "
            "Overlaps go to the mask with the higher predicted IoU. Writes LABELS.tif and "
            "LABELS_objects.csv."
        ),
    )
    everything.add_argument(
        "image", type=Path, help="image file (tif, png, jpg, ...), one 2D image"
    )
    add_model_arguments(everything)
    everything.add_argument(
        "-o", "--output", type=Path, required=True, help="label image to write (.tif)"
    )
    group = everything.add_argument_group("generator parameters (SamAutomaticMaskGenerator's)")
    for flag, dest, kind, text in PARAMETERS:
        group.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    add_image_arguments(everything)
    everything.set_defaults(run=run_everything)


def params_from_args(args):
    """The :class:`EverythingParams` of the given flags (defaults for the others), validated."""
    from ..core.workflows.everything import EverythingParams

    given = {dest: getattr(args, dest) for _f, dest, _k, _h in PARAMETERS}
    params = EverythingParams(**{k: v for k, v in given.items() if v is not None})
    params.validate()
    return params


def run_everything(args) -> int:
    from ..core import to_rgb_uint8
    from ..core.storage.export import (
        LABEL_SUFFIXES,
        objects_csv_path,
        write_labels_tif,
        write_objects_csv,
    )
    from ..core.storage.readers import read_image
    from ..core.workflows.everything.generator import segment_everything

    # everything that can be refused is refused before the model loads
    output = check_output_path(args.output, LABEL_SUFFIXES)
    params = params_from_args(args)
    rgb = to_rgb_uint8(
        read_image(args.image),
        contrast_limits=args.contrast_limits,
        channel_axis=args.channel_axis,
        channels=args.channels,
    )
    segmenter = load_segmenter(args)
    started = time.perf_counter()
    result = segment_everything(
        segmenter, rgb, params, progress=progress_printer("segment everything")
    )
    print(
        f"segment everything: {len(result.masks)} masks, {len(result.rows)} objects in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    rows = [dict(row, model=segmenter.name) for row in result.rows]
    write_labels_tif(output, result.labels)
    table = write_objects_csv(objects_csv_path(output), rows)
    print(f"wrote {output} ({len(rows)} objects) and {table}")
    return 0
