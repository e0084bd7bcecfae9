"""``promptseg embed``: precompute embeddings into the disk store, ahead of annotation.

    promptseg embed stack.tif --model vit_b                  # every plane of a stack
    promptseg embed images/ --store /data/embeddings          # every file of a folder

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

from .common import add_image_arguments, add_model_arguments, load_segmenter


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
        help="store folder (default: $NAPARI_PROMPTSEG_STORE or the user cache folder)",
    )
    embed.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="float16 halves the disk use; masks may then differ from SAM's in a few pixels",
    )
    add_image_arguments(embed)
    embed.set_defaults(run=run_embed)


def run_embed(args) -> int:
    from ..core.errors import ImageError
    from ..core.sam.embedding import EmbeddingCache
    from ..core.storage.store import EmbeddingStore

    files = _input_files(args.path)
    first = None
    if len(files) == 1 and not args.path.is_dir():
        first = _read_planes(files[0], args)  # a bad single image fails before the model loads
    store = EmbeddingStore(args.store, dtype=args.dtype, on_error="raise")
    # the store keeps everything; memory only needs the embedding being written
    segmenter = load_segmenter(args, store=store, cache=EmbeddingCache(max_bytes=0))

    computed = reused = 0
    skipped: list[str] = []
    started = time.perf_counter()
    for path in files:
        try:
            planes = first if first is not None else _read_planes(path, args)
            summary = _embed_file(segmenter, path, planes)
        except ImageError as error:
            print(f"skipped {path.name}: {error}", file=sys.stderr)
            skipped.append(path.name)
            continue
        computed += summary.computed
        reused += summary.reused
        print(
            f"{path.name}: {summary.total} plane(s), {summary.computed} computed, "
            f"{summary.reused} already stored"
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


def _input_files(path: Path) -> list[Path]:
    from ..core.errors import ImageError

    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ImageError(f"the folder {path} holds no files.")
        return files
    raise ImageError(f"{path} does not exist.")


def _read_planes(path: Path, args):
    from ..core.storage.readers import read_image
    from ..core.workflows.stack import planes_of

    return planes_of(
        read_image(path),
        contrast_limits=tuple(args.contrast_limits) if args.contrast_limits else None,
        channel_axis=args.channel_axis,
        channels=args.channels[0] if args.channels and len(args.channels) == 1 else args.channels,
    )


def _embed_file(segmenter, path: Path, planes):
    from tqdm import tqdm

    from ..core.workflows.stack import iter_embed_planes

    steps = iter_embed_planes(segmenter, planes)
    with tqdm(total=len(planes), desc=path.name, unit="plane", file=sys.stderr, leave=False) as bar:
        try:
            while True:
                done, _, _ = next(steps)
                bar.update(done - bar.n)
        except StopIteration as finished:
            return finished.value
