"""Run per-item work (one image, plane or tile each) in this process or on a Dask cluster.

    >>> recipe = ModelRecipe.create(name="vit_b", store=ZarrEmbeddingStore("/shared/e.zarr"))
    >>> with open_client(parse_scheduler("local:4")) as client:
    ...     results = run_items(embed_planes, tasks, recipe=recipe, client=client)

``function(segmenter, item)`` must be a module-level function (workers import it by name)
and ``item`` picklable. Without a client the items run here, in order, on the engine this
process keeps for the recipe; with one, each item is a Dask task on a worker that loaded
the model once (:class:`.plugin.SegmenterPlugin`). :func:`run_items` gives the results in
the items' order, so callers assemble them identically; :func:`iter_items` gives each
``(index, result)`` as soon as it is ready (callers that write outputs piece by piece, so
the client never holds all the results at once).

Faults: a worker that dies mid-task (killed, out of memory) has its tasks re-run on another
worker by Dask; a task that fails raises its error here after the other tasks are
cancelled; Ctrl-C (``KeyboardInterrupt``) cancels every task not finished and re-raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from ...errors import PromptSegError
from ...sam.engine import PromptSegmenter
from .recipe import ModelRecipe, segmenter_for

Item = TypeVar("Item")
Result = TypeVar("Result")
Progress = Callable[[int, int], None]  # (items done, items total)


class WorkerLost(PromptSegError):
    """A task's worker died more often than Dask retries (e.g. out of memory every time)."""


def run_items(
    function: Callable[[PromptSegmenter, Item], Result],
    items: Sequence[Item],
    *,
    recipe: ModelRecipe,
    client: Any | None = None,
    progress: Progress | None = None,
    segmenter: PromptSegmenter | None = None,
) -> list[Result]:
    """``[function(segmenter, item) for item in items]``, here or on the cluster of ``client``.

    Parameters
    ----------
    recipe
        How to build the engine (in this process: once, kept for later calls).
    client
        A ``distributed.Client`` or None (in this process).
    progress
        Called with (done, total) after every finished item.
    segmenter
        In-process only: use this engine instead of building one from ``recipe``.

    Raises
    ------
    PromptSegError
        The first error a task raised (others are cancelled), or :class:`WorkerLost`.
    KeyboardInterrupt
        After cancelling the tasks not finished.
    """
    total = len(items)
    results: list[Any] = [None] * total
    finished = iter_items(function, items, recipe=recipe, client=client, segmenter=segmenter)
    with contextlib.closing(finished):
        for done, (index, result) in enumerate(finished, start=1):
            results[index] = result
            if progress is not None:
                progress(done, total)
    return results


def iter_items(
    function: Callable[[PromptSegmenter, Item], Result],
    items: Sequence[Item],
    *,
    recipe: ModelRecipe,
    client: Any | None = None,
    segmenter: PromptSegmenter | None = None,
) -> Generator[tuple[int, Result], None, None]:
    """``(index, function(segmenter, items[index]))`` for every item, as each finishes.

    In this process the items run in order; on a cluster they come in the order they
    finish. Parameters and errors as :func:`run_items`; closing the generator early
    (``contextlib.closing``, or an error in the loop that consumes it) cancels the tasks
    not finished.
    """
    if client is None:
        engine = segmenter if segmenter is not None else segmenter_for(recipe)
        for index, item in enumerate(items):
            yield index, run_item(item, function=function, engine=engine)
        return
    yield from _iter_on_cluster(function, items, recipe, client)


def run_item(
    item: Item,
    *,
    function: Callable[[PromptSegmenter, Item], Result],
    recipe: ModelRecipe | None = None,
    engine: PromptSegmenter | None = None,
) -> Result:
    """One item on this process's engine (what a Dask task runs).

    Lazy (dask) images are read by this thread itself, never through the cluster.
    """
    import dask

    if engine is None:
        assert recipe is not None
        engine = segmenter_for(recipe)
    with dask.config.set(scheduler="synchronous"):
        return function(engine, item)


def _iter_on_cluster(
    function: Callable[[PromptSegmenter, Item], Result],
    items: Sequence[Item],
    recipe: ModelRecipe,
    client: Any,
) -> Generator[tuple[int, Result], None, None]:
    from distributed import as_completed

    from .plugin import SegmenterPlugin

    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - older distributed
        from distributed import KilledWorker

    plugin = SegmenterPlugin(recipe)
    try:
        client.register_plugin(plugin)  # every worker loads the model now, once
    except BaseException:
        # e.g. the checkpoint is missing on a worker: don't leave the plugin to fail again on
        # every worker that joins later
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(plugin.name)
        raise
    futures = client.map(
        run_item, list(items), function=function, recipe=recipe, pure=False, retries=0
    )
    where = {future.key: index for index, future in enumerate(futures)}
    pending = {future.key: future for future in futures}
    try:
        for future in as_completed(futures, loop=client.loop):
            result = future.result()
            del pending[future.key]
            future.release()  # the worker may drop its copy: the result is the caller's now
            yield where[future.key], result
    except KilledWorker as error:
        client.cancel(list(pending.values()), force=True)
        raise WorkerLost(
            f"a task's worker died each time it ran it ({error}); the workers may be out of "
            "memory: give them more, or use fewer workers per machine."
        ) from None
    except BaseException:  # an error, Ctrl-C, or the consumer closing the generator
        client.cancel(list(pending.values()), force=True)
        raise
