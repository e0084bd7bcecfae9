"""What an annotation session works on right now: plain data, no Qt, no behaviour.

The session's collaborators (the embedding and decode controllers, the panels) read it; the
session writes it. :meth:`SessionState.current_target` names what a result must belong to
for it to be shown or committed: the same image layer, plane and model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.sam.embedding import ImageEmbedding
from ..core.sam.engine import PromptSegmenter
from ..core.sam.prompts import POSITIVE
from ..core.workflows.tiling import TiledImage
from .slices import SliceRef


@dataclass(frozen=True)
class Target:
    """What an embedding or a decode belongs to: an image layer, one plane of it, a model."""

    layer_id: int
    ref: SliceRef
    model_id: str


@dataclass(eq=False)
class SessionState:
    """The image, plane, model and embedding in use, and the user's prompt options.

    Attributes
    ----------
    image_layer, labels_layer
        napari layers (None when not chosen); commits go to ``labels_layer``.
    current_slice
        The plane shown, None when there is none (no image, 3D view).
    segmenter
        The engine of the loaded model, None before one is loaded.
    embedding
        The embedding of ``current_slice``, None while it is being computed.
    tiled
        Set instead of ``embedding`` for planes embedded by tiles (large images).
    overwrite
        Whether commits may paint over existing objects.
    multimask
        None: SAM's advice (three candidates for a lone point); True/False to force.
    next_label
        Label of the next point or scribble (positive or negative).
    object_class
        Class name given to the next committed objects ("" = none; see ``_napari.editing``).
    """

    image_layer: Any = None
    labels_layer: Any = None
    current_slice: SliceRef | None = None
    segmenter: PromptSegmenter | None = None
    embedding: ImageEmbedding | None = None
    tiled: TiledImage | None = None
    overwrite: bool = False
    multimask: bool | None = None
    next_label: int = POSITIVE
    object_class: str = ""

    def current_target(self) -> Target | None:
        """The image, plane and model shown now; None if any is missing."""
        if self.image_layer is None or self.current_slice is None or self.segmenter is None:
            return None
        return Target(id(self.image_layer), self.current_slice, self.segmenter.model_id)

    @property
    def has_pixels(self) -> bool:
        """Whether the plane shown can be decoded: its embedding (or its tiles) is ready."""
        return self.embedding is not None or self.tiled is not None

    def describe_image(self) -> str:
        """``"cells z=3"``: the image layer and the plane, for status lines."""
        if self.image_layer is None:
            return ""
        where = self.current_slice.describe() if self.current_slice else ""
        return f"{self.image_layer.name} {where}".strip()
