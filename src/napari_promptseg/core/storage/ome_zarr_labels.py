"""Labels written into an OME-Zarr image's ``labels/`` group, where NGFF readers look.

:func:`write_labels_into_image` (a whole label image) and :class:`ImageLabelOutput` (plane
by plane, as the batch commands produce them) add ``IMAGE.zarr/labels/NAME/``: a multiscale
label image (one level, ``0``) with ``image-label`` metadata whose ``source.image`` is
``../../`` (the image), and add NAME to the ``labels`` group's list. Its axes are the
image's without ``c``, and its level-0 coordinate transformations the image's without the
channel entry, so the labels overlay the image in physical units.

The NGFF version and zarr format follow the image's: NGFF 0.5 on zarr v3 (what ome-zarr-py
writes by default; metadata under ``"ome"`` in ``zarr.json``) or NGFF 0.4 on zarr v2
(``.zattrs``, ``"labels"`` at the top level, chunks ``/``-separated). Older versions are
refused: write a stand-alone label image instead (:func:`~.ome_zarr.write_labels_ome_zarr`).

Atomic, and the image is not touched: the label group is written in a hidden folder inside
``labels/`` (``.NAME.<uuid>.part``) and renamed into place; the ``labels`` list is then
replaced in one rename of its metadata file, which is the moment readers see the new label.
On any failure the label group, the list and the table stay as they were (a ``labels/``
group created for this label is removed again). No file outside ``labels/`` is written
inside the image. An existing label of that name is refused unless ``overwrite=True``.
A consolidated-metadata file at the image root (if any) is not updated.

The objects table goes beside the image, as for a stand-alone label image: ``cells.ome.zarr``
with label ``nuclei`` → ``cells_nuclei_objects.csv`` (:func:`image_labels_csv_path`). It is
kept out of the zarr hierarchy, where zarr tools do not copy or list files they do not know,
and one image may carry several labels, each with its own table.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ExportError, ImageError
from ..labels import smallest_dtype_for
from .export import label_image_for_export, write_objects_csv
from .label_output import _STAGED, LabelOutput, ZarrLabelOutput, open_label_output
from .ome_zarr import label_chunks, ome_objects_csv_path, open_zarr_image

SUPPORTED_VERSIONS = ("0.4", "0.5")
LABELS_GROUP = "labels"
Colors = Mapping[int, Sequence[int]]


@dataclass(frozen=True)
class ImageLabelTarget:
    """Where and how a label of an OME-Zarr image is written (its image's metadata, read).

    Attributes
    ----------
    image
        The image's folder (``IMAGE.zarr``).
    name
        The label's name, its folder in ``labels/``.
    version
        The image's NGFF version: ``"0.5"`` (zarr v3) or ``"0.4"`` (zarr v2).
    shape
        The label image's shape: the image's level 0 without its channel axis.
    axes
        NGFF axes of the label image (the image's, without ``c``).
    transforms
        Level-0 ``coordinateTransformations`` of the label image.
    """

    image: Path
    name: str
    version: str
    shape: tuple[int, ...]
    axes: tuple[dict[str, Any], ...]
    transforms: tuple[dict[str, Any], ...]

    @property
    def zarr_format(self) -> Literal[2, 3]:
        return 3 if self.version == "0.5" else 2

    @property
    def group(self) -> Path:
        return self.image / LABELS_GROUP

    @property
    def path(self) -> Path:
        return self.group / self.name

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(str(axis["name"]) for axis in self.axes)

    @property
    def table(self) -> Path:
        return image_labels_csv_path(self.image, self.name)

    def group_files(self) -> tuple[str, ...]:
        """The zarr metadata files of the ``labels`` group (the last one holds the list)."""
        return ("zarr.json",) if self.zarr_format == 3 else (".zgroup", ".zattrs")

    def label_attributes(self, colors: Colors | None = None) -> dict[str, Any]:
        """The attributes of the label group (``multiscales`` + ``image-label``)."""
        image_label: dict[str, Any] = {"source": {"image": "../../"}}
        if colors:
            image_label["colors"] = [
                {"label-value": int(value), "rgba": [int(c) for c in rgba]}
                for value, rgba in colors.items()
            ]
        multiscale: dict[str, Any] = {
            "name": self.name,
            "axes": [dict(axis) for axis in self.axes],
            "datasets": [
                {"path": "0", "coordinateTransformations": [dict(t) for t in self.transforms]}
            ],
        }
        if self.version == "0.5":
            return {
                "ome": {
                    "version": "0.5",
                    "multiscales": [multiscale],
                    "image-label": image_label,
                }
            }
        return {
            "multiscales": [{"version": self.version, **multiscale}],
            "image-label": {"version": self.version, **image_label},
        }

    def listed(self) -> list[str]:
        """The names in the ``labels`` group's list (empty when there is no group yet)."""
        attrs = _read_attributes(self.group, self.zarr_format)
        ome = attrs.get("ome") if self.zarr_format == 3 else attrs
        names = ome.get("labels") if isinstance(ome, dict) else None
        return [str(n) for n in names] if isinstance(names, list) else []

    def group_metadata(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The ``labels`` group's metadata files (name → JSON) listing ``names``, with its
        other attributes kept."""
        files = {name: _read_json(self.group / name) for name in self.group_files()}
        if self.zarr_format == 3:
            meta = files["zarr.json"] or {"zarr_format": 3, "node_type": "group"}
            attributes = dict(meta.get("attributes") or {})
            ome = dict(attributes.get("ome") or {})
            ome.update({"version": self.version, "labels": list(names)})
            attributes["ome"] = ome
            return {"zarr.json": {**meta, "attributes": attributes}}
        attrs = dict(files[".zattrs"] or {})
        attrs["labels"] = list(names)
        return {".zgroup": files[".zgroup"] or {"zarr_format": 2}, ".zattrs": attrs}


def image_labels_csv_path(image: str | os.PathLike, name: str) -> Path:
    """The objects table of label ``name`` of ``cells.ome.zarr``: ``cells_name_objects.csv``."""
    beside = ome_objects_csv_path(image)  # cells_objects.csv
    return beside.with_name(f"{beside.name[: -len('_objects.csv')]}_{name}_objects.csv")


def check_label_name(name: str) -> str:
    """``name`` checked as the name of a folder in ``labels/``.

    Raises
    ------
    ExportError
        Empty, ``.``/``..``, starting with a dot, or holding a path separator.
    """
    if not isinstance(name, str) or not name.strip():
        raise ExportError("a label name cannot be empty.")
    if "/" in name or "\\" in name or os.sep in name:
        raise ExportError(f"label name {name!r} cannot hold '/' or '\\': it names one folder.")
    if name.startswith("."):
        raise ExportError(f"label name {name!r} cannot start with '.'.")
    return name


def image_label_target(
    image: str | os.PathLike,
    name: str,
    shape: Sequence[int] | None = None,
    *,
    overwrite: bool = False,
    axes: Sequence[str] | None = None,
) -> ImageLabelTarget:
    """Check that label ``name`` of ``shape`` can be written into the OME-Zarr ``image``.

    Parameters
    ----------
    shape
        The label image's shape; it must be the image's without the channel axis.
    axes
        The label image's axis names, when the caller has them; they must be the image's
        without ``c``.

    Raises
    ------
    ExportError
        Not an OME-Zarr image (or a label image, or an NGFF version other than 0.4/0.5), a
        bad name, a shape or axes that do not match, or an existing label without
        ``overwrite``.
    """
    name = check_label_name(name)
    image = Path(image)
    ome, version, zarr_format = _image_metadata(image)
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not isinstance(multiscales, list) or not multiscales:
        raise ExportError(
            f"{image} is not an OME-Zarr image (no 'multiscales' metadata): labels can only "
            "be added to one; write a stand-alone label image (-o LABELS.ome.zarr) instead."
        )
    if "image-label" in ome:
        raise ExportError(f"{image} is itself a label image; give the path of its image.")
    if version not in SUPPORTED_VERSIONS or (version == "0.5") != (zarr_format == 3):
        raise ExportError(
            f"{image} is an OME-Zarr of NGFF version {version} on zarr v{zarr_format}; labels "
            "can be added to NGFF 0.5 (zarr v3) and 0.4 (zarr v2) images. Write a "
            "stand-alone label image (-o LABELS.ome.zarr) instead."
        )
    try:
        opened = open_zarr_image(image)
    except ImageError as error:
        raise ExportError(f"cannot add labels to {image}: {error}") from None
    assert opened.axes is not None  # multiscales metadata: axes checked by open_zarr_image
    channel = opened.channel_axis
    keep = [i for i in range(len(opened.axes)) if i != channel]
    label_shape = tuple(int(opened.data.shape[i]) for i in keep)
    if shape is not None and tuple(int(n) for n in shape) != label_shape:
        raise ExportError(
            f"labels of shape {tuple(shape)} do not fit {image}: its image is "
            f"{tuple(opened.data.shape)} ({', '.join(opened.axes)}), so its labels must be "
            f"{label_shape} ({', '.join(opened.axes[i] for i in keep)})."
        )
    names = tuple(opened.axes[i] for i in keep)
    if axes is not None and tuple(a for a in axes if a != "c") != names:
        raise ExportError(
            f"labels with axes ({', '.join(axes)}) do not fit {image}, whose labels have axes "
            f"({', '.join(names)})."
        )
    scale = multiscales[0]
    axis_meta = tuple(
        dict(axis) if isinstance(axis, dict) else {"name": str(axis)}
        for i, axis in enumerate(scale["axes"])
        if i != channel
    )
    target = ImageLabelTarget(
        image, name, version, label_shape, axis_meta, _level0_transforms(scale, keep)
    )
    if target.path.exists() and not overwrite:
        raise ExportError(
            f"{image} already has a label {name!r} ({target.path}); choose another name, or "
            "remove that folder first (from Python: overwrite=True)."
        )
    if target.path.exists() and not target.path.is_dir():
        raise ExportError(f"cannot write {target.path}: a file of that name exists.")
    return target


class ImageLabelOutput(ZarrLabelOutput):
    """Label ``name`` of an OME-Zarr image, filled plane by plane (see :class:`LabelOutput`).

    Planes go to disk as they arrive, in a hidden group inside the image's ``labels/``;
    :meth:`finish` publishes the label, its entry in the ``labels`` list and its objects
    table (beside the image) together, or none of them (module docstring).
    """

    def __init__(
        self,
        image: str | os.PathLike,
        name: str,
        planes_shape: tuple[int, ...],
        plane_shape: tuple[int, int],
        *,
        max_id: int | None = None,
        overwrite: bool = False,
        colors: Colors | None = None,
        axes: Sequence[str] | None = None,
    ) -> None:
        import zarr

        shape = (*planes_shape, *plane_shape)
        target = image_label_target(image, name, shape, overwrite=overwrite, axes=axes)
        LabelOutput.__init__(self, target.path, planes_shape, plane_shape, max_id)
        self.target = target
        self.axes = target.axis_names
        self.overwrite = overwrite
        self.colors = _check_colors(colors)
        self.staged = target.group / f".{target.name}.{uuid.uuid4().hex}.part"
        self._created_group = not target.group.exists()
        try:
            if self._created_group:  # a valid, empty labels group while the planes come
                target.group.mkdir()
                _write_group_metadata(target, target.group_metadata([]))
            self._group = zarr.open_group(
                store=str(self.staged), mode="w-", zarr_format=target.zarr_format
            )
            if max_id is None:
                self._array = self._create(_STAGED, np.dtype(np.uint32))
            else:
                self._array = self._create("0", smallest_dtype_for(max_id))
        except OSError as error:
            self.discard()
            raise ExportError(f"cannot write {target.path}: {_reason(error)}.") from error

    def _create(self, name: str, dtype: np.dtype) -> Any:
        options: dict[str, Any] = {"dimension_names": self.axes}
        if self.target.zarr_format == 2:  # NGFF 0.4: "/"-separated chunk keys, no names
            options = {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
        return self._group.create_array(
            name,
            shape=self.shape,
            dtype=dtype,
            chunks=label_chunks(self.shape),
            fill_value=0,
            **options,
        )

    def _publish(
        self, rows: list[Mapping[str, Any]], offsets: dict[tuple[int, ...], int], largest: int
    ) -> tuple[Path, Path]:
        try:
            if self.max_id is None:
                self._apply_offsets(offsets, largest)
            elif any(offsets.values()):
                raise ExportError("offsets are for outputs opened without max_id.")
            self._group.attrs.update(self.target.label_attributes(self.colors))
        except OSError as error:
            self.discard()
            raise ExportError(f"cannot write {self.path}: {_reason(error)}.") from error
        except BaseException:
            self.discard()
            raise
        try:
            publish_into_image(self.staged, self.target, rows, overwrite=self.overwrite)
        except BaseException:
            self.discard()
            raise
        return self.path, self.target.table

    def discard(self) -> None:
        shutil.rmtree(self.staged, ignore_errors=True)
        if self._created_group:  # remove the labels group again if it holds only its metadata
            group = self.target.group
            with contextlib.suppress(OSError):
                if set(os.listdir(group)) <= set(self.target.group_files()):
                    shutil.rmtree(group)
        LabelOutput.discard(self)


def open_output(
    output: str | os.PathLike | None,
    planes_shape: tuple[int, ...],
    plane_shape: tuple[int, int],
    *,
    image: str | os.PathLike,
    into_image: str | None = None,
    axes: Sequence[str] | None = None,
    max_id: int | None = None,
) -> LabelOutput:
    """The batch commands' writer: label ``into_image`` of ``image`` when given (``--into-image``),
    else :func:`~.label_output.open_label_output` for ``output``."""
    if into_image is not None:
        return ImageLabelOutput(image, into_image, planes_shape, plane_shape, max_id=max_id)
    assert output is not None, "an output path or a label name"
    return open_label_output(output, planes_shape, plane_shape, axes=axes, max_id=max_id)


def write_labels_into_image(
    image_path: str | os.PathLike,
    name: str,
    labels: np.ndarray,
    rows: Iterable[Mapping[str, Any]],
    axes: Sequence[str] | None = None,
    *,
    overwrite: bool = False,
    colors: Colors | None = None,
) -> tuple[Path, Path]:
    """Write ``labels`` as label ``name`` of the OME-Zarr image ``image_path``, atomically.

    Parameters
    ----------
    labels
        Integer ids, the image's shape without its channel axis; stored as uint16 when they
        fit, else uint32.
    rows
        The objects table, written to ``IMAGE_NAME_objects.csv`` beside the image.
    axes
        The labels' axis names, if known: checked against the image's (without ``c``).
    overwrite
        Replace an existing label of that name (else refused).
    colors
        Optional ``{label value: (r, g, b, a)}`` (0-255), written as ``image-label`` colors.

    Returns
    -------
    (label group path ``IMAGE.zarr/labels/NAME``, objects table path)

    Raises
    ------
    ExportError
        See :func:`image_label_target`; or writing failed, in which case nothing changed.
    """
    data = label_image_for_export(labels)
    if data.ndim < 2:
        raise ExportError(f"a label image needs at least 2 dimensions; got {data.shape}.")
    top = int(data.max()) if data.size else 0
    planes_shape = tuple(data.shape[:-2])
    plane_shape = (int(data.shape[-2]), int(data.shape[-1]))
    with ImageLabelOutput(
        image_path,
        name,
        planes_shape,
        plane_shape,
        max_id=top,
        overwrite=overwrite,
        colors=colors,
        axes=axes,
    ) as output:
        for plane in product(*map(range, planes_shape)):
            output.write(plane, data[plane])
        return output.finish(list(rows))


def publish_into_image(
    staged: Path,
    target: ImageLabelTarget,
    rows: list[Mapping[str, Any]],
    *,
    overwrite: bool = False,
) -> None:
    """Put the complete label group ``staged`` at ``target.path``, list it, write its table.

    Order: the table and the new ``labels`` list are written to hidden files first; then an
    old label of that name (``overwrite``) is moved aside, the new one renamed into place,
    the list's metadata file replaced (readers see the label from here), and the table
    renamed over the old one. On failure each step done is undone in reverse: the old
    label, list and table stay. ``staged`` is removed either way.

    Raises
    ------
    ExportError
        The label exists and ``overwrite`` is false, or writing / renaming failed.
    """
    group = target.group
    table = target.table
    tag = uuid.uuid4().hex
    staged_table = table.parent / f".{table.name}.{tag}.part"
    aside = group / f".{target.name}.{tag}.old"
    names = target.listed()
    if target.name not in names:
        names.append(target.name)
    new_meta = target.group_metadata(names)
    old_meta = {name: (group / name).read_bytes() for name in new_meta if (group / name).is_file()}
    staged_meta = {name: group / f".{name}.{tag}.part" for name in new_meta}
    placed = listed = False
    try:
        if target.path.exists() and not overwrite:
            raise ExportError(f"{target.image} already has a label {target.name!r}.")
        write_objects_csv(staged_table, rows)
        for name, meta in new_meta.items():
            staged_meta[name].write_text(json.dumps(meta, indent=2), "utf-8")
        if target.path.exists():
            os.rename(target.path, aside)  # the old label stays whole until the new is in
        os.rename(staged, target.path)
        placed = True
        for name in new_meta:  # the list (.zattrs / zarr.json) last: the commit point
            os.replace(staged_meta[name], group / name)
        listed = True
        os.replace(staged_table, table)
    except OSError as error:
        _undo(target, aside, old_meta, placed=placed, listed=listed)
        if isinstance(error, ExportError):
            raise
        raise ExportError(f"cannot write {target.path}: {_reason(error)}.") from error
    except BaseException:
        _undo(target, aside, old_meta, placed=placed, listed=listed)
        raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
        for path in (staged_table, *staged_meta.values()):
            with contextlib.suppress(OSError):
                path.unlink()


def _undo(
    target: ImageLabelTarget,
    aside: Path,
    old_meta: Mapping[str, bytes],
    *,
    placed: bool,
    listed: bool,
) -> None:
    """Put back the label, list and table :func:`publish_into_image` had replaced."""
    with contextlib.suppress(OSError):
        if listed:
            for name in target.group_files():
                if name in old_meta:
                    _atomic_write(target.group / name, old_meta[name])
        if placed:
            shutil.rmtree(target.path)
        if aside.exists() and not target.path.exists():
            os.rename(aside, target.path)


def _image_metadata(image: Path) -> tuple[dict[str, Any], str, int]:
    """(OME attributes, NGFF version, zarr format) of the group at ``image``.

    Raises
    ------
    ExportError
        Not a zarr group.
    """
    if not image.is_dir():
        why = "it is a file" if image.exists() else "no such folder"
        raise ExportError(f"{image} is not an OME-Zarr image: {why}.")
    v3 = _read_json(image / "zarr.json")
    if v3 is not None:
        if v3.get("node_type") != "group":
            raise ExportError(f"{image} is not an OME-Zarr image: it is a zarr array.")
        ome = (v3.get("attributes") or {}).get("ome")
        ome = ome if isinstance(ome, dict) else {}
        return ome, str(ome.get("version", "")), 3
    if (image / ".zgroup").is_file():
        attrs = _read_json(image / ".zattrs") or {}
        scales = attrs.get("multiscales")
        first = scales[0] if isinstance(scales, list) and scales else {}
        version = first.get("version", "") if isinstance(first, dict) else ""
        return attrs, str(version), 2
    raise ExportError(f"{image} is not an OME-Zarr image: no zarr group metadata in it.")


def _level0_transforms(scale: Mapping[str, Any], keep: Sequence[int]) -> tuple[dict, ...]:
    """The image's level-0 transformations with only the ``keep`` axes (unit scale when
    they are not plain vectors, e.g. stored in a file)."""
    n = len(scale.get("axes") or [])
    datasets = scale.get("datasets") or [{}]
    kept: list[dict[str, Any]] = []
    for transform in datasets[0].get("coordinateTransformations") or []:
        kind = transform.get("type") if isinstance(transform, dict) else None
        values = transform.get(kind) if kind in ("scale", "translation") else None
        if not isinstance(values, list) or len(values) != n:
            return ({"type": "scale", "scale": [1.0] * len(keep)},)
        kept.append({"type": kind, str(kind): [values[i] for i in keep]})
    if not kept or kept[0]["type"] != "scale":  # NGFF: a scale comes first
        return ({"type": "scale", "scale": [1.0] * len(keep)},)
    return tuple(kept)


def _check_colors(colors: Colors | None) -> dict[int, tuple[int, ...]] | None:
    if not colors:
        return None
    checked: dict[int, tuple[int, ...]] = {}
    for value, rgba in colors.items():
        channels = tuple(int(c) for c in rgba)
        if len(channels) != 4 or not all(0 <= c <= 255 for c in channels):
            raise ExportError(f"label color {value}: rgba must be 4 values 0-255; got {rgba}.")
        checked[int(value)] = channels
    return checked


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot read {path}: {error}") from None
    return data if isinstance(data, dict) else None


def _read_attributes(group: Path, zarr_format: int) -> dict[str, Any]:
    if zarr_format == 3:
        return dict((_read_json(group / "zarr.json") or {}).get("attributes") or {})
    return _read_json(group / ".zattrs") or {}


def _write_group_metadata(target: ImageLabelTarget, files: Mapping[str, Mapping]) -> None:
    for name, meta in files.items():
        _atomic_write(target.group / name, json.dumps(meta, indent=2).encode("utf-8"))


def _atomic_write(path: Path, data: bytes) -> None:
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        staged.write_bytes(data)
        os.replace(staged, path)
    finally:
        with contextlib.suppress(OSError):
            staged.unlink()


def _reason(error: OSError) -> str:
    return error.strerror or str(error).split(": ", 1)[-1]
