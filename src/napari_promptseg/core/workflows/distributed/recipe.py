"""How a worker builds the engine: a picklable recipe, and the engines a process keeps.

A :class:`ModelRecipe` names the model (registry name or checkpoint path), the device and
the embedding store; it is sent to every worker, which builds the
:class:`~napari_promptseg.core.PromptSegmenter` from it **once** and keeps it for every
later task (:func:`segmenter_for`). The same function serves the single-process run, so
both paths run the same code.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ModelError
from ...models.architectures import SamModel
from ...sam.embedding import EmbeddingCache
from ...sam.engine import EmbeddingStoreLike, PromptSegmenter

THREADS_ENV = "PROMPTSEG_TORCH_THREADS"


@dataclass(frozen=True)
class ModelRecipe:
    """Everything a worker needs to build the engine.

    Attributes
    ----------
    name, checkpoint, model_type, device, offline
        As for :func:`~napari_promptseg.core.models.loading.load_model`; ``checkpoint`` is
        made absolute (:meth:`create`) because workers may start in another folder.
    store
        The embedding store the workers read and fill (an ``EmbeddingStore`` or a
        ``ZarrEmbeddingStore``; they pickle as their settings), or None.
    cache_bytes
        The memory cache of each engine (segment everything re-reads crop embeddings).
    torch_threads
        ``torch.set_num_threads`` on the worker; None leaves it (or ``$PROMPTSEG_TORCH_THREADS``).
    adapt
        A picklable function applied to the loaded SAM (tests slow the encoder down with it).
    """

    name: str | None = None
    checkpoint: str | None = None
    model_type: str | None = None
    device: str | None = None
    offline: bool = False
    store: EmbeddingStoreLike | None = None
    cache_bytes: int = 256 << 20
    torch_threads: int | None = None
    adapt: Callable[[SamModel], SamModel] | None = None

    @classmethod
    def create(cls, *, checkpoint: str | os.PathLike | None = None, **kwargs: Any) -> ModelRecipe:
        """A recipe with the checkpoint path made absolute."""
        path = str(Path(checkpoint).expanduser().absolute()) if checkpoint is not None else None
        return cls(checkpoint=path, **kwargs)

    @property
    def display_name(self) -> str:
        """The name the engine will have (objects tables, reports): registry name or file name."""
        if self.checkpoint is not None:
            return Path(self.checkpoint).name
        from ...models.registry import DEFAULT_MODEL

        return self.name or DEFAULT_MODEL

    def token(self) -> str:
        """A stable identity of the recipe: the key of the engine a worker keeps for it."""
        return hashlib.blake2b(pickle.dumps(self), digest_size=12).hexdigest()

    def build(self) -> PromptSegmenter:
        """Load the model and wrap it (what every worker does once).

        Raises
        ------
        ModelError
            The checkpoint is missing or unreadable on this machine (the message names the
            machine), or the model cannot be loaded.
        """
        from ...models.loading import load_model
        from ..instances.clicks import use_instance_clicks

        threads = self.torch_threads or int(os.environ.get(THREADS_ENV, "0") or 0)
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        try:
            model = load_model(
                self.name,
                checkpoint=self.checkpoint,
                model_type=self.model_type,
                device=self.device,
                progress=False,
                offline=self.offline,
            )
        except ModelError as error:
            raise type(error)(f"on {_host()}: {error}") from None
        if self.adapt is not None:
            model.sam = self.adapt(model.sam)
        segmenter = PromptSegmenter.from_model(
            model, cache=EmbeddingCache(max_bytes=self.cache_bytes), store=self.store
        )
        use_instance_clicks(segmenter)  # the demo model: clicks select its AIS objects
        return segmenter


_SEGMENTERS: dict[str, PromptSegmenter] = {}
_LOCK = threading.Lock()
_BUILDS = [0]  # models loaded by this process (tests: once per worker, not once per task)


def segmenter_for(recipe: ModelRecipe) -> PromptSegmenter:
    """The engine this process keeps for ``recipe``, built on first use."""
    token = recipe.token()
    with _LOCK:
        segmenter = _SEGMENTERS.get(token)
        if segmenter is None:
            segmenter = recipe.build()
            _SEGMENTERS[token] = segmenter
            _BUILDS[0] += 1
        return segmenter


def forget(recipe: ModelRecipe) -> None:
    """Drop the engine kept for ``recipe`` (a worker plugin's teardown)."""
    with _LOCK:
        _SEGMENTERS.pop(recipe.token(), None)


def models_loaded() -> int:
    """How many times this process loaded a model (tests: once per worker, not per task)."""
    with _LOCK:
        return _BUILDS[0]


def _host() -> str:
    import socket

    return f"{socket.gethostname()} (pid {os.getpid()})"
