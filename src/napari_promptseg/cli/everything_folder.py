"""``promptseg everything FOLDER -o OUT/``: one task per image, one label image per image.

Each file of FOLDER (images, stacks, zarr / OME-Zarr) is one task: the worker converts it
with napari's default contrast for that file (as ``promptseg everything FILE`` would) and
segments every plane of it; the command writes ``OUT/<name>.tif`` (or ``.ome.zarr`` with
``--format ome.zarr``) and ``OUT/<name>_objects.csv`` as soon as the image's result
arrives, each pair atomically. A stopped run leaves the images finished so far, each whole.
Files that are not images are skipped with a message (exit status 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

_STRIPPED = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr")


def output_name(path: Path) -> str:
    """The label image's name without suffix: ``cells.ome.zarr`` → ``cells``."""
    lower = path.name.lower()
    for suffix in _STRIPPED:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def run_everything_folder(args, params, mode: str = "grid", tiling: dict | None = None) -> int:
    from ..core.errors import ExportError
    from ..core.storage.label_output import open_label_output
    from ..core.workflows.distributed.assemble import EverythingAssembly, MergedStackAssembly
    from ..core.workflows.distributed.instance_tasks import InstanceImageTask, instance_image_task
    from ..core.workflows.distributed.sources import ImageSource
    from ..core.workflows.distributed.tasks import EverythingImageTask, everything_image_task
    from .common import image_conversion, input_files
    from .everything_modes import decoder_path, instance_params
    from .scale import open_store, recipe_from_args, run_tasks

    folder: Path = args.output
    if folder.suffix.lower() in (".tif", ".tiff", ".zarr") or (
        folder.exists() and not folder.is_dir()
    ):
        raise ExportError(
            f"for a folder of images, -o names the folder to write their label images into "
            f"(--format picks tif or ome.zarr); got {folder}."
        )
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write into {folder}: the folder {parent} does not exist.")
    suffix = ".ome.zarr" if args.format == "ome.zarr" else ".tif"
    settings = image_conversion(args)
    tasks, targets, names = [], {}, {}
    for path in input_files(args.image):
        name = output_name(path) + suffix
        if name in names:
            raise ExportError(
                f"{names[name].name} and {path.name} would both be written to "
                f"{folder / name}; rename one of them."
            )
        names[name] = path
        source = ImageSource.create(path, **settings)
        if mode == "grid":
            tasks.append(EverythingImageTask(source, params))
        else:
            task = InstanceImageTask(
                source,
                mode,
                instance_params(args, mode),
                params,
                decoder_path(args),
                **tiling or {},
            )
            tasks.append(task)
        targets[source.path] = folder / name
    recipe = recipe_from_args(args, store=open_store(args.store))
    skipped: list[str] = []
    written: list[Path] = []

    def write(task, result) -> None:
        if result.skipped is not None:
            print(f"skipped {result.name}: {result.skipped}", file=sys.stderr)
            skipped.append(result.name)
            return
        folder.mkdir(exist_ok=True)  # only once there is something to put in it
        target = targets[task.source.path]
        shape, plane_shape = result.planes_shape, result.plane_shape
        with open_label_output(target, shape, plane_shape, axes=result.axes) as labels:
            merge = mode != "grid" and not args.no_merge and len(shape) == 1
            assembly = MergedStackAssembly(labels) if merge else EverythingAssembly(labels)
            for plane in result.planes:
                assembly.add(plane)
            path, _table, rows = assembly.finish()
        written.append(path)
        print(f"{result.name}: {assembly.masks} masks, {len(rows)} objects -> {path}")

    function = everything_image_task if mode == "grid" else instance_image_task
    run_tasks(args, function, tasks, recipe, label=f"images ({mode})", on_result=write)
    print(f"wrote {len(written)} label image(s), each with its objects table, into {folder}")
    if skipped:
        print(f"{len(skipped)} file(s) skipped: {', '.join(skipped)}", file=sys.stderr)
        return 1
    return 0
