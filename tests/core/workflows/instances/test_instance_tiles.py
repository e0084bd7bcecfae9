"""AIS / APG by tiles: micro-sam's layout, stitched maps, cancelling, stacks, and the demo
model segmenting a plane larger than one embedding.

Identity with micro-sam's ``Tiled*`` classes is in test_instances_fidelity.py; here the
layout is checked against bioimage_cpp's ``Blocking`` (the values below were printed by
``Blocking([0, 0], [700, 1000], [300, 400]).get_block_with_halo(i, [50, 60])`` in
micro-sam's venv) and the demo model shows that tiles keep objects whole across borders.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_promptseg.core.errors import ImageError
from napari_promptseg.core.sam.image import to_rgb_uint8
from napari_promptseg.core.workflows.finetune.instance_validation import match_instances
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells
from napari_promptseg.core.workflows.instances import InstanceSegmenter
from napari_promptseg.core.workflows.instances.ais import run_steps
from napari_promptseg.core.workflows.instances.tiles import (
    DEFAULT_HALO,
    DEFAULT_TILE_SHAPE,
    TileLayout,
    tile_layout,
)

# (inner begin, inner end, outer begin, outer end, inner in outer begin, end) per block
BLOCKING = [
    ([0, 0], [300, 400], [0, 0], [350, 460], [0, 0], [300, 400]),
    ([0, 400], [300, 800], [0, 340], [350, 860], [0, 60], [300, 460]),
    ([0, 800], [300, 1000], [0, 740], [350, 1000], [0, 60], [300, 260]),
    ([300, 0], [600, 400], [250, 0], [650, 460], [50, 0], [350, 400]),
    ([300, 400], [600, 800], [250, 340], [650, 860], [50, 60], [350, 460]),
    ([300, 800], [600, 1000], [250, 740], [650, 1000], [50, 60], [350, 260]),
    ([600, 0], [700, 400], [550, 0], [700, 460], [50, 0], [150, 400]),
    ([600, 400], [700, 800], [550, 340], [700, 860], [50, 60], [150, 460]),
    ([600, 800], [700, 1000], [550, 740], [700, 1000], [50, 60], [150, 260]),
]


def _corners(slices):
    return [s.start for s in slices], [s.stop for s in slices]


def test_layout_is_micro_sams_blocking():
    layout = TileLayout((700, 1000), (300, 400), (50, 60))
    assert len(layout) == len(BLOCKING)
    for block, expected in zip(layout.blocks, BLOCKING, strict=True):
        got = (*_corners(block.inner), *_corners(block.outer), *_corners(block.inner_local))
        assert got == expected, block.index
    # coordinates_to_block_id([650, 999]) == 8, ([299, 400]) == 1 in bioimage_cpp
    assert layout.block_at(650, 999).index == 8 and layout.block_at(299, 400).index == 1
    with pytest.raises(ImageError, match="outside"):
        layout.block_at(700, 0)


def test_layout_choice_and_bad_tiles():
    assert tile_layout((2048, 900)) is None  # one embedding
    auto = tile_layout((300, 2100))
    assert auto is not None and (auto.tile_shape, auto.halo) == (DEFAULT_TILE_SHAPE, DEFAULT_HALO)
    assert max(auto.blocks[1].outer_shape) == 1024  # 768 + 2 x 128: SAM's input, not downscaled
    given = tile_layout((100, 100), (64, 64))
    assert given is not None and given.halo == DEFAULT_HALO and len(given) == 4
    with pytest.raises(ImageError, match="at least 16"):
        TileLayout((100, 100), (8, 64), (0, 0))
    with pytest.raises(ImageError, match="negative"):
        TileLayout((100, 100), (64, 64), (-1, 0))
    with pytest.raises(ImageError, match="needs a tile shape"):
        tile_layout((100, 100), None, (8, 8))


@pytest.fixture(scope="module")
def demo():
    return InstanceSegmenter.load("demo", offline=True, progress=False, device="cpu")


def _f1(truth, labels):
    best, matched, found = match_instances(truth, labels)
    return 2 * matched / (len(best) + found), float(np.mean(best))


@pytest.fixture(scope="module")
def nuclei():
    sample = synthetic_cells(7_000_011, (330, 450), kind="nuclei")  # held out from training
    return to_rgb_uint8(sample.image), sample.labels  # as the widget and the CLI convert it


def test_small_tiles_keep_objects_whole(demo, nuclei):
    """Tiles of 128 px cut many nuclei; the stitched maps and one watershed keep them whole,
    so the score stays that of the whole plane."""
    rgb, truth = nuclei
    whole_f1, _ = _f1(truth, demo.ais(rgb))
    tiled = demo.ais(rgb, tile_shape=(128, 128), halo=(32, 32))
    f1, mean_iou = _f1(truth, tiled)
    assert f1 >= 0.6 and mean_iou >= 0.55, (f1, mean_iou, whole_f1)
    assert f1 >= whole_f1 - 0.1, (f1, whole_f1)
    cut = [int(np.unique(truth[:, c - 1 : c + 1]).size) for c in (128, 256, 384)]
    assert min(cut) > 1  # nuclei do lie across the tile borders


def test_tiled_run_reports_steps_and_cancels(demo, nuclei):
    rgb, _ = nuclei
    layout = TileLayout(rgb.shape[:2], (128, 128), (16, 16))
    steps = []
    result = run_steps(demo.iter_plane(rgb, layout=layout), lambda d, t: steps.append((d, t)))
    assert result is not None and steps[-1] == (len(layout) + 1, len(layout) + 1)
    other = TileLayout(rgb.shape[:2], (96, 96), (16, 16))  # not cached yet
    asked = []

    def should_cancel():
        asked.append(1)
        return len(asked) > 2

    assert run_steps(demo.iter_plane(rgb, layout=other, should_cancel=should_cancel)) is None


def test_tiled_stack_is_merged_across_planes(demo, nuclei):
    rgb, _ = nuclei
    stack = np.stack([rgb, np.roll(rgb, 2, axis=1)])
    result = demo.ais_stack(stack, tile_shape=(160, 160), halo=(32, 32))
    assert result.planes_done == 2 and result.labels.shape == (2, *rgb.shape[:2])
    per_plane = sum(len(np.unique(p)) - 1 for p in result.labels)
    assert 0 < len(np.unique(result.labels)) - 1 < per_plane  # nuclei merged in z
