"""Splitting by tile and assembling results as they arrive, without a model or a cluster:
the batch commands cut large planes into the napari session's tiles, read only the tile's
pixels, route prompts as TiledImage does, and paint the same labels in any arrival order."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_promptseg.core import Prompts
from napari_promptseg.core.sam.image import image_fingerprint
from napari_promptseg.core.storage.label_output import MemoryLabelOutput
from napari_promptseg.core.workflows.distributed.assemble import (
    EverythingAssembly,
    PromptedObject,
    SegmentAssembly,
)
from napari_promptseg.core.workflows.distributed.sources import ImageSource
from napari_promptseg.core.workflows.distributed.tasks import (
    ObjectMask,
    PlaneObjects,
    PromptTask,
    embed_tasks,
    prompt_tasks,
    routing_tile,
)
from napari_promptseg.core.workflows.stack import planes_of
from napari_promptseg.core.workflows.tiling import TILE_ABOVE, TiledImage, TileGrid, needs_tiling


def test_the_threshold_is_the_sessions():
    from napari_promptseg._qt import embedding

    assert embedding.TILE_ABOVE == TILE_ABOVE == 2048
    assert not needs_tiling((2048, 2048)) and needs_tiling((2049, 10))


@pytest.mark.parametrize(
    "kind",
    [
        np.uint16,  # scaled with the stack's contrast limits
        np.float32,
        np.uint8,  # passed through
    ],
)
def test_a_tile_read_alone_is_the_tile_of_the_converted_plane(tmp_path, kind):
    data = (np.random.default_rng(2).random((2, 300, 700)) * 5000).astype(kind)
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="minisblack")
    planes = ImageSource.create(tmp_path / "s.tif").resolved().planes()
    region = (slice(40, 290), slice(333, 700))
    for label in planes.labels:
        whole = planes.rgb(label)
        part = planes.rgb(label, region)
        np.testing.assert_array_equal(part, whole[region])
        # hence the same store key as the session's TiledImage.tile_rgb
        assert image_fingerprint(part) == image_fingerprint(np.ascontiguousarray(whole[region]))


def test_a_zarr_tile_reads_only_its_chunks(tmp_path):
    data = np.random.default_rng(4).integers(0, 999, (3, 4, 256, 256)).astype(np.uint16)
    array = zarr.open_array(str(tmp_path / "v.zarr"), mode="w", shape=data.shape,
                            chunks=(1, 4, 128, 128), dtype=data.dtype)  # fmt: skip
    array[...] = data
    source = ImageSource.create(tmp_path / "v.zarr", channel_axis=1, channels=(0, 2, 3))
    planes = source.resolved().planes()
    region = (slice(128, 256), slice(0, 128))  # one chunk
    expected = planes_of(data, channel_axis=1, channels=(0, 2, 3), contrast_limits=planes.contrast_limits)  # fmt: skip
    np.testing.assert_array_equal(planes.rgb((1,), region), expected.rgb((1,))[region])


def test_large_planes_are_split_into_the_sessions_tiles(tmp_path):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((2, 2100, 1100), np.uint8))
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((2, 2048, 900), np.uint8))
    big = embed_tasks(ImageSource.create(tmp_path / "big.tif").resolved())
    grid = TileGrid((2100, 1100))
    assert len(grid) == 6
    assert [(t.planes, t.tile) for t in big] == [(((z,),), tile) for z in (0, 1) for tile in grid]
    small = embed_tasks(ImageSource.create(tmp_path / "small.tif").resolved())
    assert [(t.planes, t.tile) for t in small] == [(((0,),), None), (((1,),), None)]


def test_prompts_are_grouped_by_the_tile_tiled_image_routes_them_to():
    shape = (2100, 3000)
    tiled = TiledImage(None, np.zeros((*shape, 3), np.uint8))  # routing needs no model
    rng = np.random.default_rng(8)
    cases = [
        Prompts.from_points(rng.uniform(0, 2099, (n, 2)) * [1, 3000 / 2100]) for n in (1, 1, 2)
    ]
    cases += [
        Prompts.from_points([[r, c]]) for r, c in [(0, 0), (1023, 1023), (2099, 2999), (540, 770)]
    ]
    cases += [Prompts.from_points([[100, 100], [2000, 2900]])]  # no tile holds both: whole
    cases += [Prompts(box=np.array([1500.0, 2500, 1600, 2980]))]
    cases += [Prompts.from_points([[700, 700]], box=np.array([650.0, 600, 800, 900]))]
    for prompts in cases:
        assert routing_tile(tiled.grid, prompts) == tiled.route(prompts)
    objects = [((0,), i, p) for i, p in enumerate(cases)] + [((1,), 99, cases[0])]
    tasks = prompt_tasks(ImageSource("x.tif"), shape, objects)
    assert sorted(i for t in tasks for i, _p in t.objects) == [*range(len(cases)), 99]
    for task in tasks:
        assert all(tiled.route(p) == task.tile for _i, p in task.objects)
    assert len({(t.plane, t.tile) for t in tasks}) == len(tasks)
    # a plane that is not large: one task for all its objects
    (one,) = prompt_tasks(ImageSource("x.tif"), (500, 500), [((), 0, cases[3]), ((), 1, cases[4])])
    assert one.tile is None and len(one.objects) == 2


def test_objects_arriving_in_any_order_paint_the_same_labels(tmp_path):
    shape = (30, 40)
    masks = []
    for index, (r0, c0, r1, c1) in enumerate([(2, 2, 20, 20), (10, 10, 28, 38), (0, 30, 5, 40)]):
        mask = np.zeros((r1 - r0, c1 - c0), bool)
        mask[::2] = True
        masks.append(ObjectMask(index, mask, 0.9, 0.8, 1, (r0, c0)))
    objects = [PromptedObject((0,), "a", 5, Prompts.from_points([[3, 3]])),
               PromptedObject((0,), "b", 7, Prompts.from_points([[12, 12]])),
               PromptedObject((1,), "c", 5, Prompts.from_points([[1, 31]]))]  # fmt: skip
    tasks = [PromptTask(ImageSource("x.tif"), (0,), ()), PromptTask(ImageSource("x.tif"), (0,), ()),
             PromptTask(ImageSource("x.tif"), (1,), ())]  # fmt: skip
    output = MemoryLabelOutput(tmp_path / "l.tif", (2,), shape, max_id=7)
    assembly = SegmentAssembly(output, objects, tasks, overwrite=False, model="m")
    assembly.add(tasks[2], [masks[2]])
    assembly.add(tasks[1], [masks[1]])  # b's task first: plane 0 waits for a's
    assert not output.labels[0].any()
    assembly.add(tasks[0], [masks[0]])
    _path, _table, rows = assembly.finish()
    expected = np.zeros((2, *shape), np.uint16)
    for obj, found in zip(objects, masks, strict=True):  # in table order: a, then b over it
        full = np.zeros(shape, bool)
        full[found.slices] = found.mask
        plane = expected[obj.plane]
        plane[full & (plane == 0)] = obj.label_id
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), expected)
    assert [r["object"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["area"] == np.count_nonzero(expected[0] == 7)
    assert rows[2]["slice"] == "1"


def test_everything_ids_continue_in_plane_order_whatever_the_arrival(tmp_path):
    first = np.array([[1, 0], [0, 2]], np.uint32)
    second = np.array([[0, 1], [0, 0]], np.uint32)
    output = MemoryLabelOutput(tmp_path / "e.tif", (2,), (2, 2))
    assembly = EverythingAssembly(output)
    assembly.add(PlaneObjects((1,), second, [{"id": 1}], 1))
    assembly.add(PlaneObjects((0,), first, [{"id": 1}, {"id": 2}], 3))
    _path, _table, rows = assembly.finish()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "e.tif"), [first, [[0, 3], [0, 0]]])
    assert [(r["id"], r["slice"]) for r in rows] == [(1, "0"), (2, "0"), (3, "1")]
    assert assembly.masks == 4


@pytest.mark.slow  # three tiles through the tiny encoder: a few seconds
def test_a_folders_large_image_is_embedded_by_tiles_in_its_task(tmp_path, segmenter):
    from napari_promptseg.core.workflows.distributed.tasks import EmbedTask, embed_task

    data = (np.random.default_rng(6).random((2100, 300)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", data)
    outcome = embed_task(segmenter, EmbedTask(ImageSource.create(tmp_path / "big.tif")))
    assert (outcome.planes, outcome.tiles, outcome.computed, outcome.total) == (1, 3, 3, 3)
    tiled = TiledImage(segmenter, planes_of(data).rgb(()))
    assert all(tiled.cached(tile) is not None for tile in tiled.grid)  # the session's keys
    assert segmenter.encoder_calls == 3
