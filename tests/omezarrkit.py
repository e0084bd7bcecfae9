"""OME-Zarr images as ome-zarr-py writes them, and reading them back with its reader."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings

import zarr
from ome_zarr import writer as ome_writer
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

FORMATS = {"0.5": FormatV05, "0.4": FormatV04}


def write_image(path, data, axes, version="0.5"):
    """An OME-Zarr image as ome-zarr-py writes it (a pyramid, its default metadata)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3 if version == "0.5" else 2)
    ome_writer.write_image(data, group, axes=axes, fmt=FORMATS[version]())
    return path


def checksums(image):
    """sha256 of every file of ``image`` outside its labels/ group."""
    sums = {}
    for root, _dirs, files in os.walk(image):
        rel = os.path.relpath(root, image)
        if rel.split(os.sep)[0] == "labels":
            continue
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                sums[os.path.join(rel, name)] = hashlib.sha256(file.read()).hexdigest()
    return sums


def tree(path):
    return sorted(
        os.path.relpath(os.path.join(root, name), path)
        for root, dirs, files in os.walk(path)
        for name in files + dirs
    )


def read_nodes(path, version, caplog):
    """ome-zarr-py's nodes of ``path``, checking it warned of nothing (no 'no parent found')."""
    with caplog.at_level(logging.WARNING, logger="ome_zarr"), warnings.catch_warnings():
        warnings.simplefilter("error")
        nodes = list(Reader(parse_url(str(path), fmt=FORMATS[version]()))())
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("ome_zarr")]
    assert not [m for m in messages if "no parent found" in m.lower()], messages
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], messages
    return nodes
