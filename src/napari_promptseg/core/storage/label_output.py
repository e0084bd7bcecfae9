"""A label image written plane by plane as results arrive, published whole at the end.

The batch commands get one plane's labels at a time, in any order (a Dask cluster returns
planes as they finish). :func:`open_label_output` gives a writer for the output the user
named:

* ``.zarr`` (OME-Zarr): each plane is written into a hidden staging group beside the
  target as it arrives, so the command holds one plane, never the stack; at the end the
  NGFF metadata and the objects table are added and the group is renamed into place
  (:func:`~.ome_zarr.publish_label_image`). Interrupted or failed, the staging group is
  removed and the previous output (if any) stays as it was.
* ``.tif``: tifffile writes a whole image at once, so the stack is assembled in memory and
  written atomically at the end (:func:`~.export.write_labels_and_objects`), as before.

Ids per plane: when the largest id is known up front (``max_id``: ``promptseg segment``,
whose ids come from the prompt tables) planes are written once, in the final dtype. When it
is not (segment everything: ids continue from plane to plane, so a plane's ids are known
only when every earlier plane has finished), planes are staged with their own ids 1..N as
uint32, and :meth:`LabelOutput.finish` shifts each by its plane's offset while rewriting it
once into the smallest dtype that holds the ids (uint16 when they fit, as for tif) — one
plane in memory at a time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from itertools import product
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..errors import ExportError
from ..labels import smallest_dtype_for
from .ome_zarr import (
    ZARR_SUFFIXES,
    check_label_target,
    label_chunks,
    labels_axes,
    ngff_label_metadata,
    ome_objects_csv_path,
    publish_label_image,
    staging_path,
)

Plane = tuple[int, ...]  # indices along the leading axes; () for a 2D image
_STAGED = "staged"  # the array of per-plane ids, before the offsets are applied


class LabelOutput:
    """A label image of ``planes_shape + plane_shape`` filled plane by plane (base class).

    Use as a context manager: leaving the block with an error (Ctrl-C included) before
    :meth:`finish` discards everything written, and no output appears.
    """

    def __init__(
        self,
        path: Path,
        planes_shape: tuple[int, ...],
        plane_shape: tuple[int, int],
        max_id: int | None,
    ) -> None:
        self.path = path
        self.planes_shape = tuple(int(n) for n in planes_shape)
        self.plane_shape = (int(plane_shape[0]), int(plane_shape[1]))
        self.max_id = max_id
        self._written: dict[Plane, int] = {}  # plane → its largest id as written
        self._done = False

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.planes_shape, *self.plane_shape)

    def write(self, plane: Plane, labels: np.ndarray) -> None:
        """Put ``labels`` ((H, W) non-negative integer ids) at ``plane``.

        Raises
        ------
        ExportError
            Wrong shape, a plane outside the image, or the disk refused the write.
        """
        plane = tuple(int(i) for i in plane)
        labels = np.asarray(labels)
        if labels.shape != self.plane_shape or len(plane) != len(self.planes_shape):
            raise ExportError(
                f"plane {plane} of shape {labels.shape} does not fit the label image {self.shape}."
            )
        if any(not 0 <= i < n for i, n in zip(plane, self.planes_shape, strict=True)):
            raise ExportError(f"plane {plane} is outside the label image {self.shape}.")
        self._written[plane] = int(labels.max()) if labels.size else 0
        self._put(plane, labels)

    def finish(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        offsets: Mapping[Plane, int] | None = None,
    ) -> tuple[Path, Path]:
        """Shift each plane's ids by ``offsets[plane]`` (0 stays 0), write the objects table
        and publish both; returns (label image path, objects table path)."""
        offsets = dict(offsets or {})
        largest = max(
            (top + offsets.get(plane, 0) for plane, top in self._written.items() if top),
            default=0,
        )
        written = self._publish(list(rows), offsets, largest)
        self._done = True
        return written

    def discard(self) -> None:
        """Drop everything written; nothing appears at :attr:`path`."""
        self._done = True

    def __enter__(self) -> LabelOutput:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if not self._done:
            self.discard()

    # -- what a kind of output does -----------------------------------------------------

    def _put(self, plane: Plane, labels: np.ndarray) -> None:
        raise NotImplementedError

    def _publish(
        self, rows: list[Mapping[str, Any]], offsets: dict[Plane, int], largest: int
    ) -> tuple[Path, Path]:
        raise NotImplementedError


class ZarrLabelOutput(LabelOutput):
    """OME-Zarr (NGFF 0.5, zarr v3): planes go to disk as they arrive (module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike,
        planes_shape: tuple[int, ...],
        plane_shape: tuple[int, int],
        *,
        axes: Sequence[str] | None = None,
        max_id: int | None = None,
    ) -> None:
        import zarr

        target = check_label_target(path)
        super().__init__(target, planes_shape, plane_shape, max_id)
        self.axes = labels_axes(len(self.shape), axes)
        self.staged = staging_path(target)
        try:
            self._group = zarr.open_group(store=str(self.staged), mode="w-", zarr_format=3)
            if max_id is None:  # ids per plane now, shifted at the end
                self._array = self._create(_STAGED, np.dtype(np.uint32))
            else:
                self._array = self._create("0", smallest_dtype_for(max_id))
        except OSError as error:
            self.discard()
            raise ExportError(f"cannot write {target}: {error.strerror or error}.") from error

    def _create(self, name: str, dtype: np.dtype) -> Any:
        return self._group.create_array(
            name,
            shape=self.shape,
            dtype=dtype,
            chunks=label_chunks(self.shape),
            dimension_names=self.axes,
            fill_value=0,
        )

    def _put(self, plane: Plane, labels: np.ndarray) -> None:
        if self.max_id is not None and self._written[plane] > self.max_id:
            raise ExportError(f"plane {plane} holds id {self._written[plane]} > {self.max_id}.")
        try:
            self._array[plane] = labels.astype(self._array.dtype, copy=False)
        except OSError as error:
            raise ExportError(f"cannot write {self.path}: {error.strerror or error}.") from error

    def _publish(
        self, rows: list[Mapping[str, Any]], offsets: dict[Plane, int], largest: int
    ) -> tuple[Path, Path]:
        try:
            if self.max_id is None:
                self._apply_offsets(offsets, largest)
            elif any(offsets.values()):
                raise ExportError("offsets are for outputs opened without max_id.")
            self._group.attrs.update({"ome": ngff_label_metadata(self.axes, self.path.name)})
        except OSError as error:
            self.discard()
            raise ExportError(f"cannot write {self.path}: {error.strerror or error}.") from error
        except BaseException:
            self.discard()
            raise
        table = ome_objects_csv_path(self.path)
        publish_label_image(self.staged, self.path, rows, table)
        return self.path, table

    def _apply_offsets(self, offsets: dict[Plane, int], largest: int) -> None:
        """Rewrite the staged planes, shifted, into the final array "0"; one plane at a time."""
        staged = self._array
        final = self._create("0", smallest_dtype_for(largest))
        for plane in product(*map(range, self.planes_shape)):
            if not self._written.get(plane):
                continue  # never written, or no object: the fill value, 0
            data = np.asarray(staged[plane]).astype(final.dtype)
            data[data > 0] += offsets.get(plane, 0)
            final[plane] = data
        del self._group[_STAGED]
        self._array = final

    def discard(self) -> None:
        shutil.rmtree(self.staged, ignore_errors=True)
        super().discard()


class MemoryLabelOutput(LabelOutput):
    """A tif: the stack in memory, written atomically with its table at the end."""

    def __init__(
        self,
        path: str | os.PathLike,
        planes_shape: tuple[int, ...],
        plane_shape: tuple[int, int],
        *,
        max_id: int | None = None,
    ) -> None:
        super().__init__(Path(path), planes_shape, plane_shape, max_id)
        dtype = np.uint32 if max_id is None else smallest_dtype_for(max_id)
        self.labels: np.ndarray | None = np.zeros(self.shape, dtype=dtype)

    def _put(self, plane: Plane, labels: np.ndarray) -> None:
        assert self.labels is not None, "the output was finished or discarded"
        self.labels[plane] = labels

    def _publish(
        self, rows: list[Mapping[str, Any]], offsets: dict[Plane, int], largest: int
    ) -> tuple[Path, Path]:
        from .export import write_labels_and_objects

        labels = self.labels
        assert labels is not None, "the output was finished or discarded"
        if largest > np.iinfo(labels.dtype).max:
            labels = labels.astype(smallest_dtype_for(largest))
        for plane, shift in offsets.items():
            if shift:
                view = labels[plane]
                view[view > 0] += shift
        written = write_labels_and_objects(self.path, labels, rows)
        self.labels = None
        return written

    def discard(self) -> None:
        self.labels = None
        super().discard()


def open_label_output(
    path: str | os.PathLike,
    planes_shape: tuple[int, ...],
    plane_shape: tuple[int, int],
    *,
    axes: Sequence[str] | None = None,
    max_id: int | None = None,
) -> LabelOutput:
    """The writer for ``path``: OME-Zarr for a ``.zarr`` name, else a tif (module docstring).

    Parameters
    ----------
    planes_shape, plane_shape
        Sizes of the leading (plane) axes (``()`` for a 2D image) and (H, W).
    axes
        The input's OME axes (the labels get them without ``c``), for OME-Zarr.
    max_id
        The largest id any plane will hold, when known; None: planes are numbered 1..N
        each and shifted by :meth:`LabelOutput.finish`'s ``offsets``.
    """
    if Path(path).suffix.lower() in ZARR_SUFFIXES:
        return ZarrLabelOutput(path, planes_shape, plane_shape, axes=axes, max_id=max_id)
    return MemoryLabelOutput(path, planes_shape, plane_shape, max_id=max_id)
