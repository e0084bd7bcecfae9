"""``promptseg embed``: precompute embeddings into the disk store, ahead of annotation.

    promptseg embed stack.tif --model vit_b                  # every plane of a stack
    promptseg embed images/ --store /data/embeddings          # every file of a folder
    promptseg embed screen/ --store /shared/e.zarr --scheduler local:4   # on 4 worker processes

A plane whose longest side is above 2048 px is embedded by 1024 px tiles, one task per
tile, each tile its own store entry: the napari session embeds such planes by the same
tiles, so it finds them all in the store.

Without ``--contrast-limits`` images are converted with the contrast limits napari gives a
new layer of the file (see ``core.batch.stack_contrast_limits``), so opening it in napari
with default contrast finds every plane already embedded. Pass the contrast limits you
annotate with to match other settings.
Exit status: 0, or 1 when some files were skipped (unreadable, not an image).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import add_image_arguments, add_model_arguments, image_conversion, input_files, is_zarr
from .scale import add_scale_arguments


def register(commands) -> None:
    embed = commands.add_parser(
        "embed",
        help="precompute image embeddings (every plane of a stack, every file of a folder) into the disk store",
        description=(
            "Compute the SAM embedding of every 2D plane of PATH (an image or a stack) or of "
            "every file in the folder PATH, and keep them in the embedding store. Planes already "
            "stored are not recomputed. Unreadable files are skipped with a message."
        ),
    )
    embed.add_argument("path", type=Path, help="an image file (2D or a stack) or a folder of them")
    add_model_arguments(embed)
    embed.add_argument(
        "--store",
        type=Path,
        help="store folder (default: $NAPARI_PROMPTSEG_STORE or the user cache folder); "
        "a name ending in .zarr is a zarr store many processes and machines can share",
    )
    embed.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="float16 halves the disk use; masks may then differ from SAM's in a few pixels",
    )
    add_image_arguments(embed)
    add_scale_arguments(embed, store=False)
    embed.set_defaults(run=run_embed)


def run_embed(args) -> int:
    from ..core.workflows.distributed.scheduler import parse_scheduler
    from ..core.workflows.distributed.sources import ImageSource
    from ..core.workflows.distributed.tasks import EmbedTask, embed_task, embed_tasks
    from .scale import open_store, recipe_from_args, run_tasks

    parse_scheduler(args.scheduler)  # a bad --scheduler fails before anything else
    files = input_files(args.path)
    settings = image_conversion(args)
    planes_of_image = None
    if (len(files) == 1 and not args.path.is_dir()) or is_zarr(args.path):
        # one image (or stack): a bad file fails before the model loads; split by plane,
        # and a plane too large for one embedding by tile (as the napari session embeds it)
        source = ImageSource.create(files[0], **settings).resolved()
        planes_of_image = len(source.planes().labels)
        tasks = embed_tasks(source)
    else:
        tasks = [
            EmbedTask(ImageSource.create(path, **settings), skip_unreadable=True) for path in files
        ]
    store = open_store(args.store, dtype=args.dtype, required=True)
    # the store keeps everything; memory only needs the embedding being written
    recipe = recipe_from_args(args, store=store, cache_bytes=0)

    started = time.perf_counter()
    outcomes = run_tasks(args, embed_task, tasks, recipe, label="embedding")
    computed = reused = 0
    skipped: list[str] = []
    for outcome in _per_file(outcomes):
        if outcome.skipped is not None:
            print(f"skipped {outcome.name}: {outcome.skipped}", file=sys.stderr)
            skipped.append(outcome.name)
            continue
        computed += outcome.computed
        reused += outcome.reused
        planes = planes_of_image if planes_of_image is not None else outcome.planes
        tiles = f" ({outcome.tiles} tiles)" if outcome.tiles else ""
        print(
            f"{outcome.name}: {planes} plane(s){tiles}, {outcome.computed} computed, "
            f"{outcome.reused} already stored"
        )
    print(
        f"{computed} embedding(s) computed, {reused} already stored, in "
        f"{time.perf_counter() - started:.1f} s; store {store.root} holds {store.count} "
        f"({store.nbytes / 2**20:.1f} MiB)"
    )
    if skipped:
        print(f"{len(skipped)} file(s) skipped: {', '.join(skipped)}", file=sys.stderr)
        return 1
    return 0


def _per_file(outcomes):
    """Outcomes of plane tasks summed per file, in order."""
    from ..core.workflows.distributed.tasks import EmbedOutcome

    merged: dict[str, EmbedOutcome] = {}
    for outcome in outcomes:
        before = merged.get(outcome.name)
        if before is None or outcome.skipped is not None:
            merged[outcome.name] = outcome
            continue
        merged[outcome.name] = EmbedOutcome(
            outcome.name,
            before.computed + outcome.computed,
            before.reused + outcome.reused,
            before.total + outcome.total,
            planes=before.planes + outcome.planes,
            tiles=before.tiles + outcome.tiles,
        )
    return list(merged.values())
