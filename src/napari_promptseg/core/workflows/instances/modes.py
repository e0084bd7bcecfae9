"""The automatic modes a loaded model offers, and their results as "segment everything" masks.

:func:`model_modes` is what the napari panel lists (AIS first where the model has an
instance decoder). The panel places a :class:`~..everything.generator.EverythingResult` into a labels layer
(new ids above the layer's, nothing overwritten, one undo step); the automatic modes hand
it their objects the same way. The instance decoder scores no mask as SAM's decoder does:
each object's ``predicted_iou`` here is its mean foreground probability (the panel's table
shows it as ``foreground``), which also orders the placement.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...models.checkpoint import has_decoder_state
from ...sam.embedding import EmbeddingKey
from ...sam.engine import PromptSegmenter
from ..everything.crops import FoundMask
from ..everything.generator import EverythingResult
from .checkpoint import DECODER_MODELS
from .clicks import InstanceClickDecoder

#: the panel's and the command's names for the modes, in the order offered
GRID, AIS, APG = "grid", "ais", "apg"


def model_modes(segmenter: PromptSegmenter | None) -> tuple[str, ...]:
    """("ais", "apg", "grid") for a model with an instance decoder, else ("grid",); ("ais",)
    for a model whose clicks pick AIS objects (the demo).

    A registry micro-sam model is known to have one; any other checkpoint is asked
    cheaply (:func:`~...models.checkpoint.has_decoder_state`).
    """
    if segmenter is None or segmenter.family == "sam2.1":
        return (GRID,)
    if isinstance(segmenter.decoder, InstanceClickDecoder):
        return (AIS,)  # the demo: its SAM mask decoder (grid, APG) is not trained
    known = segmenter.name in DECODER_MODELS
    if known or (segmenter.checkpoint is not None and has_decoder_state(segmenter.checkpoint)):
        return (AIS, APG, GRID)
    return (GRID,)


def instances_as_result(
    labels: np.ndarray, foreground: np.ndarray, key: EmbeddingKey, mode: str
) -> EverythingResult:
    """(H, W) labels (0 background) and the (H, W) foreground map → an EverythingResult."""
    labels = np.asarray(labels)
    height, width = labels.shape
    masks: list[FoundMask] = []
    for label_id, where in enumerate(ndimage.find_objects(labels), start=1):
        if where is None:
            continue
        rows, cols = where
        patch = labels[where] == label_id
        score = float(foreground[where][patch].mean())
        center = (float((rows.start + rows.stop) / 2), float((cols.start + cols.stop) / 2))
        box = (rows.start, cols.start, rows.stop, cols.stop)
        masks.append(FoundMask(box, patch, score, float("nan"), center, (0, 0, height, width), 0))
    order = list(range(len(masks)))
    return EverythingResult(masks, labels.astype(np.uint32), [], order, key, mode=mode)
