"""zarr and OME-Zarr images in (lazily) and label images out, as the field exchanges them.

Reading: :func:`open_zarr_image` opens a plain zarr array, a zarr group holding one, or an
OME-Zarr image (NGFF 0.4 on zarr v2, NGFF 0.5 on zarr v3) as a *dask* array: nothing is read
until a plane is asked for, so a screen or a volume larger than memory is never loaded
whole. A multiscale image gives its full-resolution level (``datasets[0]``) for
segmentation; the lowest level is kept for cheap contrast estimates, as napari does.

Writing: :func:`write_labels_ome_zarr` writes a label image as an OME-Zarr (NGFF 0.5, zarr
v3) with the objects table beside it as CSV, both atomically (a hidden temporary folder
renamed into place), so an interrupted run never leaves half a label image.

Why the NGFF metadata is written here with the ``zarr`` package and not with ``ome-zarr``
(ome-zarr-py): the metadata of one multiscale label image is a few lines of JSON, while
ome-zarr-py 0.18 brings s3fs/aiohttp, scikit-image and a pydantic pin that conflicts with
napari's; and it writes in place, which cannot be made atomic. Reading handles both NGFF
versions in use (0.4 and 0.5).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, ImageError
from .export import label_image_for_export, write_objects_csv

ZARR_SUFFIXES = (".zarr",)
NGFF_VERSION = "0.5"
SPATIAL = ("y", "x")
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_MARKERS = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


@dataclass(eq=False)
class ZarrImage:
    """An image in a zarr / OME-Zarr store, opened lazily.

    Attributes
    ----------
    data
        The full-resolution level as a dask array, axes in ``axes`` order.
    axes
        Axis names (``("t", "c", "z", "y", "x")``...); for a plain zarr array without OME
        metadata, ``None`` (the last two axes are taken as y, x like any array).
    channel_axis
        Index of the ``c`` axis in ``data``, or None.
    lowest
        The lowest-resolution level (the same as ``data`` when there is one level).
    levels
        How many resolution levels the image has.
    """

    data: Any
    axes: tuple[str, ...] | None
    channel_axis: int | None
    lowest: Any
    levels: int
    path: Path


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a zarr store (a ``.zarr`` name, or a folder with zarr metadata)."""
    path = Path(path)
    if path.suffix.lower() in ZARR_SUFFIXES:
        return True
    return path.is_dir() and any((path / marker).is_file() for marker in _MARKERS)


def open_zarr_image(path: str | os.PathLike) -> ZarrImage:
    """Open a zarr array, a group with one array, or an OME-Zarr image, without reading pixels.

    Raises
    ------
    ImageError
        Not a zarr store, no array in it, or OME metadata whose axes do not end in y, x
        (the message names the axes found).
    """
    import dask.array as da
    import zarr

    path = Path(path)
    if not path.exists():
        raise ImageError(f"image {path} does not exist.")
    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as error:
        raise ImageError(f"cannot open {path} as zarr: {error}") from None
    if isinstance(node, zarr.Array):
        data = da.from_zarr(node)
        return ZarrImage(data, None, None, data, 1, path)
    attrs = dict(node.attrs)
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else attrs
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        if len(arrays) != 1:
            raise ImageError(
                f"{path} is a zarr group without OME-Zarr 'multiscales' metadata and "
                f"{'no array' if not arrays else f'{len(arrays)} arrays'}; give the path of "
                "one array (e.g. image.zarr/0)."
            )
        data = da.from_zarr(node[arrays[0]])
        return ZarrImage(data, None, None, data, 1, path)
    scale = multiscales[0]
    datasets = [d["path"] for d in scale.get("datasets", []) if isinstance(d, dict)]
    if not datasets:
        raise ImageError(f"OME-Zarr {path}: its multiscales metadata lists no datasets.")
    try:
        levels = [da.from_zarr(node[name]) for name in datasets]
    except KeyError as error:
        raise ImageError(f"OME-Zarr {path}: dataset {error} is missing.") from None
    axes = ome_axes(scale.get("axes"), levels[0].ndim, path)
    channel_axis = axes.index("c") if "c" in axes else None
    return ZarrImage(levels[0], axes, channel_axis, levels[-1], len(levels), path)


def ome_axes(axes: object, ndim: int, path: Path) -> tuple[str, ...]:
    """Axis names of NGFF metadata (0.4/0.5: dicts with ``name``; 0.3: strings), checked.

    Raises
    ------
    ImageError
        Missing axes, a count that differs from the array's dimensions, or last two axes
        that are not y, x.
    """
    if axes is None:
        if ndim in (2, 3, 4, 5):  # NGFF 0.1/0.2 had no axes: always (t, c, z, y, x)
            return ("t", "c", "z", "y", "x")[-ndim:]
        raise ImageError(f"OME-Zarr {path}: no axes metadata for a {ndim}D image.")
    names = []
    for axis in axes if isinstance(axes, list) else []:
        name = axis.get("name") if isinstance(axis, dict) else axis
        names.append(str(name).lower())
    if len(names) != ndim:
        raise ImageError(
            f"OME-Zarr {path}: its metadata names {len(names)} axes ({', '.join(names) or 'none'}) "
            f"but the array has {ndim} dimensions."
        )
    if tuple(names[-2:]) != SPATIAL:
        raise ImageError(
            f"OME-Zarr {path} has axes ({', '.join(names)}); expected the last two to be y, x "
            "(NGFF order t, c, z, y, x). Rewrite it with y, x last."
        )
    return tuple(names)


# -- writing ---------------------------------------------------------------------------------


def labels_axes(ndim: int, axes: Sequence[str] | None = None) -> tuple[str, ...]:
    """Axis names for a label image of ``ndim`` dimensions: ``axes`` without ``c``, or
    (y, x), (z, y, x), (t, z, y, x) by count."""
    if axes is not None:
        names = tuple(a for a in axes if a != "c")
        if len(names) == ndim:
            return names
    default = ("t", "z", "y", "x")[-ndim:] if ndim <= 4 else None
    return default or tuple(f"dim_{i}" for i in range(ndim - 2)) + SPATIAL


def ome_objects_csv_path(path: str | os.PathLike) -> Path:
    """The objects table beside ``cells.ome.zarr`` / ``cells.zarr``: ``cells_objects.csv``."""
    path = Path(path)
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}_objects.csv")


def write_labels_ome_zarr(
    path: str | os.PathLike,
    labels: np.ndarray,
    rows: Iterable[Mapping[str, Any]] | None = None,
    *,
    axes: Sequence[str] | None = None,
    name: str | None = None,
    objects_path: str | os.PathLike | None = None,
) -> tuple[Path, Path | None]:
    """Write ``labels`` as an OME-Zarr label image (NGFF 0.5), and the objects table beside it.

    Parameters
    ----------
    labels
        (..., H, W) integer ids; stored as uint16 when they fit, else uint32 (as the tif).
    rows
        Objects-table rows; written to ``<name>_objects.csv`` beside ``path`` when given.
    axes
        Names of the axes (default by count: y x / z y x / t z y x).

    Returns
    -------
    (labels path, objects table path or None)

    Raises
    ------
    ExportError
        The folder is missing or unwritable, or the target is a file. Nothing is half
        written: the previous label image and table (if any) stay until the new ones are
        complete.
    """
    import zarr

    path = check_label_target(path)
    data = label_image_for_export(labels)
    if data.ndim < 2:
        raise ExportError(f"a label image needs at least 2 dimensions; got {data.shape}.")
    names = labels_axes(data.ndim, axes)
    table = Path(objects_path) if objects_path is not None else ome_objects_csv_path(path)
    staged = staging_path(path)
    try:
        group = zarr.open_group(store=str(staged), mode="w-", zarr_format=3)
        array = group.create_array(
            "0",
            shape=data.shape,
            dtype=data.dtype,
            chunks=label_chunks(data.shape),
            dimension_names=names,
        )
        array[...] = data
        group.attrs.update({"ome": ngff_label_metadata(names, name or path.name)})
    except OSError as error:
        shutil.rmtree(staged, ignore_errors=True)
        detail = error.strerror or str(error).split(": ", 1)[-1]
        raise ExportError(f"cannot write {path}: {detail}.") from error
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    publish_label_image(staged, path, None if rows is None else list(rows), table)
    return path, (table if rows is not None else None)


def check_label_target(path: str | os.PathLike) -> Path:
    """``path`` checked as the target of an OME-Zarr label image (before any work).

    Raises
    ------
    ExportError
        Not a ``.zarr`` name, its folder is missing, or a file has that name.
    """
    path = Path(path)
    if path.suffix.lower() not in ZARR_SUFFIXES:
        raise ExportError(f"OME-Zarr label images must end in .zarr (e.g. .ome.zarr); got {path}.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: the folder {folder} does not exist.")
    if path.exists() and not path.is_dir():
        raise ExportError(f"cannot write {path}: a file of that name exists.")
    return path


def staging_path(path: Path) -> Path:
    """A hidden, unique folder beside ``path`` where its new version is written first."""
    folder = path.parent if str(path.parent) else Path(".")
    return folder / f".{path.name}.{uuid.uuid4().hex}.part"


def label_chunks(shape: Sequence[int]) -> tuple[int, ...]:
    """One chunk per plane, tiles of at most 1024 px: planes are written independently."""
    return (1,) * (len(shape) - 2) + tuple(min(int(s), 1024) for s in shape[-2:])


def publish_label_image(
    staged: Path, path: Path, rows: list[Mapping[str, Any]] | None, table: Path
) -> None:
    """Put the complete label image ``staged`` in place of ``path``, with its objects table.

    The table is written first beside its target; then the old image (if any) is moved
    aside, the new one renamed into place, and the table renamed over the old table. On
    failure the old image and table stay; ``staged`` is removed either way.

    Raises
    ------
    ExportError
        Writing or renaming failed (naming ``path`` and why).
    """
    folder = path.parent if str(path.parent) else Path(".")
    staged_table = folder / f".{table.name}.{uuid.uuid4().hex}.part"
    aside = folder / f".{path.name}.{uuid.uuid4().hex}.old"
    try:
        if rows is not None:
            write_objects_csv(staged_table, rows)
        if path.exists():
            os.rename(path, aside)  # the old image stays whole until the new one is in place
        os.rename(staged, path)
        if rows is not None:
            os.replace(staged_table, table)
    except OSError as error:
        if aside.exists() and not path.exists():
            with contextlib.suppress(OSError):
                os.rename(aside, path)
        detail = error.strerror or str(error).split(": ", 1)[-1]
        raise ExportError(f"cannot write {path}: {detail}.") from error
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
        with contextlib.suppress(OSError):
            staged_table.unlink()


def ngff_label_metadata(axes: Sequence[str], name: str) -> dict[str, Any]:
    """The ``ome`` attribute of a one-level NGFF 0.5 label image with ``axes``."""
    return {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": [_axis(a) for a in axes],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0] * len(axes)}
                        ],
                    }
                ],
            }
        ],
        "image-label": {"source": {"image": "../../"}},
    }


def read_ome_zarr_labels(path: str | os.PathLike) -> np.ndarray:
    """The full-resolution label image of an OME-Zarr (for tests and small images)."""
    return np.asarray(open_zarr_image(path).data)


def ome_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``ome`` attributes of a zarr v3 group (its zarr.json), as JSON."""
    meta = json.loads((Path(path) / "zarr.json").read_text("utf-8"))
    ome: dict[str, Any] = meta.get("attributes", {}).get("ome", {})
    return ome


def _axis(name: str) -> dict[str, str]:
    kind = _AXIS_TYPES.get(name)
    return {"name": name, "type": kind} if kind else {"name": name}


LABEL_OUTPUT_SUFFIXES = (".tif", ".tiff", ".zarr")


def write_label_output(
    path: str | os.PathLike,
    labels: np.ndarray,
    rows: Iterable[Mapping[str, Any]],
    *,
    axes: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """A label image and its objects table: ``.tif`` (+ ``_objects.csv``) or ``.zarr``
    (OME-Zarr, + ``_objects.csv``), both files new or neither."""
    from .export import write_labels_and_objects

    path = Path(path)
    if path.suffix.lower() in ZARR_SUFFIXES:
        written, table = write_labels_ome_zarr(path, labels, list(rows), axes=axes)
        assert table is not None
        return written, table
    return write_labels_and_objects(path, labels, rows)
