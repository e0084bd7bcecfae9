"""The Dask worker plugin that loads the model once per worker and keeps it.

Registered by :func:`.runner.run_items` before any task is sent: ``setup`` runs on every
worker of the cluster, and on every worker that joins or restarts later (a killed worker's
replacement loads the model before it takes tasks). A worker that cannot load the model
(checkpoint missing on that machine) fails the registration with the model's message.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .recipe import ModelRecipe, forget, segmenter_for


class SegmenterPlugin(WorkerPlugin):
    """Builds :class:`ModelRecipe`'s engine on each worker at start, drops it at close."""

    def __init__(self, recipe: ModelRecipe) -> None:
        self.recipe = recipe
        self.name = f"napari-promptseg-{recipe.token()}"  # one plugin per recipe

    def setup(self, worker: Any) -> None:
        segmenter_for(self.recipe)

    def teardown(self, worker: Any) -> None:
        forget(self.recipe)
