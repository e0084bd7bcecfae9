"""SAM 2.1's video memory through the frames of a stack (z or t), on our cached embeddings.

What it does is ``SAM2VideoPredictor`` of ``sam2`` 1.1: the same bookkeeping per object
(prompted frames are conditioning frames; every other frame is tracked with memory
attention over the conditioning frames, the six most recent tracked frames and up to 16
object pointers; its mask is encoded into memory for the frames after it) and the same
model calls (``SAM2Base.track_step``, ``_encode_new_memory``), so the masks are the
predictor's for the same weights, frames and prompts.

What differs is where the image features come from. The predictor keeps every frame as a
(3, 1024, 1024) float tensor (12 MiB a frame) and runs the image encoder again whenever a
frame is visited. Here a frame's features are its :class:`ImageEmbedding` from the
segmenter (memory cache, disk store, or one encoder run), the same embedding a click on
that frame decodes from, so an embedded frame is never encoded again and a re-propagation
costs memory attention, the decoder and the memory encoder only. The state held per object
and frame is the predictor's compact output: memory features (bfloat16, 512 KiB), the
low-resolution mask logits (256 KiB), the object pointer and score.

Objects are independent, as in ``sam2`` 1.1 (``propagate_in_video`` runs them one by one).
A track ends where the object score falls below 0 (the model's "no object" threshold):
with ``stop_when_lost`` the direction stops there and the run says where and why.

The predictor fills small holes (``fill_hole_area=8``) with a CUDA extension and skips it
on the CPU; here the same rule (background components of 8-connectivity up to that area
get score 0.1) runs with scipy everywhere. ``fill_hole_area=0`` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ...errors import PromptError
from ...models.families import SAM2_1
from ...sam.embedding import ImageEmbedding
from ...sam.engine import PromptSegmenter
from ...sam.families.base import FamilyError
from ...sam.prompts import Prompts, to_sam_prompts
from .memory_state import ObjectState, fill_holes
from .results import FrameMask, TrackRun, TrackStep

DIRECTIONS = ("both", "forward", "backward")
MEMORY_FAMILIES = ("SAM 2.1",)
LOW_RES_CLAMP = 32.0  # previous logits fed back with a correction are clamped as upstream


class MemoryTracker:
    """Follow objects through the frames of a stack with SAM 2.1's memory.

    Parameters
    ----------
    segmenter
        A SAM 2.1 segmenter; its cache (and store) give every frame's features.
    frame_rgb
        frame index → (H, W, 3) uint8 image as SAM sees it; every frame the same size.
    n_frames
        Frames along the tracked axis.
    fill_hole_area
        Background specks up to this area (low-resolution pixels) become object, as
        ``SAM2VideoPredictor``'s ``fill_hole_area`` (8 in ``build_sam2_video_predictor``).

    Raises
    ------
    FamilyError
        The model has no video memory (SAM, MobileSAM).
    """

    def __init__(
        self,
        segmenter: PromptSegmenter,
        frame_rgb: Callable[[int], np.ndarray],
        n_frames: int,
        *,
        fill_hole_area: int = 8,
    ) -> None:
        if segmenter.family != SAM2_1:
            raise FamilyError(
                f"memory propagation needs a model with video memory ({', '.join(MEMORY_FAMILIES)}); "
                f"{segmenter.name!r} is a {segmenter.runner.title} model. Load a SAM 2.1 model, "
                "or use the box-and-point propagation, which works with every model."
            )
        if int(n_frames) < 1:
            raise PromptError(f"a stack to track needs at least one frame; got {n_frames}.")
        self.segmenter = segmenter
        self.model: Any = segmenter.sam
        # build_sam2_video_predictor's setting; only the memory encoder reads it, so the
        # shared image model's clicks are unchanged
        self.model.binarize_mask_from_pts_for_mem_enc = True
        self.frame_rgb = frame_rgb
        self.n_frames = int(n_frames)
        self.fill_hole_area = int(fill_hole_area)
        self._objects: dict[int, ObjectState] = {}
        self._frame_size: tuple[int, int] | None = None
        self._pos_embeds: list[torch.Tensor] | None = None
        self._maskmem_pos_enc: list[torch.Tensor] | None = None

    # -- objects and prompts ----------------------------------------------------------------

    @property
    def obj_ids(self) -> list[int]:
        return list(self._objects)

    def prompted_frames(self, obj_id: int) -> list[int]:
        """Frames where ``obj_id`` has prompts or a mask (its conditioning frames)."""
        state = self._object(obj_id, create=False)
        return sorted(set(state.point_inputs) | set(state.mask_inputs))

    def remove_object(self, obj_id: int) -> None:
        self._objects.pop(int(obj_id), None)

    def add_prompts(self, frame: int, obj_id: int, prompts: Prompts) -> FrameMask:
        """Points, a box or scribbles (napari (row, col)) for ``obj_id`` on ``frame``.

        They replace the object's earlier prompts on that frame (``clear_old_points``). On a
        frame tracked before, the tracked mask's logits go in with them: a correction.
        """
        frame = self._check_frame(frame)
        embedding = self._embedding(frame)
        height, width = embedding.original_size
        sam_prompts = to_sam_prompts(prompts, (height, width))
        coords, labels = [], []
        if sam_prompts.box is not None:  # the box first, as its two corners (labels 2, 3)
            coords.append(np.asarray(sam_prompts.box, dtype=np.float32).reshape(2, 2))
            labels.append(np.array([2, 3], dtype=np.int32))
        if sam_prompts.point_coords is not None:
            coords.append(np.asarray(sam_prompts.point_coords, dtype=np.float32).reshape(-1, 2))
            labels.append(np.asarray(sam_prompts.point_labels, dtype=np.int32))
        device = self.segmenter.device
        with torch.inference_mode():
            points = torch.tensor(np.concatenate(coords), dtype=torch.float32)[None]
            points = points / torch.tensor([width, height]) * self.model.image_size
            point_inputs = {
                "point_coords": points.to(device),
                "point_labels": torch.tensor(np.concatenate(labels))[None].to(device),
            }
        state = self._object(obj_id)
        state.point_inputs[frame] = point_inputs
        state.mask_inputs.pop(frame, None)
        return self._add_input(frame, int(obj_id), state, point_inputs=point_inputs)

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> FrameMask:
        """A mask (committed or painted by hand) as ``obj_id``'s prompt on ``frame``."""
        frame = self._check_frame(frame)
        embedding = self._embedding(frame)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != tuple(embedding.original_size):
            raise PromptError(
                f"the mask for object {obj_id} is {mask.shape[0]}x{mask.shape[1]}, frame {frame} "
                f"is {embedding.original_size[0]}x{embedding.original_size[1]}."
            )
        if not mask.any():
            raise PromptError(f"the mask for object {obj_id} on frame {frame} is empty.")
        size = self.model.image_size
        with torch.inference_mode():
            original = torch.from_numpy(mask)[None, None].float().to(self.segmenter.device)
            if mask.shape != (size, size):
                inputs = F.interpolate(
                    original,
                    size=(size, size),
                    align_corners=False,
                    mode="bilinear",
                    antialias=True,
                )
                inputs = (inputs >= 0.5).float()
            else:
                inputs = original
        state = self._object(obj_id)
        state.mask_inputs[frame] = inputs
        state.point_inputs.pop(frame, None)
        return self._add_input(frame, int(obj_id), state, mask_inputs=inputs)

    # -- propagation --------------------------------------------------------------------------

    def iter_propagate(
        self,
        obj_ids: Iterable[int] | None = None,
        *,
        start: int | None = None,
        direction: str = "both",
        max_frames: int | None = None,
        stop_when_lost: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> Generator[TrackStep, None, TrackRun]:
        """Track objects from ``start`` (default: each object's first prompted frame).

        ``direction`` "both" goes forward first, then backward, through the same memory (as
        two ``propagate_in_video`` calls, the second with ``reverse=True``). ``max_frames``
        caps the frames visited per direction after the start. ``should_stop`` returning
        True ends the run after the frame in progress: the run returned holds the frames done
        (``cancelled`` set, the stop reasons say where), and the tracker keeps their memory.
        """
        if direction not in DIRECTIONS:
            raise PromptError(
                f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}."
            )
        ids = [int(i) for i in (self.obj_ids if obj_ids is None else obj_ids)]
        if not ids:
            raise PromptError(
                "nothing to track: give an object prompts or a mask on a frame first."
            )
        for obj_id in ids:
            self._preflight(obj_id)
        if start is not None:
            start = self._check_frame(start)
        firsts = {
            obj_id: start if start is not None else min(self._objects[obj_id].cond)
            for obj_id in ids
        }
        names = ("forward", "backward") if direction == "both" else (direction,)
        orders = {
            (obj_id, name): self._order(firsts[obj_id], name == "backward", max_frames)
            for name in names
            for obj_id in ids
        }
        total = sum(len(order) for order in orders.values())
        run = TrackRun()
        done = 0
        for name in names:
            # frame-outer, as propagate_in_video: all objects step through a frame together,
            # so its embedding is looked up once per frame whatever the cache's size.
            # Objects are independent, so each one's masks are those of a run on its own.
            pending = {obj_id: list(orders[obj_id, name]) for obj_id in ids}
            stops = {
                obj_id: "reached the end of the stack" if order else "nothing in this direction"
                for obj_id, order in pending.items()
            }
            frames = sorted({f for order in pending.values() for f in order})
            for frame in reversed(frames) if name == "backward" else frames:
                for obj_id in ids:
                    order = pending[obj_id]
                    if not order or order[0] != frame:
                        continue
                    if run.cancelled or (should_stop is not None and should_stop()):
                        run.cancelled = True
                        for other, rest in pending.items():
                            if rest:
                                stops[other] = f"cancelled before frame {rest[0]}"
                                rest.clear()
                        break
                    order.pop(0)
                    state = self._objects[obj_id]
                    result = self._track_frame(frame, obj_id, state, name == "backward")
                    done += 1
                    if stop_when_lost and not result.present and frame not in state.cond:
                        stops[obj_id] = (
                            f"object score {result.object_score:.2f} < 0 at frame {frame}: "
                            "the object left the field or ended"
                        )
                        done += len(order)
                        order.clear()
                        message = f"object {obj_id}: {stops[obj_id]}"
                        yield TrackStep(done, total, frame, obj_id, name, message)
                        continue
                    run.masks.setdefault(obj_id, {})[frame] = result
                    message = f"object {obj_id}, frame {frame}"
                    yield TrackStep(done, total, frame, obj_id, name, message, result)
            for obj_id in ids:
                run.stops.setdefault(obj_id, {})[name] = stops[obj_id]
        return run

    def propagate(self, obj_ids: Iterable[int] | None = None, **kwargs: Any) -> TrackRun:
        """:meth:`iter_propagate` run to its end."""
        steps = self.iter_propagate(obj_ids, **kwargs)
        while True:
            try:
                next(steps)
            except StopIteration as finished:
                run: TrackRun = finished.value
                return run

    # -- the predictor's steps ------------------------------------------------------------------

    def _order(self, start: int, reverse: bool, max_frames: int | None) -> list[int]:
        """``propagate_in_video``'s processing order (the start frame included)."""
        limit = self.n_frames if max_frames is None else int(max_frames)
        if reverse:
            end = max(start - limit, 0)
            return list(range(start, end - 1, -1)) if start > 0 else []
        end = min(start + limit, self.n_frames - 1)
        return list(range(start, end + 1))

    def _add_input(
        self,
        frame: int,
        obj_id: int,
        state: ObjectState,
        *,
        point_inputs: dict[str, torch.Tensor] | None = None,
        mask_inputs: torch.Tensor | None = None,
    ) -> FrameMask:
        """``add_new_points_or_box`` / ``add_new_mask`` after the inputs are stored."""
        is_init = frame not in state.tracked
        reverse = False if is_init else state.tracked[frame]
        # add_all_frames_to_correct_as_cond is False in the video predictor's build
        is_cond = is_init
        temp = state.temp_cond if is_cond else state.temp_non_cond
        prev_logits = None
        if point_inputs is not None:
            previous = state.latest(frame)
            if previous is not None and previous["pred_masks"] is not None:
                prev_logits = torch.clamp(previous["pred_masks"], -LOW_RES_CLAMP, LOW_RES_CLAMP)
        out, _ = self._run_frame(
            frame,
            state,
            is_init_cond_frame=is_init,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            reverse=reverse,
            run_mem_encoder=False,
            prev_sam_mask_logits=prev_logits,
        )
        temp[frame] = out
        return self._frame_mask(frame, obj_id, out["pred_masks"], out["object_score_logits"])

    def _preflight(self, obj_id: int) -> None:
        """``propagate_in_video_preflight`` for one object: encode new inputs into memory."""
        state = self._object(obj_id, create=False)
        for temp, outputs in ((state.temp_non_cond, state.non_cond), (state.temp_cond, state.cond)):
            for frame, out in temp.items():
                if out["maskmem_features"] is None:
                    with torch.inference_mode():
                        high_res = F.interpolate(
                            out["pred_masks"],
                            size=(self.model.image_size, self.model.image_size),
                            mode="bilinear",
                            align_corners=False,
                        )
                        feats, _, sizes = self._features(frame)
                        memory, pos_enc = self.model._encode_new_memory(
                            current_vision_feats=feats,
                            feat_sizes=sizes,
                            pred_masks_high_res=high_res,
                            object_score_logits=out["object_score_logits"],
                            is_mask_from_pts=True,
                        )
                    out["maskmem_features"] = memory.to(torch.bfloat16)
                    out["maskmem_pos_enc"] = self._shared_pos_enc(pos_enc)
                outputs[frame] = out
            temp.clear()
        if not state.cond:
            raise PromptError(f"object {obj_id} has no prompts on any frame; add a click first.")
        for frame in state.cond:
            state.non_cond.pop(frame, None)

    def _track_frame(self, frame: int, obj_id: int, state: ObjectState, reverse: bool) -> FrameMask:
        if frame in state.cond:
            out = state.cond[frame]
        else:
            out, _ = self._run_frame(
                frame,
                state,
                is_init_cond_frame=False,
                point_inputs=None,
                mask_inputs=None,
                reverse=reverse,
                run_mem_encoder=True,
            )
            state.non_cond[frame] = out
        state.tracked[frame] = reverse
        return self._frame_mask(frame, obj_id, out["pred_masks"], out["object_score_logits"])

    def _run_frame(
        self,
        frame: int,
        state: ObjectState,
        *,
        is_init_cond_frame: bool,
        point_inputs: dict[str, torch.Tensor] | None,
        mask_inputs: torch.Tensor | None,
        reverse: bool,
        run_mem_encoder: bool,
        prev_sam_mask_logits: torch.Tensor | None = None,
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """``_run_single_frame_inference`` with one object, features from the cache."""
        feats, pos, sizes = self._features(frame)
        with torch.inference_mode():
            current = self.model.track_step(
                frame_idx=frame,
                is_init_cond_frame=is_init_cond_frame,
                current_vision_feats=feats,
                current_vision_pos_embeds=pos,
                feat_sizes=sizes,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                output_dict=state.output_dict(),
                num_frames=self.n_frames,
                track_in_reverse=reverse,
                run_mem_encoder=run_mem_encoder,
                prev_sam_mask_logits=prev_sam_mask_logits,
            )
            memory = current["maskmem_features"]
            if memory is not None:
                memory = memory.to(torch.bfloat16)
            pred_masks = current["pred_masks"]
            if self.fill_hole_area > 0:
                pred_masks = fill_holes(pred_masks, self.fill_hole_area)
        compact = {
            "maskmem_features": memory,
            "maskmem_pos_enc": self._shared_pos_enc(current["maskmem_pos_enc"]),
            "pred_masks": pred_masks,
            "obj_ptr": current["obj_ptr"],
            "object_score_logits": current["object_score_logits"],
        }
        return compact, pred_masks

    def _shared_pos_enc(self, pos_enc: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        """``_get_maskmem_pos_enc``: the same for every frame, so one copy is kept."""
        if pos_enc is None:
            return None
        if self._maskmem_pos_enc is None:
            self._maskmem_pos_enc = [x[0:1].clone() for x in pos_enc]
        return [x.expand(pos_enc[0].size(0), -1, -1, -1) for x in self._maskmem_pos_enc]

    def _features(
        self, frame: int
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[int, int]]]:
        """``_get_image_feature`` → ``_prepare_backbone_features``, from the embedding."""
        embedding = self._embedding(frame)
        maps = [*embedding.high_res_features, embedding.features]
        if self._pos_embeds is None:
            self._pos_embeds = self._positions(maps)
        feats = [x.flatten(2).permute(2, 0, 1) for x in maps]
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in maps]
        return feats, self._pos_embeds, sizes

    def _positions(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The neck's sine position encodings of the three levels: image-independent."""
        encoding = self.model.image_encoder.neck.position_encoding
        with torch.inference_mode():
            return [encoding(x).to(x.dtype).flatten(2).permute(2, 0, 1) for x in maps]

    def _embedding(self, frame: int) -> ImageEmbedding:
        rgb = self.frame_rgb(frame)
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        if self._frame_size is None:
            self._frame_size = size
        elif size != self._frame_size:
            raise PromptError(
                f"frame {frame} is {size[0]}x{size[1]}, the stack's first frame "
                f"{self._frame_size[0]}x{self._frame_size[1]}: every frame must have one size."
            )
        return self.segmenter.embed(rgb, prepare=False)

    def _frame_mask(
        self, frame: int, obj_id: int, low_res: torch.Tensor, score: torch.Tensor
    ) -> FrameMask:
        """``_get_orig_video_res_output``: logits upsampled to the frame, thresholded at 0."""
        assert self._frame_size is not None
        with torch.inference_mode():
            logits = F.interpolate(
                low_res, size=self._frame_size, mode="bilinear", align_corners=False
            )
        return FrameMask(
            frame=frame,
            obj_id=obj_id,
            mask=(logits[0, 0] > 0).cpu().numpy(),
            object_score=float(score.reshape(-1)[0]),
        )

    def _object(self, obj_id: int, create: bool = True) -> ObjectState:
        state = self._objects.get(int(obj_id))
        if state is None:
            if not create:
                raise PromptError(f"object {obj_id} is not tracked; give it prompts first.")
            state = self._objects[int(obj_id)] = ObjectState()
        return state

    def _check_frame(self, frame: int) -> int:
        if not 0 <= int(frame) < self.n_frames:
            raise PromptError(
                f"frame {frame} is outside the stack: it has {self.n_frames} frames "
                f"(0 to {self.n_frames - 1})."
            )
        return int(frame)
