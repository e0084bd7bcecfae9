"""``--scheduler`` and ``--store`` for the batch subcommands, and running their tasks.

Every batch command (embed, everything, segment, evaluate) builds a list of tasks, then
:func:`run_tasks` runs them in this process or on Dask with a progress bar of tasks
done/total. See docs/scale.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SCHEDULER_HELP = (
    "where the work runs: absent = this process; local:N = N worker processes on this "
    "machine; tcp://HOST:PORT = a running Dask cluster (see docs/scale.md)"
)


def add_scale_arguments(parser: argparse.ArgumentParser, *, store: bool = True) -> None:
    """``--scheduler`` (and ``--store`` / ``--dtype`` unless the command has its own)."""
    group = parser.add_argument_group("scale (see docs/scale.md)")
    group.add_argument("--scheduler", metavar="WHERE", help=SCHEDULER_HELP)
    if store:
        group.add_argument(
            "--store",
            type=Path,
            help="embedding store to read and fill (a .zarr folder for a shared store); "
            "a re-run finds the planes embedded before",
        )


def open_store(path: Path | None, *, dtype: str = "float32", required: bool = False) -> Any:
    """The store ``--store`` names (zarr for a .zarr folder), checked writable up front.

    Returns None when no ``--store`` was given and ``required`` is False.
    """
    from ..core.storage.stores import open_embedding_store

    if path is None and not required:
        return None
    store = open_embedding_store(path, dtype=dtype, on_error="raise")
    check = getattr(store, "check_writable", None)
    if check is not None:
        check()
    else:
        _check_folder_writable(store.root)
    return store


def recipe_from_args(args: argparse.Namespace, *, store: Any, cache_bytes: int = 256 << 20) -> Any:
    """The :class:`ModelRecipe` of ``--model`` / ``--checkpoint`` / ``--device`` / ``--offline``."""
    from ..core.errors import ModelError
    from ..core.workflows.distributed.recipe import ModelRecipe
    from ..core.workflows.distributed.scheduler import parse_scheduler, torch_threads_for

    if args.model and args.checkpoint:
        raise ModelError("give either --model or --checkpoint, not both.")
    spec = parse_scheduler(getattr(args, "scheduler", None))
    return ModelRecipe.create(
        name=args.model if not args.checkpoint else None,
        checkpoint=args.checkpoint,
        model_type=args.model_type,
        device=args.device,
        offline=args.offline,
        store=store,
        cache_bytes=cache_bytes,
        torch_threads=torch_threads_for(spec),
    )


def run_tasks(
    args: argparse.Namespace,
    function: Callable[[Any, Any], Any],
    tasks: Sequence[Any],
    recipe: Any,
    *,
    label: str,
    on_result: Callable[[Any, Any], None] | None = None,
) -> list[Any]:
    """Run ``tasks`` where ``--scheduler`` says, with a tasks done/total bar on stderr.

    In this process the model is loaded first (its time printed as before). On Dask, a
    local cluster is started and shut down here; Ctrl-C cancels the tasks not finished,
    closes the cluster and writes nothing more.

    Returns the results in task order; with ``on_result``, each ``(task, result)`` is
    handed to it as soon as it arrives instead (in any order), nothing is kept, and the
    list returned is empty.
    """
    import contextlib

    from tqdm import tqdm

    from ..core.workflows.distributed.runner import iter_items
    from ..core.workflows.distributed.scheduler import open_client, parse_scheduler

    spec = parse_scheduler(getattr(args, "scheduler", None))
    if spec.kind == "address" and recipe.store is None:
        print(
            "promptseg: note: no --store given; embeddings computed on the cluster are not "
            "kept (give a store on shared storage to reuse them).",
            file=sys.stderr,
        )
    segmenter = None
    if not spec.distributed:
        started = time.perf_counter()
        segmenter = recipe.build()
        print(
            f"model {segmenter.name} loaded in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    results: list[Any] = [None] * len(tasks) if on_result is None else []
    with open_client(spec) as client:
        if client is not None:
            print(f"running {len(tasks)} task(s) on {spec.describe()}", file=sys.stderr)
        finished = iter_items(function, tasks, recipe=recipe, client=client, segmenter=segmenter)
        with (
            tqdm(total=len(tasks), desc=label, unit="task", file=sys.stderr, leave=False) as bar,
            contextlib.closing(finished),
        ):
            for index, result in finished:
                if on_result is None:
                    results[index] = result
                else:
                    on_result(tasks[index], result)
                bar.update(1)
    return results


def _check_folder_writable(root: Path) -> None:
    """Create and remove a folder where the store is (or would be): nothing is left."""
    import uuid

    from ..core.errors import ExportError

    target = root
    while not target.exists() and target != target.parent:
        target = target.parent
    probe = target / f".promptseg-probe-{uuid.uuid4().hex}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        raise ExportError(
            f"the embedding store {root} is not writable: {error.strerror or error}."
        ) from None


def evaluate_on_scheduler(
    args: argparse.Namespace, settings: Any, classes: Any, ground_truth: Any
) -> Any:
    """``promptseg evaluate --scheduler``: one task per model and plane (see
    core.workflows.distributed.evaluate); the same report as the single-process run."""
    from tqdm import tqdm

    from ..core.storage.stores import open_embedding_store
    from ..core.workflows.distributed.evaluate import evaluate_models
    from ..core.workflows.distributed.recipe import ModelRecipe
    from ..core.workflows.distributed.scheduler import (
        open_client,
        parse_scheduler,
        torch_threads_for,
    )
    from ..core.workflows.distributed.sources import ImageSource
    from .common import image_conversion

    spec = parse_scheduler(args.scheduler)
    source = ImageSource.create(args.image, **image_conversion(args)).resolved()
    store = None if args.no_store else open_embedding_store(args.store)
    models = args.models or [("name", "vit_b")]
    types = args.model_types or []
    recipes = []
    number = 0
    for kind, value in models:
        options: dict[str, Any] = {"name": value}
        if kind == "checkpoint":
            model_type = types[0] if len(types) == 1 else types[number] if types else None
            number += 1
            options = {"checkpoint": value, "model_type": model_type}
        recipe = ModelRecipe.create(
            device=args.device,
            offline=args.offline,
            store=store,
            torch_threads=torch_threads_for(spec),
            **options,
        )
        recipes.append((recipe.display_name, recipe))
    with open_client(spec) as client:
        if client is not None:
            print(f"evaluating on {spec.describe()}", file=sys.stderr)
        with tqdm(unit="task", file=sys.stderr, leave=False, desc="evaluate") as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n if done >= bar.n else done)

            return evaluate_models(
                recipes,
                source,
                ground_truth,
                settings,
                classes=classes,
                client=client,
                progress=progress,
            )
