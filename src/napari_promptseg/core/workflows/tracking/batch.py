"""Tracking without a GUI: prompts on some frames of a stack → every object through the stack.

The unit of work of ``promptseg track``. A :class:`TrackTask` names the file (an
:class:`~..distributed.sources.ImageSource`, never pixels) and its objects with their
prompts per frame; :func:`track_task` runs it in this process or on a Dask worker and sends
back each object's masks cut to their bounding boxes (:class:`ObjectTrack`);
:func:`assemble_tracks` paints them into one label stack, never over an earlier object.

Two methods:

* ``"memory"`` (SAM 2.1): :class:`~.memory.MemoryTracker`. Every prompted frame is a
  conditioning frame; each object is tracked from its first prompted frame, through the
  later ones, in the direction(s) asked. All objects of a task step through a frame
  together, so a frame is embedded once per pass whatever the cache holds.
* ``"box-point"`` (every family): our plane-by-plane propagation
  (:func:`~..propagation.propagate.iter_propagate`). Each prompted frame's decoded mask is
  propagated forward up to the object's next prompted frame; frames before the first
  prompt come from propagating it backward.

``"auto"`` picks memory for SAM 2.1 and box-point otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import PromptError
from ...models.families import SAM2_1
from ...sam.engine import PromptSegmenter
from ...sam.prompts import Prompts
from ..distributed.sources import ImageSource
from ..propagation.propagate import propagate
from .memory import DIRECTIONS, MemoryTracker

METHODS = ("auto", "memory", "box-point")


@dataclass(frozen=True)
class TrackedObject:
    """One object of a tracking job: its label id, its name, its prompts by frame."""

    obj_id: int
    name: str
    prompts: tuple[tuple[int, Prompts], ...]  # (frame, prompts), frames ascending

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(frame for frame, _ in self.prompts)


@dataclass(frozen=True)
class TrackTask:
    """Track ``objects`` through the frames of ``source`` (a (T, H, W[, C]) stack)."""

    source: ImageSource
    objects: tuple[TrackedObject, ...]
    direction: str = "both"
    max_frames: int | None = None
    method: str = "auto"


@dataclass(frozen=True)
class FrameCrop:
    """An object's mask on one frame, cut to its bounding box, and the model's score there
    (SAM 2.1's object-score logit for memory, the predicted IoU for box-point)."""

    top: int
    left: int
    mask: np.ndarray  # (h, w) bool
    score: float

    @classmethod
    def of(cls, mask: np.ndarray, score: float) -> FrameCrop | None:
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            return None
        top, left = int(rows.min()), int(cols.min())
        crop = mask[top : rows.max() + 1, left : cols.max() + 1].copy()
        return cls(top, left, crop, float(score))


@dataclass(frozen=True)
class ObjectTrack:
    """What :func:`track_task` sends back for one object."""

    obj_id: int
    name: str
    method: str
    prompted: tuple[int, ...]
    frames: dict[int, FrameCrop] = field(default_factory=dict)
    stops: dict[str, str] = field(default_factory=dict)


def tracking_method(segmenter: PromptSegmenter, method: str) -> str:
    """``method`` resolved for this model: ``"memory"`` or ``"box-point"``."""
    if method not in METHODS:
        raise PromptError(f"--method must be one of {', '.join(METHODS)}; got {method!r}.")
    if method == "auto":
        return "memory" if segmenter.family == SAM2_1 else "box-point"
    return method


def track_task(segmenter: PromptSegmenter, task: TrackTask) -> list[ObjectTrack]:
    """Run one :class:`TrackTask` (module level: Dask pickles it by name)."""
    planes = task.source.planes()
    n_frames = len(planes)

    def frame_rgb(index: int) -> np.ndarray:
        return planes.rgb(planes.labels[index])

    method = tracking_method(segmenter, task.method)
    if method == "memory":
        return _track_with_memory(segmenter, frame_rgb, n_frames, task)
    return [_track_box_point(segmenter, frame_rgb, n_frames, task, obj) for obj in task.objects]


def _track_with_memory(
    segmenter: PromptSegmenter,
    frame_rgb: Callable[[int], np.ndarray],
    n_frames: int,
    task: TrackTask,
) -> list[ObjectTrack]:
    tracker = MemoryTracker(segmenter, frame_rgb, n_frames)
    for obj in task.objects:
        for frame, prompts in obj.prompts:
            tracker.add_prompts(frame, obj.obj_id, prompts)
    run = tracker.propagate(
        [obj.obj_id for obj in task.objects], direction=task.direction, max_frames=task.max_frames
    )
    tracks = []
    for obj in task.objects:
        crops = {}
        for frame, result in run.masks.get(obj.obj_id, {}).items():
            crop = FrameCrop.of(result.mask, result.object_score)
            if crop is not None:
                crops[frame] = crop
        tracks.append(
            ObjectTrack(
                obj.obj_id,
                obj.name,
                "memory",
                obj.frames,
                dict(sorted(crops.items())),
                dict(run.stops.get(obj.obj_id, {})),
            )
        )
    return tracks


def _track_box_point(
    segmenter: PromptSegmenter,
    frame_rgb: Callable[[int], np.ndarray],
    n_frames: int,
    task: TrackTask,
    obj: TrackedObject,
) -> ObjectTrack:
    crops: dict[int, FrameCrop] = {}
    stops: dict[str, str] = {}
    frames = obj.frames
    for number, (frame, prompts) in enumerate(obj.prompts):
        result = segmenter.segment(frame_rgb(frame), prompts)
        mask = result.masks[result.best]
        crop = FrameCrop.of(mask, float(result.iou[result.best]))
        if crop is None:
            stops[f"frame {frame}"] = "the prompts gave an empty mask"
            continue
        crops[frame] = crop
        walks = []
        if task.direction in ("both", "forward"):
            gap = (frames[number + 1] if number + 1 < len(frames) else n_frames) - frame - 1
            walks.append(("forward", gap))
        if task.direction in ("both", "backward") and number == 0:
            walks.append(("backward", frame))
        for direction, room in walks:
            steps = room if task.max_frames is None else min(room, int(task.max_frames))
            if steps <= 0:
                continue
            done = propagate(
                segmenter,
                frame_rgb,
                frame,
                mask,
                n_planes=n_frames,
                direction=direction,
                max_steps=steps,
            )
            for plane in done.planes:
                crop = FrameCrop.of(plane.mask, plane.predicted_iou)
                if crop is not None:
                    crops[plane.index] = crop
            for why in done.stops.values():
                stops[f"{direction} from frame {frame}"] = why
    return ObjectTrack(
        obj.obj_id, obj.name, "box-point", frames, dict(sorted(crops.items())), stops
    )


def track_tasks(
    source: ImageSource,
    objects: Sequence[TrackedObject],
    *,
    per_object: bool,
    direction: str = "both",
    max_frames: int | None = None,
    method: str = "auto",
) -> list[TrackTask]:
    """One task for all objects (one process: frames shared), or one per object (Dask)."""
    if direction not in DIRECTIONS:
        raise PromptError(f"--direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}.")
    if method not in METHODS:
        raise PromptError(f"--method must be one of {', '.join(METHODS)}; got {method!r}.")
    groups = [(obj,) for obj in objects] if per_object else [tuple(objects)]
    return [TrackTask(source, group, direction, max_frames, method) for group in groups]


def assemble_tracks(
    tracks: Iterable[ObjectTrack],
    shape: tuple[int, int, int],
    *,
    overwrite: bool = False,
    dtype: Any = np.uint32,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Paint tracks (in id order) into a ``(T, H, W)`` label stack; one row per object and frame.

    An object never paints over an earlier one unless ``overwrite``; the pixels it loses
    that way are counted in its rows (``area`` is what it holds in the stack).
    """
    labels = np.zeros(shape, dtype=dtype)
    rows = []
    for track in sorted(tracks, key=lambda t: t.obj_id):
        for frame, crop in track.frames.items():
            window = labels[
                frame,
                crop.top : crop.top + crop.mask.shape[0],
                crop.left : crop.left + crop.mask.shape[1],
            ]
            paint = crop.mask if overwrite else crop.mask & (window == 0)
            window[paint] = track.obj_id
            rows.append(
                {
                    "id": track.obj_id,
                    "name": track.name,
                    "frame": frame,
                    "area": int(np.count_nonzero(paint)),
                    "score": round(crop.score, 4),
                    "prompted": frame in track.prompted,
                    "method": track.method,
                }
            )
    return labels, rows
