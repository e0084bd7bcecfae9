"""Writing (and reading back) a tracking graph as GEFF, the format motile-tracker reads.

One node per (track, frame) the track is present on, with the axis properties (``t``,
``[z,]`` ``y``, ``x``: frame index and centroid in pixels), ``area`` (pixels), ``track_id``
and ``seg_id`` (both the label id in the stack). Directed edges link a track's consecutive
nodes in time (across a gap too) and a parent's last node to each daughter's first node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ExportError
from .lineage import Lineage, LineageError, Track, measure

NODE_PROPS = ("area", "track_id", "seg_id")
"""Node properties besides the axes."""


def geff_graph(
    labels: np.ndarray, lineage: Lineage, axis_names: Sequence[str]
) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[tuple[int, int], dict[str, Any]]]]:
    """The nodes and edges :func:`write_geff` writes, as ``(id, props)`` pairs.

    Node ids count from 0 in (track id, frame) order; edges are ``((source, target), {})``.
    """
    lineage.validate(labels)
    nodes: list[tuple[int, dict[str, Any]]] = []
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    edges: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for node, (track_id, t, centroid, area) in enumerate(measure(labels)):
        props: dict[str, Any] = {axis_names[0]: t}
        props.update({name: float(v) for name, v in zip(axis_names[1:], centroid, strict=True)})
        props.update(area=area, track_id=track_id, seg_id=track_id)
        nodes.append((node, props))
        if track_id in last:
            edges.append(((last[track_id], node), {}))
        first.setdefault(track_id, node)
        last[track_id] = node
    for track in lineage.tracks.values():
        if track.parent:
            edges.append(((last[track.parent], first[track.id]), {}))
    return nodes, edges


def write_geff(
    path: str | os.PathLike,
    labels: np.ndarray,
    lineage: Lineage,
    *,
    axis_names: Sequence[str] = ("t", "y", "x"),
    scale: Sequence[float] | None = None,
) -> Path:
    """Write the lineage of a label stack as a GEFF zarr group (zarr format 2).

    Parameters
    ----------
    path
        The GEFF folder to create (e.g. ``tracks.geff``); it must not exist. The group is
        written into a temporary sibling folder, validated by geff, then renamed.
    labels
        ``(T, Y, X)`` or ``(T, Z, Y, X)`` integer label stack, time on axis 0.
    lineage
        Its lineage.
    axis_names
        One name per axis of ``labels``, time first: ``("t", "y", "x")`` or
        ``("t", "z", "y", "x")``.
    scale
        Optional size of one step per axis (e.g. minutes per frame, µm per pixel), stored
        as the axes' ``scale``; the node positions stay in frames and pixels.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LineageError
        ``axis_names`` or ``scale`` do not match the dimensions, or the lineage does not
        describe ``labels``.
    ExportError
        ``path`` exists, its parent is missing, or writing fails.
    """
    from geff.core_io import write_dicts
    from geff_spec import Axis, GeffMetadata

    path = Path(path)
    labels = np.asarray(labels)
    names = [str(n) for n in axis_names]
    if len(names) != labels.ndim or labels.ndim not in (3, 4):
        raise LineageError(
            f"axis_names {tuple(names)} do not match a label stack of shape {labels.shape}: "
            "give one name per axis, time first, e.g. ('t', 'y', 'x') or ('t', 'z', 'y', 'x')."
        )
    if scale is not None and len(scale) != labels.ndim:
        raise LineageError(f"scale {tuple(scale)} needs one value per axis {tuple(names)}.")
    if path.exists():
        raise ExportError(f"cannot write {path}: it exists; choose a new path.")
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: the folder {path.parent} does not exist.")
    nodes, edges = geff_graph(labels, lineage, names)
    steps: list[float | None] = list(scale) if scale is not None else [None] * len(names)
    axes = [
        Axis(
            name=name,
            type="time" if i == 0 else "space",
            unit="frame" if i == 0 else None,
            scale=None if step is None else float(step),
        )
        for i, (name, step) in enumerate(zip(names, steps, strict=True))
    ]
    metadata = GeffMetadata(
        directed=True,
        axes=axes,
        node_props_metadata={},
        edge_props_metadata={},
        track_node_props={"tracklet": "track_id"},
    )
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}.") from exc
    target = staging / "graph"
    try:
        write_dicts(target, nodes, edges, [*names, *NODE_PROPS], [], metadata)
        os.replace(target, path)
    except BaseException as exc:
        if isinstance(exc, (OSError, ValueError)):
            raise ExportError(f"cannot write {path}: {exc}") from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return path


def read_geff(path: str | os.PathLike) -> Lineage:
    """The lineage in a GEFF written by :func:`write_geff` (or any GEFF whose nodes have
    ``t`` and ``track_id``): each track's first and last ``t``, and a parent for each track
    whose first node has an incoming edge from another track's node."""
    import geff

    graph, metadata = geff.read(str(path))
    time = metadata.axes[0].name if metadata.axes else "t"
    spans: dict[int, list[int]] = {}
    for _, props in graph.nodes(data=True):
        spans.setdefault(int(props["track_id"]), []).append(int(props[time]))
    parents: dict[int, int] = {}
    for source, target in graph.edges():
        a, b = graph.nodes[source]["track_id"], graph.nodes[target]["track_id"]
        if a != b:
            parents[int(b)] = int(a)
    lineage = Lineage(
        Track(key, min(ts), max(ts), parents.get(key, 0)) for key, ts in sorted(spans.items())
    )
    lineage.validate()
    return lineage
