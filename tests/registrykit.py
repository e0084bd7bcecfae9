"""A private copy of the model registry for a test, so test models do not leak into others."""

from __future__ import annotations

from napari_promptseg.core import models
from napari_promptseg.core.models import registry


def private_registry(monkeypatch) -> dict:
    """Replace the registry by a copy for this test (undone by ``monkeypatch``); returns it.

    The package re-exports ``MODELS``, so both names point at the copy.
    """
    private = dict(registry.MODELS)
    monkeypatch.setattr(registry, "MODELS", private)
    monkeypatch.setattr(models, "MODELS", private)
    return private
