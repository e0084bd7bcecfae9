"""``promptseg track``: prompts on some frames of a stack → objects followed through it.

Writes a label stack with its tables (``.tif``), a Cell Tracking Challenge folder, or a
GEFF graph. See docs/tracking.md.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .common import add_image_arguments, add_model_arguments
from .scale import add_scale_arguments

FORMATS = ("tif", "ctc", "geff")


def register(commands) -> None:
    track = commands.add_parser(
        "track",
        help="follow prompted objects through a stack (z or t): labels, CTC or GEFF",
        description=(
            "Prompts in the CSV formats of `promptseg segment`, with a column naming the frame "
            "(t or z; --axes to name it): points object,t,row,col[,label], boxes "
            "object,t,row0,col0,row1,col1. Each object is followed from the frames it has "
            "prompts on through the whole stack: with SAM 2.1's video memory, or for SAM and "
            "MobileSAM by our box-and-point propagation. A track ends where the model loses "
            "the object. Output by -o: LABELS.tif (+ LABELS_objects.csv, one row per object "
            "and frame, and LABELS_tracks.csv, the lineage table), a new folder for the Cell "
            "Tracking Challenge format (maskNNN.tif + res_track.txt), or TRACKS.geff."
        ),
    )
    track.add_argument("image", type=Path, help="a stack (t, y, x) or (z, y, x), gray or RGB")
    track.add_argument(
        "--axes",
        help="the CSV column naming each prompt's frame (default: t if the CSV has one, else z)",
    )
    add_model_arguments(track)
    track.add_argument("--points", type=Path, help="points CSV: object,t,row,col[,label]")
    track.add_argument("--boxes", type=Path, help="boxes CSV: object,t,row0,col0,row1,col1")
    track.add_argument(
        "-o", "--output", type=Path, required=True, help="LABELS.tif, a CTC folder, or TRACKS.geff"
    )
    track.add_argument(
        "--format",
        choices=FORMATS,
        help="tif, ctc or geff (default: from -o: .tif/.tiff → tif, .geff → geff, else ctc)",
    )
    track.add_argument(
        "--method",
        choices=("auto", "memory", "box-point"),
        default="auto",
        help="memory: SAM 2.1's video memory; box-point: our propagation (any model); "
        "auto: memory where the model has it",
    )
    track.add_argument("--direction", choices=("both", "forward", "backward"), default="both")
    track.add_argument(
        "--max-frames", type=int, help="at most this many frames per direction from a prompt"
    )
    track.add_argument(
        "--overwrite",
        action="store_true",
        help="later objects may paint over earlier ones where they overlap (default: never)",
    )
    add_image_arguments(track)
    add_scale_arguments(track)
    track.set_defaults(run=run_track)


def output_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return "tif"
    if suffix == ".geff":
        return "geff"
    return "ctc"


def check_output(path: Path, fmt: str) -> None:
    """Refuse an output that would overwrite something, before any slow work."""
    from ..core.errors import ExportError
    from .common import check_output_path

    if fmt == "tif":
        check_output_path(path, (".tif", ".tiff"))
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write {path}: the folder {parent} does not exist.")
    if fmt == "ctc" and path.is_dir() and any(path.iterdir()):
        raise ExportError(
            f"the CTC folder {path} is not empty: give a new or empty folder (nothing was written)."
        )
    if fmt == "ctc" and path.exists() and not path.is_dir():
        raise ExportError(f"{path} is a file; a CTC export needs a new or empty folder.")
    if fmt == "geff" and path.exists():
        raise ExportError(f"{path} exists; give a new name for the GEFF graph.")


def frame_column(args) -> str:
    """``--axes``, else ``t`` when a prompt CSV has a ``t`` column, else ``z``."""
    from ..core.errors import PromptError

    if args.axes:
        names = [n.strip().lower() for n in args.axes.split(",") if n.strip()]
        if len(names) != 1:
            raise PromptError(
                f"track follows objects along one axis: --axes names one column, got {args.axes!r}."
            )
        return names[0]
    for path in (args.points, args.boxes):
        if path is not None and Path(path).is_file():
            with open(path, newline="", encoding="utf-8-sig") as file:
                header = next(csv.reader(file), [])
            if "t" in (h.strip().lower() for h in header):
                return "t"
    return "z"


def run_track(args) -> int:
    import numpy as np

    from ..core import Prompts
    from ..core.errors import ImageError, PromptError
    from ..core.sam.prompts import to_sam_prompts
    from ..core.storage.readers import read_prompt_tables
    from ..core.workflows.distributed.scheduler import parse_scheduler
    from ..core.workflows.distributed.sources import ImageSource
    from ..core.workflows.tracking.batch import (
        TrackedObject,
        assemble_tracks,
        track_task,
        track_tasks,
    )
    from .common import image_conversion
    from .scale import open_store, recipe_from_args, run_tasks
    from .segment import object_ids, planes_shape

    spec = parse_scheduler(args.scheduler)
    fmt = output_format(args.output, args.format)
    check_output(args.output, fmt)
    if args.points is None and args.boxes is None:
        raise PromptError("give prompts with --points and/or --boxes.")
    if args.max_frames is not None and args.max_frames < 1:
        raise PromptError(f"--max-frames must be at least 1; got {args.max_frames}.")
    source = ImageSource.create(args.image, **image_conversion(args)).resolved()
    planes = source.planes()
    n_planes = planes_shape(planes)
    if len(n_planes) != 1:
        what = (
            "a 2D image has no frames to follow objects through"
            if not n_planes
            else (
                f"it has {len(n_planes)} leading axes (planes {n_planes}); give one (t or z) stack"
            )
        )
        raise ImageError(f"track needs a stack (t, y, x) or (z, y, x): {what}.")
    n_frames = n_planes[0]
    axis = frame_column(args)
    by_name: dict[str, list[tuple[int, Prompts]]] = {}
    for obj in read_prompt_tables(args.points, args.boxes, (axis,)):
        frame = obj.plane[0]
        if not 0 <= frame < n_frames:
            raise PromptError(
                f"object {obj.name!r}: frame {axis}={frame} is outside the stack (frames 0–"
                f"{n_frames - 1})."
            )
        prompt = Prompts(points=np.array(obj.points).reshape(-1, 2), labels=obj.labels, box=obj.box)
        try:
            to_sam_prompts(prompt, planes.plane_shape)
        except PromptError as error:
            raise PromptError(f"object {obj.name!r} on frame {frame}: {error}") from None
        by_name.setdefault(obj.name, []).append((frame, prompt))
    ids = dict(zip(by_name, object_ids(list(by_name)), strict=True))
    objects = [
        TrackedObject(ids[name], name, tuple(sorted(frames, key=lambda item: item[0])))
        for name, frames in by_name.items()
    ]
    tasks = track_tasks(
        source,
        objects,
        per_object=spec.distributed,  # one process: one task, so a frame is embedded once
        direction=args.direction,
        max_frames=args.max_frames,
        method=args.method,
    )
    recipe = recipe_from_args(args, store=open_store(args.store))
    tracks = [
        t for result in run_tasks(args, track_task, tasks, recipe, label="objects") for t in result
    ]
    labels, rows = assemble_tracks(
        tracks, (n_frames, *planes.plane_shape), overwrite=args.overwrite
    )
    for track in sorted(tracks, key=lambda t: t.obj_id):
        frames = sorted(track.frames)
        span = f"frames {frames[0]}–{frames[-1]}" if frames else "no frame"
        why = "; ".join(f"{where}: {reason}" for where, reason in track.stops.items())
        print(
            f"object {track.name}: id {track.obj_id}, {len(frames)} frame(s), {span} ({track.method}); {why}"
        )
    print(f"wrote {', '.join(str(p) for p in write_tracks(args.output, fmt, labels, rows, axis))}")
    return 0


def write_tracks(output: Path, fmt: str, labels, rows, axis: str) -> list[Path]:
    """Write the label stack as ``fmt``; returns the main paths written."""
    from ..core.storage.export import write_labels_and_objects, write_objects_csv
    from ..core.workflows.tracking.ctc import write_ctc
    from ..core.workflows.tracking.geff_io import write_geff
    from ..core.workflows.tracking.lineage import COLUMNS, Lineage

    lineage = Lineage.from_labels(labels)
    if fmt == "ctc":
        written = write_ctc(output, labels, lineage)
        return [output, written[-1]]
    if fmt == "geff":
        return [write_geff(output, labels, lineage, axis_names=(axis, "y", "x"))]
    labels_path, objects_path = write_labels_and_objects(
        output, labels, rows, output.with_name(f"{output.stem}_objects.csv")
    )
    tracks_path = write_objects_csv(
        output.with_name(f"{output.stem}_tracks.csv"), lineage.to_rows(), COLUMNS
    )
    return [labels_path, objects_path, tracks_path]
