"""What a memory propagation gives back: one object on one frame, progress, and the run."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FrameMask:
    """One object on one frame.

    Attributes
    ----------
    frame
        Index along the tracked axis.
    obj_id
        The object (label id).
    mask
        (H, W) bool, the frame's rows and columns.
    object_score
        SAM 2.1's object-score logit: above 0 the model sees the object on this frame.
    """

    frame: int
    obj_id: int
    mask: np.ndarray
    object_score: float

    @property
    def present(self) -> bool:
        return self.object_score > 0

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass(frozen=True)
class TrackStep:
    """Progress of :meth:`MemoryTracker.iter_propagate`: ``done`` of ``total`` frame visits.

    ``result`` is the frame's mask when it was kept (None where the object was lost), so a
    caller can show or write frames as they come.
    """

    done: int
    total: int
    frame: int
    obj_id: int
    direction: str
    message: str
    result: FrameMask | None = None


@dataclass
class TrackRun:
    """What a propagation returns.

    Attributes
    ----------
    masks
        obj_id → frame → :class:`FrameMask`, for every frame visited in this run (prompted
        frames included); frames where the object was lost are not among them.
    stops
        obj_id → direction → why it stopped (the stack's end, the object lost, cancel).
    """

    masks: dict[int, dict[int, FrameMask]] = field(default_factory=dict)
    stops: dict[int, dict[str, str]] = field(default_factory=dict)
    cancelled: bool = False

    def summary(self) -> str:
        """One line per object: how many frames, and why each direction stopped."""
        lines = []
        for obj_id in sorted(set(self.masks) | set(self.stops)):
            frames = sorted(self.masks.get(obj_id, {}))
            head = f"object {obj_id}: {len(frames)} frame(s)"
            if frames:
                head += f" ({frames[0]}–{frames[-1]})"
            why = "; ".join(f"{d}: {r}" for d, r in self.stops.get(obj_id, {}).items())
            lines.append(f"{head}; {why}" if why else head)
        return "\n".join(lines) if lines else "nothing tracked"
