"""The per-item runner on a LocalCluster of 2 worker processes: same results as in-process,
a model loaded once per worker, a killed worker's tasks re-run, re-runs resume, faults named.

The cluster (``dask_client``, tests/conftest.py) is started once for the session.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal

import numpy as np
import pytest
import tifffile
import torch

from napari_promptseg.core.errors import ModelError
from napari_promptseg.core.storage.zarr_store import ZarrEmbeddingStore
from napari_promptseg.core.workflows.distributed.recipe import (
    ModelRecipe,
    models_loaded,
    segmenter_for,
)
from napari_promptseg.core.workflows.distributed.runner import run_items
from napari_promptseg.core.workflows.distributed.scheduler import (
    SchedulerError,
    open_client,
    parse_scheduler,
)
from napari_promptseg.core.workflows.distributed.sources import ImageSource
from napari_promptseg.core.workflows.distributed.tasks import EmbedTask, embed_task

pytestmark = pytest.mark.slow  # a few seconds each on 2 cores; they run in CI


@pytest.fixture
def stack_source(tmp_path):
    stack = np.random.default_rng(7).integers(0, 4000, (6, 48, 64)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    return ImageSource.create(path).resolved()


def recipe_for(checkpoint, store, **kwargs) -> ModelRecipe:
    return ModelRecipe.create(
        checkpoint=checkpoint, model_type="vit_tiny", store=store, cache_bytes=0, **kwargs
    )


def plane_tasks(source) -> list[EmbedTask]:
    return [EmbedTask(source, (label,)) for label in source.planes().labels]


def stored_features(store, source, model_id) -> list[torch.Tensor]:
    """Each plane's stored features, verified (checksums) by the store's load."""
    from napari_promptseg.core.sam.embedding import EmbeddingKey
    from napari_promptseg.core.sam.image import image_fingerprint

    out = []
    for _label, rgb in source.planes():
        embedding = store.load(EmbeddingKey(image_fingerprint(rgb), model_id))
        assert embedding is not None
        out.append(embedding.features)
    return out


def test_scheduler_forms():
    assert parse_scheduler(None).kind == "process"
    assert parse_scheduler("local:3").workers == 3
    assert parse_scheduler("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "slurm", "10.0.0.5:8786", "local:x"):
        with pytest.raises(SchedulerError, match=r"local:N|at least 1"):
            parse_scheduler(bad)


def test_an_unreachable_scheduler_is_named(monkeypatch):
    unreachable = parse_scheduler("tcp://127.0.0.1:9")
    message = r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    with pytest.raises(SchedulerError, match=message), open_client(unreachable, timeout=1):
        pass


def test_two_workers_store_exactly_what_one_process_stores(
    dask_client, checkpoint, stack_source, tmp_path
):
    here = ZarrEmbeddingStore(tmp_path / "here.zarr")
    there = ZarrEmbeddingStore(tmp_path / "there.zarr")
    tasks = plane_tasks(stack_source)
    seen = []
    local = run_items(embed_task, tasks, recipe=recipe_for(checkpoint, here))
    remote = run_items(
        embed_task,
        tasks,
        recipe=recipe_for(checkpoint, there),
        client=dask_client,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert [(o.computed, o.reused, o.total) for o in remote] == [(1, 0, 1)] * 6
    assert [(o.computed, o.reused) for o in local] == [(1, 0)] * 6
    assert seen == [(i, 6) for i in range(1, 7)]
    model_id = segmenter_for(recipe_for(checkpoint, here)).model_id
    for mine, theirs in zip(
        stored_features(here, stack_source, model_id),
        stored_features(there, stack_source, model_id),
        strict=True,
    ):
        assert torch.equal(mine, theirs)
    # each worker loaded the model once (its plugin), not once per task
    assert set(dask_client.run(models_loaded).values()) <= {1, 2}  # one per recipe used


def test_a_rerun_resumes_from_the_store(dask_client, checkpoint, stack_source, tmp_path):
    store = ZarrEmbeddingStore(tmp_path / "resume.zarr")
    recipe = recipe_for(checkpoint, store)
    tasks = plane_tasks(stack_source)
    run_items(embed_task, tasks, recipe=recipe, client=dask_client)
    entries = sorted(store.entries())
    for entry in entries[:2]:  # as if the first run had been stopped before these
        shutil.rmtree(entry)
    again = run_items(embed_task, tasks, recipe=recipe, client=dask_client)
    assert sum(o.computed for o in again) == 2 and sum(o.reused for o in again) == 4
    assert store.count == 6


def test_a_worker_without_the_checkpoint_is_named(dask_client, tmp_path, stack_source):
    recipe = ModelRecipe.create(checkpoint=tmp_path / "gone.pth", model_type="vit_tiny")
    with pytest.raises(ModelError, match=r"on .*\(pid \d+\): .*gone\.pth"):
        run_items(embed_task, plane_tasks(stack_source), recipe=recipe, client=dask_client)
    # the failed plugin is not left to fail again on workers that join later
    assert not any(
        name.startswith("napari-promptseg-")
        and name.endswith(recipe.token())
        for name in dask_client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
    )  # fmt: skip


def test_a_worker_killed_mid_run_has_its_tasks_rerun(
    dask_client, checkpoint, stack_source, tmp_path
):
    from napari_promptseg.testing import make_slow

    store = ZarrEmbeddingStore(tmp_path / "killed.zarr")
    slow = recipe_for(checkpoint, store, adapt=functools.partial(make_slow, seconds_per_block=0.4))
    killed = []

    def kill_a_busy_worker(done, total):
        if killed:
            return
        busy = [addr for addr, keys in dask_client.processing().items() if keys]
        if busy:
            pid = dask_client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    outcomes = run_items(
        embed_task,
        plane_tasks(stack_source),
        recipe=slow,
        client=dask_client,
        progress=kill_a_busy_worker,
    )
    assert killed, "no worker was busy to be killed"
    assert len(outcomes) == 6 and sum(o.total for o in outcomes) == 6
    # every entry is complete and verifies; no temporary counts as an entry
    assert store.count == 6
    reference = ZarrEmbeddingStore(tmp_path / "reference.zarr")
    run_items(embed_task, plane_tasks(stack_source), recipe=recipe_for(checkpoint, reference))
    model_id = segmenter_for(recipe_for(checkpoint, reference)).model_id
    for mine, theirs in zip(
        stored_features(reference, stack_source, model_id),
        stored_features(store, stack_source, model_id),
        strict=True,
    ):
        assert torch.equal(mine, theirs)
    dask_client.wait_for_workers(2, timeout=120)  # the nanny restarted it, for later tests
