"""Clicks answered by the instance decoder: the object under the click, as AIS found it.

The ``demo`` model's mask decoder is not trained (a SAM trained from scratch on a CPU learns
foreground, not which object a click points at; ``docs/finetune.md``), but its instance
decoder is. So for it a prompt *selects* AIS objects and refines the selection, the way
micro-sam's APG starts from AIS objects:

* a positive point (or a positive scribble's points) selects the AIS object under it; on
  background between objects, the connected foreground region under it (where the
  foreground probability is above one half), if any;
* a box selects the objects lying mostly inside it, clipped to the box (the foreground inside
  the box when there is none);
* a negative point removes the object under it from the selection; inside an object a
  positive point chose it splits that object: pixels nearer the negative point than every
  positive one go.

For a lone click there are three candidates, as SAM gives for an ambiguous prompt: the
object, the object with the objects touching it, and its whole connected foreground clump.
The "predicted IoU" of each is the mean foreground probability inside it: a confidence from
the same network, not SAM's IoU head. ``low_res_logits`` are the mask in SAM's 256 x 256
frame (so a mask prompt round-trips), and a mask prompt given back is ignored.

:func:`use_instance_clicks` installs it on an engine whose model asks for it (the demo
checkpoint's ``"prompts": "instances"`` metadata); every front end calls it after loading.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from ...errors import ModelError
from ...models.checkpoint import read_metadata
from ...sam.decode import DecodeResult
from ...sam.embedding import EmbeddingKey, ImageEmbedding
from ...sam.engine import PromptSegmenter
from ...sam.prompts import NEGATIVE, POSITIVE, Prompts, SamPrompts, is_ambiguous, to_sam_prompts
from .checkpoint import AIS
from .segmenter import InstanceSegmenter

#: Checkpoint metadata: ``{"prompts": "instances"}`` asks for this decoder.
PROMPTS_KEY = "prompts"
INSTANCE_PROMPTS = "instances"
LOW_RES = 256  # SAM's mask-logit frame
_LABELS_KEPT = 8
_FOREGROUND = 0.5


class InstanceClickDecoder:
    """A :class:`~...sam.families.base.Decoder` that selects AIS objects (module notes)."""

    #: what the ``iou`` of its results is, for a front end to say (SAM's: predicted IoU)
    score_name = "mean foreground"

    def __init__(self, instances: InstanceSegmenter) -> None:
        self.instances = instances
        self._labels: OrderedDict[EmbeddingKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(self, embedding: ImageEmbedding) -> np.ndarray:
        """The AIS objects of the image (one decoder pass and a watershed, cached)."""
        with self._lock:
            found = self._labels.get(embedding.key)
            if found is not None:
                self._labels.move_to_end(embedding.key)
                return found
        labels = self.instances.ais(embedding)
        with self._lock:
            self._labels[embedding.key] = labels
            while len(self._labels) > _LABELS_KEPT:
                self._labels.popitem(last=False)
        return labels

    def predict(
        self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool | None = None
    ) -> DecodeResult:
        """Validate napari-frame prompts (as the SAM decoder does) and select."""
        sam_prompts = to_sam_prompts(prompts, embedding.original_size)
        if multimask is None:
            multimask = is_ambiguous(sam_prompts)
        return self.decode(embedding, sam_prompts, multimask=multimask)

    def decode(
        self, embedding: ImageEmbedding, prompts: SamPrompts, multimask: bool = True
    ) -> DecodeResult:
        """SAM-frame prompts ((x, y) points, (x0, y0, x1, y1) box) → selected objects."""
        labels = self.prepare(embedding)
        foreground = self.instances.maps(embedding).foreground
        positive, negative = _points(prompts, labels.shape)
        box = _box_mask(prompts.box, labels.shape)
        selected = _select(labels, foreground, positive, negative, box)
        masks = [selected]
        if multimask:
            masks += [_with_neighbours(labels, selected), _clump(foreground, selected)]
        stack = np.stack(masks)
        iou = np.array([_confidence(foreground, m) for m in stack], np.float32)
        return DecodeResult(
            masks=stack,
            iou=iou,
            stability=np.ones(len(stack), np.float32),
            low_res_logits=_low_res_logits(stack, embedding.input_size),
            best=0,
            key=embedding.key,
        )


def use_instance_clicks(
    segmenter: PromptSegmenter, instances: InstanceSegmenter | None = None
) -> bool:
    """Answer ``segmenter``'s prompts with :class:`InstanceClickDecoder` when its checkpoint
    asks for it (``"prompts": "instances"``); returns whether it now does."""
    if isinstance(segmenter.decoder, InstanceClickDecoder):
        return True
    if not wants_instance_clicks(segmenter.checkpoint):
        return False
    if instances is None:
        instances = InstanceSegmenter.from_segmenter(
            segmenter, segmenter.checkpoint, progress=False, offline=True
        )
    segmenter.decoder = InstanceClickDecoder(instances)
    return True


def check_automatic_mode(segmenter: PromptSegmenter, mode: str) -> None:
    """Refuse the grid and APG modes on a model whose clicks are AIS picks (the demo): both
    run SAM's mask decoder, which such a model has not trained (``ModelError``)."""
    if mode != AIS and isinstance(segmenter.decoder, InstanceClickDecoder):
        raise ModelError(
            f"model {segmenter.name!r} has only the automatic mode 'ais': its SAM mask "
            f"decoder is not trained (its clicks pick AIS objects), so the {mode!r} mode "
            "would give meaningless masks. Use --mode ais (what auto picks for it)."
        )


def wants_instance_clicks(checkpoint: Any) -> bool:
    """Whether a checkpoint file's metadata says its clicks select instances."""
    if checkpoint is None:
        return False
    metadata = read_metadata(checkpoint) or {}
    return metadata.get(PROMPTS_KEY) == INSTANCE_PROMPTS


# -- selection ---------------------------------------------------------------------------


def _points(prompts: SamPrompts, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) integer pixels of the positive and of the negative points."""
    if prompts.point_coords is None or prompts.point_labels is None:
        empty = np.zeros((0, 2), np.int64)
        return empty, empty
    xy = np.asarray(prompts.point_coords, float).reshape(-1, 2)
    rc = np.stack([xy[:, 1], xy[:, 0]], axis=1)
    rc = np.clip(np.floor(rc), 0, np.array(shape) - 1).astype(np.int64)
    labels = np.asarray(prompts.point_labels).reshape(-1)
    return rc[labels == POSITIVE], rc[labels == NEGATIVE]


def _box_mask(box: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if box is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box).reshape(4))
    mask = np.zeros(shape, bool)
    r0, r1 = int(np.floor(min(y0, y1))), int(np.ceil(max(y0, y1)))
    c0, c1 = int(np.floor(min(x0, x1))), int(np.ceil(max(x0, x1)))
    mask[max(r0, 0) : max(r1, 0) + 1, max(c0, 0) : max(c1, 0) + 1] = True
    return mask


def _select(
    labels: np.ndarray,
    foreground: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    box: np.ndarray | None,
) -> np.ndarray:
    clicked: set[int] = set()  # objects under a positive point
    extra = np.zeros(labels.shape, bool)  # foreground regions clicked between objects
    for r, c in positive:
        label = int(labels[r, c])
        if label:
            clicked.add(label)
        elif foreground[r, c] > _FOREGROUND:
            extra |= _component(foreground > _FOREGROUND, (int(r), int(c)))
    chosen = set(clicked)
    if box is not None:
        ids, inside = np.unique(labels[box], return_counts=True)
        totals = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
        chosen |= {int(i) for i, n in zip(ids, inside, strict=True) if i and 2 * n > totals[i]}
    # a negative point drops the object under it, unless a positive point chose that object
    # too: then it splits it (below)
    excluded = {int(labels[r, c]) for r, c in negative} - {0} - clicked
    mask = np.isin(labels, sorted(chosen - excluded)) | extra
    if box is not None:
        mask &= box
        if not mask.any() and not len(positive):
            mask = box & (foreground > _FOREGROUND)
    split = [(int(r), int(c)) for r, c in negative if mask[r, c]]
    if split and len(positive):
        mask &= ~_nearer_to(mask.shape, split, [tuple(p) for p in positive.tolist()])
    return mask


def _component(region: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    components, _ = ndimage.label(region)
    return np.asarray(components == components[at])


def _nearer_to(
    shape: tuple[int, int], points: list[tuple[int, int]], others: list[tuple[int, int]]
) -> np.ndarray:
    """Pixels nearer to one of ``points`` than to every one of ``others``."""
    rows, cols = np.indices(shape, dtype=np.float32)

    def nearest(group: list[tuple[int, int]]) -> np.ndarray:
        return np.min([(rows - r) ** 2 + (cols - c) ** 2 for r, c in group], axis=0)

    return np.asarray(nearest(points) < nearest(others))


def _with_neighbours(labels: np.ndarray, selected: np.ndarray) -> np.ndarray:
    if not selected.any():
        return selected
    touching = set(np.unique(labels[ndimage.binary_dilation(selected, iterations=2)])) - {0}
    return selected | np.isin(labels, sorted(int(t) for t in touching))


def _clump(foreground: np.ndarray, selected: np.ndarray) -> np.ndarray:
    if not selected.any():
        return selected
    components, _ = ndimage.label((foreground > _FOREGROUND) | selected)
    ids = set(np.unique(components[selected])) - {0}
    return np.asarray(np.isin(components, sorted(int(i) for i in ids)))


def _confidence(foreground: np.ndarray, mask: np.ndarray) -> float:
    return float(foreground[mask].mean()) if mask.any() else 0.0


def _low_res_logits(masks: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The masks as ±10 logits in SAM's 256 x 256 padded frame."""
    h, w = (max(1, round(s * LOW_RES / 1024)) for s in input_size)
    small = F.interpolate(torch.from_numpy(masks[:, None].astype(np.float32)), (h, w))
    logits = np.full((len(masks), LOW_RES, LOW_RES), -10.0, np.float32)
    logits[:, :h, :w] = np.where(small[:, 0].numpy() > 0.5, 10.0, -10.0)
    return logits
