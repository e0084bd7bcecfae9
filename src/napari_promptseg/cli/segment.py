"""``promptseg segment``: prompt tables → label image + objects table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .common import (
    add_image_arguments,
    add_label_output_arguments,
    add_model_arguments,
    check_output_path,
)
from .scale import add_scale_arguments


def register(commands) -> None:
    segment = commands.add_parser(
        "segment",
        help="segment objects from prompt tables into a label image + objects table",
        description=(
            "One object per prompt group. Points CSV: object,row,col[,label] (label 1/0 or "
            "positive/negative, default 1). Boxes CSV: object,row0,col0,row1,col1. Coordinates "
            "are (row, col) pixels as napari shows them. For a stack, add a column per leading "
            "axis (z, or t,z): each object is segmented on every plane it has prompts on, under "
            "one id, with one table row per object and plane. A plane whose longest side is "
            "above 2048 px is segmented by 1024 px tiles, as in napari. Writes LABELS.tif (or "
            "LABELS.ome.zarr) and LABELS_objects.csv."
        ),
    )
    segment.add_argument(
        "image",
        type=Path,
        help="image file (tif, png, jpg, ..., zarr / OME-Zarr): 2D, or a stack (z, y, x), "
        "(t, z, y, x)",
    )
    segment.add_argument(
        "--axes",
        help="CSV columns naming the plane of each prompt in a stack, e.g. 'z' or 't,z' "
        "(default: z for 3D, t,z for 4D)",
    )
    add_model_arguments(segment)
    segment.add_argument("--points", type=Path, help="points CSV: object,row,col[,label]")
    segment.add_argument("--boxes", type=Path, help="boxes CSV: object,row0,col0,row1,col1")
    add_label_output_arguments(segment, "label image to write (.tif or .ome.zarr)")
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
    add_scale_arguments(segment)
    segment.set_defaults(run=run_segment)


def run_segment(args) -> int:
    import numpy as np

    from ..core import Prompts
    from ..core.errors import PromptError
    from ..core.sam.prompts import to_sam_prompts
    from ..core.storage.ome_zarr import LABEL_OUTPUT_SUFFIXES
    from ..core.storage.ome_zarr_labels import open_output
    from ..core.storage.readers import read_prompt_tables
    from ..core.workflows.distributed.assemble import PromptedObject, SegmentAssembly
    from ..core.workflows.distributed.scheduler import parse_scheduler
    from ..core.workflows.distributed.sources import ImageSource
    from ..core.workflows.distributed.tasks import prompt_task, prompt_tasks
    from .common import image_conversion
    from .scale import open_store, recipe_from_args, run_tasks

    parse_scheduler(args.scheduler)
    if args.into_image is not None:  # refused before the model loads
        from ..core.storage.ome_zarr_labels import image_label_target

        output = image_label_target(args.image, args.into_image).path
    else:
        output = check_output_path(args.output, LABEL_OUTPUT_SUFFIXES)
    source = ImageSource.create(args.image, **image_conversion(args)).resolved()
    planes = source.planes()
    axes = plane_axes(args.axes, planes)
    if args.points is None and args.boxes is None:
        raise PromptError("give prompts with --points and/or --boxes.")
    objects = read_prompt_tables(args.points, args.boxes, axes)
    n_planes = planes_shape(planes)
    prompts = []
    for obj in objects:  # validate everything before the slow part
        where = f" on plane {dict(zip(axes, obj.plane, strict=True))}" if axes else ""
        if any(i >= n for i, n in zip(obj.plane, n_planes, strict=True)):
            raise PromptError(f"object {obj.name!r}{where}: the image has planes {n_planes}.")
        prompt = Prompts(points=np.array(obj.points).reshape(-1, 2), labels=obj.labels, box=obj.box)
        try:
            to_sam_prompts(prompt, planes.plane_shape)
        except PromptError as error:
            raise PromptError(f"object {obj.name!r}{where}: {error}") from None
        prompts.append(prompt)
    names = list(dict.fromkeys(obj.name for obj in objects))
    ids = dict(zip(names, object_ids(names), strict=True))
    prompted = [
        PromptedObject(tuple(obj.plane), obj.name, ids[obj.name], prompt)
        for obj, prompt in zip(objects, prompts, strict=True)
    ]

    multimask = {"auto": None, "on": True, "off": False}[args.multimask]
    # one task per plane: it is embedded once (or read from --store) and its objects decoded;
    # on a plane too large for one embedding, one task per tile the objects are routed to
    tasks = prompt_tasks(
        source,
        planes.plane_shape,
        [(obj.plane, index, obj.prompts) for index, obj in enumerate(prompted)],
        multimask,
    )
    recipe = recipe_from_args(args, store=open_store(args.store))
    with open_output(
        output,
        n_planes,
        planes.plane_shape,
        image=args.image,
        into_image=args.into_image,
        axes=_ome_axes(args.image),
        max_id=max(ids.values()),
    ) as labels:
        assembly = SegmentAssembly(
            labels, prompted, tasks, overwrite=args.overwrite, model=_model_name(recipe)
        )
        run_tasks(args, prompt_task, tasks, recipe, label="planes", on_result=assembly.add)
        written, table, rows = assembly.finish()
    for obj, row in zip(prompted, rows, strict=True):
        where_text = f" on plane {obj.plane}" if obj.plane else ""
        print(
            f"object {obj.name}{where_text}: id {row['id']}, predicted IoU "
            f"{row['predicted_iou']:.3f}, stability {row['stability']:.3f}, area {row['area']} px"
        )
    print(f"wrote {written} and {table}")
    return 0


def _model_name(recipe) -> str:
    """The name the objects table gives the model (as the engine names it)."""
    if recipe.checkpoint is not None:
        return Path(recipe.checkpoint).name
    from ..core.models.registry import DEFAULT_MODEL

    return recipe.name or DEFAULT_MODEL


def _ome_axes(path: Path):
    from ..core.storage.ome_zarr import is_zarr_path, open_zarr_image

    return open_zarr_image(path).axes if is_zarr_path(path) else None


def planes_shape(planes) -> tuple[int, ...]:
    """Sizes of the leading (plane) axes of a StackPlanes; () for a 2D image."""
    if not planes.labels or not planes.labels[-1]:
        return ()
    return tuple(i + 1 for i in planes.labels[-1])


def plane_axes(names: str | None, planes) -> tuple[str, ...]:
    """Column names of the leading axes: ``--axes`` or z / t,z / axis0,axis1,... by count."""
    from ..core.errors import PromptError

    count = len(planes_shape(planes))
    if names:
        axes = tuple(n.strip().lower() for n in names.split(",") if n.strip())
        if len(axes) != count:
            raise PromptError(
                f"--axes names {len(axes)} axis column(s) but the image has {count} leading "
                f"axis/axes (planes {planes_shape(planes)})."
            )
        return axes
    return {0: (), 1: ("z",), 2: ("t", "z")}.get(count, tuple(f"axis{i}" for i in range(count)))


def object_ids(names: Sequence[str]) -> list[int]:
    """Label ids: the object names themselves if all are distinct positive integers, else 1..N."""
    try:
        numbers = [int(name) for name in names]
    except ValueError:
        numbers = []
    if numbers and min(numbers) > 0 and len(set(numbers)) == len(numbers):
        return numbers
    return list(range(1, len(names) + 1))
