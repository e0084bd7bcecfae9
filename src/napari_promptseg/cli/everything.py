"""``promptseg everything``: automatic instance segmentation → label image + objects table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import (
    add_image_arguments,
    add_label_output_arguments,
    add_model_arguments,
    check_output_path,
    progress_printer,
)
from .everything_modes import (
    INSTANCE_PARAMETERS,
    INSTANCE_SWITCHES,
    add_tiling_arguments,
    decoder_path,
    instance_params,
    resolve_cli_mode,
    tiling_of,
)
from .scale import add_scale_arguments

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
        help="segment every object automatically: micro-sam's instance decoder (ais, apg) or "
        "SAM's automatic mask generator (grid)",
        description=(
            "--mode ais / apg: micro-sam's automatic instance segmentation with the model's "
            "instance decoder (identical to micro-sam 1.8's InstanceSegmentationWithDecoder / "
            "AutomaticPromptGenerator); a (z, y, x) stack's objects are merged across z. "
            "--mode grid: prompt SAM with a grid of points and keep the confident, stable, "
            "distinct masks (segment_anything's SamAutomaticMaskGenerator); overlaps go to the "
            "mask with the higher predicted IoU. Otherwise a stack is segmented plane by plane "
            "(ids continue from plane to plane). Writes LABELS.tif or LABELS.ome.zarr "
            "and LABELS_objects.csv; for a folder of images, one such pair per image in the "
            "folder -o names."
        ),
    )
    everything.add_argument(
        "image",
        type=Path,
        help="image file (tif, png, jpg, ..., zarr / OME-Zarr): a 2D image or a stack; or a "
        "folder of them (one label image each, one task per image)",
    )
    add_model_arguments(everything)
    add_label_output_arguments(
        everything,
        "label image to write (.tif, or .ome.zarr for OME-Zarr); for a folder of images, the "
        "folder to write their label images into",
    )
    everything.add_argument(
        "--format",
        choices=("tif", "ome.zarr"),
        default="tif",
        help="for a folder of images: write each label image as NAME.tif or NAME.ome.zarr",
    )
    modes = everything.add_argument_group("mode (see docs/everything.md)")
    modes.add_argument(
        "--mode",
        choices=("auto", "grid", "ais", "apg"),
        default="auto",
        help="grid: SAM prompted by a grid of points; ais: micro-sam's instance decoder and a "
        "seeded watershed (one pass, seconds); apg: AIS's objects as prompts, refined by "
        "SAM's mask decoder; auto (default): ais where the model has an instance decoder "
        "(micro-sam's vit_*_lm, vit_*_em_organelles), else grid",
    )
    modes.add_argument(
        "--decoder", type=Path, help="an instance decoder file of its own (micro-sam format)"
    )
    modes.add_argument(
        "--no-merge",
        action="store_true",
        help="ais/apg on a (z, y, x) stack: keep each plane's objects apart (default: merged "
        "into 3D objects across z, as micro-sam's automatic_3d_segmentation)",
    )
    ais = everything.add_argument_group("ais / apg parameters (micro-sam's)")
    for flag, dest, kind, text in INSTANCE_PARAMETERS:
        ais.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    for flag, dest, text in INSTANCE_SWITCHES:
        ais.add_argument(flag, dest=dest, action="store_true", help=text)
    add_tiling_arguments(ais)
    group = everything.add_argument_group("grid parameters (SamAutomaticMaskGenerator's)")
    for flag, dest, kind, text in PARAMETERS:
        group.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    add_image_arguments(everything)
    add_scale_arguments(everything)
    everything.set_defaults(run=run_everything)


def params_from_args(args):
    """The :class:`EverythingParams` of the given flags (defaults for the others), validated."""
    from ..core.workflows.everything import EverythingParams

    given = {dest: getattr(args, dest) for _f, dest, _k, _h in PARAMETERS}
    params = EverythingParams(**{k: v for k, v in given.items() if v is not None})
    params.validate()
    return params


def run_everything(args) -> int:
    from ..core.storage.ome_zarr import LABEL_OUTPUT_SUFFIXES, is_zarr_path
    from ..core.storage.ome_zarr_labels import open_output
    from ..core.workflows.distributed.assemble import EverythingAssembly, MergedStackAssembly
    from ..core.workflows.distributed.instance_tasks import InstanceTask, instance_task
    from ..core.workflows.distributed.scheduler import parse_scheduler
    from ..core.workflows.distributed.sources import ImageSource
    from ..core.workflows.distributed.tasks import EverythingTask, everything_task
    from .common import image_conversion
    from .scale import open_store, recipe_from_args, run_tasks

    # everything that can be refused is refused before the model loads
    spec = parse_scheduler(args.scheduler)
    tiling = tiling_of(args)
    if args.into_image is not None:
        from ..core.storage.ome_zarr_labels import image_label_target

        output = image_label_target(args.image, args.into_image).path
    elif args.image.is_dir() and not is_zarr_path(args.image):
        from .everything_folder import run_everything_folder

        return run_everything_folder(args, params_from_args(args), resolve_cli_mode(args), tiling)
    else:
        output = check_output_path(args.output, LABEL_OUTPUT_SUFFIXES)
    params = params_from_args(args)
    mode = resolve_cli_mode(args)
    source = ImageSource.create(args.image, **image_conversion(args)).resolved()
    planes = source.planes()
    if mode == "grid":
        tasks = [EverythingTask(source, label, params) for label in planes.labels]
        task_function = everything_task
    else:
        tasks = [
            InstanceTask(
                source,
                label,
                mode,
                instance_params(args, mode),
                params,
                decoder_path(args),
                **tiling,
            )
            for label in planes.labels
        ]
        task_function = instance_task
    merge = mode != "grid" and not args.no_merge and len(_planes_shape(planes)) == 1
    store = open_store(args.store)
    recipe = recipe_from_args(args, store=store)
    started = time.perf_counter()
    # each plane is written to the output as it arrives (OME-Zarr: straight to disk)
    with open_output(
        output,
        _planes_shape(planes),
        planes.plane_shape,
        image=args.image,
        into_image=args.into_image,
        axes=_axes_of(source),
    ) as labels:
        assembly = MergedStackAssembly(labels) if merge else EverythingAssembly(labels)
        if mode == "grid" and not spec.distributed and len(tasks) == 1:
            # one 2D image here: the same task, with progress per batch of points
            assembly.add(_everything_here(args, recipe, tasks[0]))
        else:
            run_tasks(
                args,
                task_function,
                tasks,
                recipe,
                label=f"segment everything ({mode})",
                on_result=lambda _task, result: assembly.add(result),
            )
        written, table, rows = assembly.finish()
    print(
        f"segment everything ({mode}): {assembly.masks} masks, {len(rows)} objects in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    print(f"wrote {written} ({len(rows)} objects) and {table}")
    return 0


def _everything_here(args, recipe, task):
    from ..core.workflows.distributed.tasks import PlaneObjects
    from ..core.workflows.everything import segment_everything

    loaded = time.perf_counter()
    segmenter = recipe.build()
    print(f"model {segmenter.name} loaded in {time.perf_counter() - loaded:.1f} s", file=sys.stderr)
    from ..core.workflows.instances.clicks import check_automatic_mode

    check_automatic_mode(segmenter, "grid")
    rgb = task.source.planes().rgb(task.plane)
    result = segment_everything(
        segmenter, rgb, task.params, progress=progress_printer("segment everything")
    )
    rows = [dict(row, model=segmenter.name) for row in result.rows]
    return PlaneObjects(task.plane, result.labels, rows, len(result.masks))


def _planes_shape(planes) -> tuple[int, ...]:
    if not planes.labels or not planes.labels[-1]:
        return ()
    return tuple(i + 1 for i in planes.labels[-1])


def _axes_of(source):
    """The input's OME axes (labels get them without c), when it is an OME-Zarr."""
    from ..core.storage.ome_zarr import is_zarr_path, open_zarr_image

    if not is_zarr_path(source.path):
        return None
    return open_zarr_image(source.path).axes
