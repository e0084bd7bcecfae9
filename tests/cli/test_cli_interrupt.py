"""Ctrl-C on ``promptseg embed --scheduler local:2``: exit status 130 and one line, every store
entry whole, and the local cluster's worker processes gone."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
import tifffile
from interruptkit import press_ctrl_c, start_slow_command, wait_for

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.models.loading import load_model
from napari_promptseg.core.storage.zarr_store import ZarrEmbeddingStore
from napari_promptseg.core.workflows.stack import planes_of

pytestmark = pytest.mark.slow  # a cluster of 2 workers starts and is stopped: ~20 s

PLANES = 12


def test_ctrl_c_stops_a_local_cluster_cleanly(checkpoint, tmp_path):
    pytest.importorskip("distributed")
    data = np.random.default_rng(3).integers(0, 4000, (PLANES, 48, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", data, photometric="minisblack")
    store_path = tmp_path / "shared.zarr"
    command = start_slow_command(
        tmp_path, "embed", "stack.tif", "--checkpoint", checkpoint, "--model-type", "vit_tiny",
        "--store", store_path, "--scheduler", "local:2",
    )  # fmt: skip
    store = ZarrEmbeddingStore(store_path)
    wait_for(lambda: store_path.is_dir() and store.count >= 1, command, timeout=120)
    workers = psutil.Process(command.pid).children(recursive=True)
    assert workers, "the local cluster's worker processes"

    status, err = press_ctrl_c(command)

    assert status == 130, err
    assert "promptseg: interrupted; nothing more was written." in err
    assert "Traceback" not in err  # the workers leave the stopping to the command
    # stopped midway, and every entry there is whole: it verifies and is used as it is
    assert 1 <= store.count < PLANES
    engine = PromptSegmenter.from_model(
        load_model(checkpoint=checkpoint, model_type="vit_tiny"), store=store
    )
    served = [engine.cached(rgb) for _label, rgb in planes_of(data)]
    assert sum(embedding is not None for embedding in served) == store.count
    # the worker processes ended with the command
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    assert not alive, [p.pid for p in alive]
