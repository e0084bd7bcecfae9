"""The parameters of segment everything: ``SamAutomaticMaskGenerator``'s, with its defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any

from ...errors import PromptError


@dataclass(frozen=True)
class EverythingParams:
    """``SamAutomaticMaskGenerator``'s parameters, with its defaults and meanings."""

    points_per_side: int = 32  # grid of points_per_side² single-point prompts
    points_per_batch: int = 64  # points decoded together (memory vs speed)
    pred_iou_thresh: float = 0.88  # keep masks whose predicted IoU is above this
    stability_score_thresh: float = 0.95  # keep masks at least this stable
    stability_score_offset: float = 1.0  # logit offset of the stability score
    box_nms_thresh: float = 0.7  # box IoU above which a less confident mask is a duplicate
    crop_n_layers: int = 0  # run again on (2^i)² crops for i = 1..crop_n_layers
    crop_nms_thresh: float = 0.7  # duplicates across crops (smaller crops win)
    crop_overlap_ratio: float = 512 / 1500  # overlap of the first crop layer's crops
    crop_n_points_downscale_factor: int = 1  # crop layer i gets points_per_side / factor^i
    min_mask_region_area: int = 0  # fill holes and drop islands smaller than this (pixels)

    def validate(self) -> None:
        """Raise :class:`PromptError` naming the first bad parameter."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise PromptError(f"segment everything: {message}")

        for item in fields(self):
            value = getattr(self, item.name)
            integer = item.type in ("int", int)
            need(
                isinstance(value, Integral if integer else Real) and not isinstance(value, bool),
                f"{item.name} must be {'an integer' if integer else 'a number'}; got {value!r}.",
            )
            need(math.isfinite(value), f"{item.name} must be finite; got {value!r}.")
        need(self.points_per_side >= 1, f"points_per_side must be ≥ 1; got {self.points_per_side}.")
        need(self.points_per_batch >= 1, "points_per_batch must be ≥ 1.")
        for name in ("pred_iou_thresh", "stability_score_thresh"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1].")
        for name in ("box_nms_thresh", "crop_nms_thresh"):
            need(0 < getattr(self, name) <= 1, f"{name} must be in (0, 1].")
        need(self.stability_score_offset > 0, "stability_score_offset must be > 0.")
        need(self.crop_n_layers >= 0, "crop_n_layers must be ≥ 0.")
        need(0 <= self.crop_overlap_ratio < 1, "crop_overlap_ratio must be in [0, 1).")
        need(
            self.crop_n_points_downscale_factor >= 1, "crop_n_points_downscale_factor must be ≥ 1."
        )
        last = self.points_per_side // self.crop_n_points_downscale_factor**self.crop_n_layers
        need(
            last >= 1,
            f"crop layer {self.crop_n_layers} would get no points: points_per_side "
            f"{self.points_per_side} / {self.crop_n_points_downscale_factor}^{self.crop_n_layers} < 1.",
        )
        need(self.min_mask_region_area >= 0, "min_mask_region_area must be ≥ 0.")

    def upstream_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SamAutomaticMaskGenerator`` giving the same results."""
        return {item.name: getattr(self, item.name) for item in fields(self)}
