"""The napari side of the automatic modes (AIS / APG): planes of a layer, worker steps.

No Qt: the "Segment everything" panel runs these in its worker.
"""

from __future__ import annotations

from ..core.workflows.instances.modes import instances_as_result
from .slices import SliceRef, slice_rgb


def stack_axis(ref: SliceRef) -> int | None:
    """The slider axis next to the displayed ones (z of (t, z, y, x)), or None in 2D."""
    sliders = [axis for axis, position in enumerate(ref.index) if position is not None]
    return sliders[-1] if sliders else None


def ref_at(ref: SliceRef, axis: int, index: int) -> SliceRef:
    positions = list(ref.index)
    positions[axis] = int(index)
    return SliceRef(tuple(positions), ref.displayed)


class PlanesAlong:
    """The planes along ``axis`` as SAM input, converted when indexed (in the worker)."""

    def __init__(self, snapshot, ref: SliceRef, axis: int, count: int) -> None:
        self._snapshot, self._ref, self._axis, self._count = snapshot, ref, axis, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int):
        if not 0 <= index < self._count:
            raise IndexError(index)
        return slice_rgb(self._snapshot, ref_at(self._ref, self._axis, index))


def iter_instances(segmenter, rgb, mode: str, params):
    """AIS or APG on ``rgb`` in a worker: (done, total) steps, then an EverythingResult.

    A plane larger than ``TILE_ABOVE`` goes by micro-sam's tiles (one step per tile)."""
    from ..core.workflows.distributed.instance_tasks import instances_for
    from ..core.workflows.instances.tiles import tile_layout

    instances = instances_for(segmenter)  # the decoder is read once per model
    layout = tile_layout(rgb.shape[:2])
    # whole: the session embedded the plane shown, so its embedding is cached
    result = yield from instances.iter_plane(rgb, params, layout)
    assert result is not None  # only should_cancel makes it None, and none is given
    labels, maps = result
    return instances_as_result(labels, maps.foreground, segmenter.key_for(rgb), mode)
