"""Fixtures shared by every test: the tiny randomly initialised SAM and images."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_sam():
    from napari_promptseg.testing import build_tiny_sam

    return build_tiny_sam(seed=0)


@pytest.fixture
def segmenter(tiny_sam):
    from napari_promptseg.core import PromptSegmenter

    return PromptSegmenter(tiny_sam, "tiny-test")


@pytest.fixture
def rgb_300x517():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (300, 517, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # never touch the user's real model cache from tests
    monkeypatch.setenv("NAPARI_PROMPTSEG_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("NAPARI_PROMPTSEG_STORE", str(tmp_path_factory.mktemp("store")))
    monkeypatch.setenv("NAPARI_PROMPTSEG_AUTOSAVE_DIR", str(tmp_path_factory.mktemp("autosave")))
