"""Errors the engine raises on bad input.

Every message names the problem and, where there is one, what to do about it. Callers
(CLI, napari widget) show ``str(error)`` to the user as it is: no traceback needed.
"""

from __future__ import annotations


class PromptSegError(Exception):
    """Base class of every error napari-promptseg raises on purpose."""


class ImageError(PromptSegError, ValueError):
    """The image cannot be turned into a SAM input (shape, dtype, empty, all NaN...)."""


class PromptError(PromptSegError, ValueError):
    """The prompts are invalid for this image (outside it, degenerate box, only negatives...)."""


class ModelError(PromptSegError):
    """A model cannot be found, fetched or loaded."""


class CheckpointNotAvailable(ModelError):
    """The checkpoint file is not on disk and cannot be downloaded (offline, no network)."""


class ExportError(PromptSegError, OSError):
    """A result cannot be written (unwritable folder, disk full...). Earlier files are intact."""


class Cancelled(PromptSegError):
    """A long computation was cancelled by the caller."""
