"""The per-object state of :class:`.memory.MemoryTracker`, and sam2's hole filling on the CPU."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

HOLE_SCORE = 0.1  # what sam2's fill_holes_in_mask_scores writes into a filled hole


@dataclass
class ObjectState:
    """Per-object state: the predictor's ``*_per_obj`` dictionaries for one object."""

    point_inputs: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    mask_inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    cond: dict[int, dict[str, Any]] = field(default_factory=dict)
    non_cond: dict[int, dict[str, Any]] = field(default_factory=dict)
    temp_cond: dict[int, dict[str, Any]] = field(default_factory=dict)
    temp_non_cond: dict[int, dict[str, Any]] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame → tracked in reverse

    def output_dict(self) -> dict[str, Mapping[int, dict[str, Any]]]:
        """The predictor's ``output_dict``, memory features handed over as float32."""
        return {
            "cond_frame_outputs": _Float32Memory(self.cond),
            "non_cond_frame_outputs": _Float32Memory(self.non_cond),
        }

    def latest(self, frame: int) -> dict[str, Any] | None:
        for outputs in (self.temp_cond, self.temp_non_cond, self.cond, self.non_cond):
            if frame in outputs:
                return outputs[frame]
        return None


class _Float32Memory(Mapping[int, dict[str, Any]]):
    """Frame outputs whose bfloat16 memory features are read as float32.

    The predictor stores memory features in bfloat16 and concatenates them with the float32
    object pointers, which promotes them to float32 (exactly). Without pointers to promote
    them (a frame whose only memory is a mask prompt, seen backward) the bfloat16 memory
    meets float32 weights and ``sam2`` fails on the CPU; converting on read gives the same
    numbers where the predictor works and a result where it does not.
    """

    def __init__(self, outputs: dict[int, dict[str, Any]]) -> None:
        self._outputs = outputs

    def __getitem__(self, frame: int) -> dict[str, Any]:
        out = self._outputs[frame]
        memory = out["maskmem_features"]
        if memory is None or memory.dtype == torch.float32:
            return out
        return {**out, "maskmem_features": memory.float()}

    def __iter__(self) -> Iterator[int]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


def fill_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """``fill_holes_in_mask_scores``: background components (8-connected, area ≤ max_area)
    of (N, 1, H, W) mask scores set to 0.1, with scipy instead of sam2's CUDA extension."""
    background = (logits <= 0).cpu().numpy()
    out = logits.clone()
    structure = np.ones((3, 3), dtype=bool)
    for index in range(background.shape[0]):
        labels, count = ndimage.label(background[index, 0], structure=structure)
        if count == 0:
            continue
        areas = np.bincount(labels.ravel())
        small = areas <= max_area
        small[0] = False
        holes = small[labels]
        if holes.any():
            out[index, 0][torch.from_numpy(holes).to(out.device)] = HOLE_SCORE
    return out
