"""Large images by tiles: grid geometry, routing, shifting, stitching across tiles, on-demand
embedding, and equality with the untiled engine for images smaller than one tile."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from napari_promptseg.core import Cancelled, ImageError, PromptError, Prompts, PromptSegmenter
from napari_promptseg.core.errors import PromptSegError
from napari_promptseg.core.sam.prompts import Scribble
from napari_promptseg.core.workflows.tiling.grid import Tile, TileGrid
from napari_promptseg.core.workflows.tiling.tiled_image import TiledImage

EIGHT = np.ones((3, 3), dtype=bool)


class FloodFillSegmenter(PromptSegmenter):
    """The real engine (tiny SAM embeds every tile) with a controlled decoder.

    Its "decoder" is a perfect segmenter of bright objects: the mask is the bright connected
    region under the positive points, found in the pixels of the tile that was embedded. So
    a tile that sees part of an object returns exactly that part, and the right stitched
    result is known. Candidates (multimask): nothing, the object, every bright pixel.
    """

    def __init__(self, sam) -> None:
        super().__init__(sam, "flood-fill")
        self.pixels: dict = {}
        self.decodes: list = []  # (tile pixels shape, prompts) per decode

    def iter_embed(self, rgb):
        embedding = yield from super().iter_embed(rgb)
        self.pixels[embedding.key] = rgb.copy()
        return embedding

    def predict(self, embedding, prompts, multimask=None):
        from napari_promptseg.core.sam.decode import DecodeResult

        rgb = self.pixels[embedding.key]
        self.decodes.append((rgb.shape[:2], prompts))
        bright = rgb[..., 0] > 127
        components, _ = ndimage.label(bright)
        points = prompts.points[prompts.labels == 1]
        if prompts.box is not None:  # the box centre as the seed
            points = np.vstack([points, prompts.box.reshape(2, 2).mean(axis=0)])
        points = np.round(points).astype(int)
        ids = components[points[:, 0], points[:, 1]]
        mask = np.isin(components, ids[ids > 0])
        if multimask is None:
            multimask = len(prompts.points) <= 1 and prompts.box is None
        masks = np.stack([np.zeros_like(mask), mask, bright]) if multimask else mask[None]
        iou = np.array([0.1, 0.9, 0.5] if multimask else [0.9], dtype=np.float32)
        return DecodeResult(
            masks=masks,
            iou=iou,
            stability=iou.copy(),
            low_res_logits=np.zeros((len(masks), 256, 256), dtype=np.float32),
            best=int(np.argmax(iou)),
            key=embedding.key,
        )


@pytest.fixture
def flood(tiny_sam):
    return FloodFillSegmenter(tiny_sam)


def disc(shape, centre, radius) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def drawing(*masks) -> np.ndarray:
    """(H, W, 3) uint8: the masks bright on a dark background."""
    rgb = np.full((*masks[0].shape, 3), 20, dtype=np.uint8)
    for mask in masks:
        rgb[mask] = 230
    return rgb


def components(mask) -> int:
    return ndimage.label(mask, structure=EIGHT)[1]


# -- grid geometry ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "count"), [(300, 1), (1024, 1), (1025, 2), (1792, 2), (1793, 3), (5000, 7)]
)
def test_grid_covers_the_axis_with_the_fewest_tiles_of_at_least_the_overlap(length, count):
    grid = TileGrid((length, 700), tile=1024, overlap=256)
    assert grid.n_rows == count and grid.n_cols == 1 and len(grid) == count
    tiles = [grid[i, 0] for i in range(count)]
    assert tiles[0].row0 == 0 and tiles[-1].row1 == length
    assert all(t.shape == (min(1024, length), 700) for t in tiles)
    for a, b in itertools.pairwise(tiles):
        assert a.row1 - b.row0 >= 256  # neighbours overlap by at least the overlap
    covered = np.zeros(length, dtype=int)
    for t in tiles:
        covered[t.row0 : t.row1] += 1
    assert covered.min() >= 1
    if count > 1:  # one tile fewer could not keep the overlap
        assert (count - 2) * (1024 - 256) + 1024 < length


def test_grid_tiles_points_and_boxes():
    grid = TileGrid((448, 448), tile=256, overlap=64)
    assert list(grid.row_starts) == [0, 192] and list(grid.col_starts) == [0, 192]
    assert [t.index for t in grid] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert grid[1, 0] == Tile((1, 0), 192, 0, 448, 256)
    # a point in the overlap of all four tiles lies on all of them...
    assert len(grid.tiles_at((220, 230))) == 4
    # ...and is decoded where it has the most margin from an inner edge
    assert grid.tile_of((200, 250)).index == (0, 1)  # row 200: 55.5 px from row 0's end
    assert grid.tile_of((240, 200)).index == (1, 0)
    # image borders are not inner edges: a point at the very corner is fine in tile (0, 0)
    assert grid.tile_of((0, 0)).index == (0, 0)
    assert grid.tile_of((447, 447)).index == (1, 1)
    assert [t.index for t in grid.tiles_of_box((10, 10, 100, 100))] == [(0, 0)]
    assert [t.index for t in grid.tiles_of_box((100, 300, 10, 200))] == [(0, 0), (0, 1)]
    assert len(grid.tiles_of_box((0, 0, 447, 447))) == 4
    assert grid.route(np.array([[10, 10], [400, 400]])) is None  # no tile holds both
    assert grid.whole == Tile(None, 0, 0, 448, 448) and grid.whole.is_whole
    with pytest.raises(PromptError, match="outside"):
        grid.tile_of((500, 10))


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "match"),
    [((0, 10), 256, 64, "at least 1x1"), ((100, 100), 8, 0, "at least 16"),
     ((100, 100), 256, 256, "overlap"), ((100, 100), 256, -1, "overlap")],
)  # fmt: skip
def test_bad_grid_is_refused_by_name(shape, tile, overlap, match):
    with pytest.raises(ImageError, match=match):
        TileGrid(shape, tile, overlap)


# -- routing and shifting (real tiny SAM) -------------------------------------------------


@pytest.fixture
def rgb_448():
    return np.random.default_rng(5).integers(0, 256, (448, 448, 3), dtype=np.uint8)


def test_point_near_a_tile_corner_equals_decoding_that_tile_directly(segmenter, rgb_448):
    tiled = TiledImage(segmenter, rgb_448, tile=256, overlap=64, reach=0)
    prompts = Prompts.from_points([[230.0, 235.0]])  # near the top-left corner of tile (1, 1)
    result = tiled.predict(prompts)
    assert result.tile.index == (1, 1) and result.tiles == (result.tile,)
    direct = segmenter.predict(
        segmenter.embed(np.ascontiguousarray(rgb_448[192:, 192:])),
        Prompts.from_points([[38.0, 43.0]]),
    )
    assert result.masks.shape == (3, 448, 448)
    np.testing.assert_array_equal(result.masks[:, 192:, 192:], direct.masks)
    assert not result.masks[:, :192].any() and not result.masks[:, :, :192].any()
    np.testing.assert_array_equal(result.iou, direct.iou)
    np.testing.assert_array_equal(result.stability, direct.stability)
    np.testing.assert_array_equal(result.low_res_logits, direct.low_res_logits)
    assert result.best == direct.best and result.key == direct.key


def test_box_and_negative_points_are_shifted_too(segmenter, rgb_448):
    tiled = TiledImage(segmenter, rgb_448, tile=256, overlap=64, reach=0)
    prompts = Prompts(points=[[300, 60], [330, 90]], labels=[1, 0], box=(280, 40, 350, 120))
    result = tiled.predict(prompts)
    assert result.tile.index == (1, 0)
    direct = segmenter.predict(
        segmenter.embed(np.ascontiguousarray(rgb_448[192:, :256])),
        Prompts(points=[[108, 60], [138, 90]], labels=[1, 0], box=(88, 40, 158, 120)),
    )
    np.testing.assert_array_equal(result.masks[:, 192:, :256], direct.masks)
    np.testing.assert_array_equal(result.iou, direct.iou)


def test_prompts_no_tile_holds_use_the_whole_image_or_are_refused(segmenter, rgb_448):
    spread = Prompts.from_points([[20, 20], [430, 430]])
    tiled = TiledImage(segmenter, rgb_448, tile=256, overlap=64)
    result = tiled.predict(spread)
    assert result.tile.is_whole and result.tiles == (result.tile,)
    untiled = segmenter.predict(segmenter.embed(rgb_448), spread)
    np.testing.assert_array_equal(result.masks, untiled.masks)
    np.testing.assert_array_equal(result.iou, untiled.iou)
    strict = TiledImage(segmenter, rgb_448, tile=256, overlap=64, spanning="error")
    with pytest.raises(PromptError, match=r"span 411x411 px, more than one 256 px tile"):
        strict.predict(spread)


def test_bad_prompts_and_images_are_refused_by_name(segmenter, rgb_448):
    tiled = TiledImage(segmenter, rgb_448, tile=256, overlap=64)
    with pytest.raises(PromptError, match="outside the 448x448 image"):
        tiled.route(Prompts.from_points([[500, 10]]))
    with pytest.raises(PromptError, match="no prompt"):
        tiled.route(Prompts())
    with pytest.raises(PromptError, match="do not all lie on the tile"):
        tiled.route(Prompts.from_points([[10, 10]]), tile=tiled.grid[1, 1])
    refine = Prompts.from_points([[10, 10]], mask_input=np.zeros((1, 256, 256)))
    with pytest.raises(PromptError, match="pass tile="):
        tiled.route(refine)
    assert tiled.route(refine, tile=tiled.grid[0, 0]).index == (0, 0)
    with pytest.raises(ImageError, match=r"\(H, W, 3\) uint8"):
        TiledImage(segmenter, rgb_448[..., 0])
    with pytest.raises(ImageError, match="overlap of at least 1 px"):
        TiledImage(segmenter, rgb_448, tile=256, overlap=0)
    assert segmenter.encoder_calls == 0


# -- stitching across tiles (controlled decoder) ------------------------------------------


def test_object_crossing_a_tile_edge_is_one_object_spanning_both_tiles(flood):
    obj = disc((256, 448), (128, 200), 90)  # columns 110..290; tiles are cols 0..255, 192..447
    other = np.zeros_like(obj)
    other[10:31, 200:241] = True  # another bright object in the overlap, not touching it
    tiled = TiledImage(flood, drawing(obj, other), tile=256, overlap=64)
    result = tiled.predict(Prompts.from_points([[128, 150]]))
    assert result.tile.index == (0, 0)
    assert [t.index for t in result.tiles] == [(0, 0), (0, 1)]
    np.testing.assert_array_equal(result.mask, obj)  # the whole disc, nothing else
    assert components(result.mask) == 1
    assert result.mask[:, 256:].any() and result.mask[:, :192].any()
    assert result.iou[result.best] == np.float32(0.9)  # the routing tile's score
    # the neighbour was prompted inside the known part, and "every bright pixel" lost to
    # the candidate that agrees with it
    shape, prompts = flood.decodes[1]
    assert shape == (256, 256)
    seeds = prompts.points.round().astype(int) + np.array([0, 192])
    assert obj[seeds[:, 0], seeds[:, 1]].all() and (seeds[:, 1] < 256).all()
    # without continuation the routing tile alone cuts the object at its edge
    cut = TiledImage(flood, drawing(obj, other), tile=256, overlap=64, reach=0)
    alone = cut.predict(Prompts.from_points([[128, 150]])).mask
    np.testing.assert_array_equal(alone, obj & (np.arange(448) < 256))


def test_object_on_a_four_tile_corner_is_continued_diagonally(flood):
    obj = disc((448, 448), (224, 224), 100)
    tiled = TiledImage(flood, drawing(obj), tile=256, overlap=64)
    result = tiled.predict(Prompts.from_points([[170, 170]]))
    assert result.tile.index == (0, 0)
    assert len(result.tiles) == 4
    np.testing.assert_array_equal(result.mask, obj)
    assert components(result.mask) == 1
    assert flood.encoder_calls == 4


def test_reach_limits_how_far_an_object_is_continued(flood):
    bar = np.zeros((128, 640), dtype=bool)
    bar[40:80, 10:630] = True  # across all three tiles: cols 0..255, 192..447, 384..639
    for reach, end in ((0, 256), (1, 448), (2, 630)):
        tiled = TiledImage(flood, drawing(bar), tile=256, overlap=64, reach=reach)
        mask = tiled.predict(Prompts.from_points([[60, 20]])).mask
        expected = bar.copy()
        expected[:, end:] = False
        np.testing.assert_array_equal(mask, expected)
        assert components(mask) == 1


def test_box_prompted_object_stays_in_its_tile(flood):
    obj = disc((256, 448), (128, 200), 90)
    tiled = TiledImage(flood, drawing(obj), tile=256, overlap=64)
    result = tiled.predict(Prompts(box=(40, 100, 220, 255)))
    assert result.tile.index == (0, 0) and result.tiles == (result.tile,)
    np.testing.assert_array_equal(result.mask, obj & (np.arange(448) < 256))


# -- embedding on demand ------------------------------------------------------------------


def test_tiles_are_embedded_only_on_demand(segmenter, rgb_448):
    tiled = TiledImage(segmenter, rgb_448, tile=256, overlap=64, reach=0)
    assert segmenter.encoder_calls == 0  # building the tiled image embeds nothing
    first = Prompts.from_points([[30, 40]])
    assert tiled.tiles_needed(first) == [tiled.grid[0, 0]]
    tiled.predict(first)
    assert segmenter.encoder_calls == 1
    assert tiled.tiles_needed(first) == []
    tiled.predict(Prompts.from_points([[100, 60], [20, 20]], labels=[1, 0]))  # same tile
    assert segmenter.encoder_calls == 1
    tiled.predict(Prompts.from_points([[400, 400]]))
    assert segmenter.encoder_calls == 2
    assert tiled.cached(tiled.grid[1, 1]) is not None and tiled.cached(tiled.grid[0, 1]) is None


def test_tiles_needed_then_predict_without_embedding(flood):
    obj = disc((256, 448), (128, 200), 90)
    tiled = TiledImage(flood, drawing(obj), tile=256, overlap=64)
    prompts = Prompts.from_points([[128, 150]])
    with pytest.raises(PromptSegError, match="not embedded yet"):
        tiled.predict(prompts, embed_missing=False)
    rounds = []
    while needed := tiled.tiles_needed(prompts):  # what a GUI does in the background
        rounds.append([t.index for t in needed])
        steps = tiled.iter_embed(needed)
        progress = []
        try:
            while True:
                progress.append(next(steps))
        except StopIteration as done:
            assert len(done.value) == len(needed)
        assert progress[-1][0] == progress[-1][1]
    assert rounds == [[(0, 0)], [(0, 1)]]
    calls = flood.encoder_calls
    result = tiled.predict(prompts, embed_missing=False)
    assert flood.encoder_calls == calls == 2
    assert result.pending == ()
    np.testing.assert_array_equal(result.mask, obj)


def test_pending_tiles_are_listed_not_embedded(flood):
    obj = disc((256, 448), (128, 200), 90)
    tiled = TiledImage(flood, drawing(obj), tile=256, overlap=64)
    prompts = Prompts.from_points([[128, 150]])
    tiled.embed(tiled.grid[0, 0])
    result = tiled.predict(prompts, embed_missing=False)
    assert [t.index for t in result.pending] == [(0, 1)]
    np.testing.assert_array_equal(result.mask, obj & (np.arange(448) < 256))
    assert flood.encoder_calls == 1


def test_cancelling_the_embedding_of_a_needed_tile(segmenter, rgb_448):
    tiled = TiledImage(segmenter, rgb_448, tile=256, overlap=64)
    with pytest.raises(Cancelled):
        tiled.predict(Prompts.from_points([[30, 40]]), should_cancel=lambda: True)
    assert tiled.cached(tiled.grid[0, 0]) is None


# -- the real tiny SAM end to end ---------------------------------------------------------


def test_real_tiny_sam_stitches_connected_pieces_onto_the_routing_mask(segmenter, rgb_448):
    prompts = Prompts.from_points([[100, 230]])  # tile (0, 1), near its left edge
    tiled = TiledImage(segmenter, rgb_448, tile=256, overlap=64)
    result = tiled.predict(prompts)
    home = result.tile
    assert home.index == (0, 1)
    direct = segmenter.predict(
        segmenter.embed(tiled.tile_rgb(home)), Prompts.from_points([[100, 38]])
    )
    np.testing.assert_array_equal(result.iou, direct.iou)
    assert len(result.tiles) > 1  # random masks reach the tile's inner edges
    for k, mask in enumerate(result.masks):
        own = np.zeros_like(mask)
        own[home.slices] = direct.masks[k]
        assert (mask[home.slices] >= direct.masks[k]).all()  # pieces only add
        # every stitched part is connected to what the routing tile decoded
        labelled, count = ndimage.label(mask, structure=EIGHT)
        assert set(np.unique(labelled[own])) - {0} == set(range(1, count + 1))
    assert result.masks[:, :, :192].any() or result.masks[:, 256:].any()  # beyond the home tile


# -- an image smaller than one tile behaves exactly like the untiled engine ---------------


def test_image_smaller_than_a_tile_equals_the_untiled_engine(segmenter, rgb_300x517):
    tiled = TiledImage(segmenter, rgb_300x517)
    assert len(tiled.grid) == 1
    embedding = segmenter.embed(rgb_300x517)
    for prompts in (
        Prompts.from_points([[150, 260]]),
        Prompts(points=[[150, 260], [40, 40]], labels=[1, 0]),
        Prompts(box=(100, 200, 250, 480)),
        Prompts(scribbles=(Scribble(np.array([[100, 100], [120, 180], [160, 200]])),)),
    ):
        result = tiled.predict(prompts)
        expected = segmenter.predict(embedding, prompts)
        for name in ("masks", "iou", "stability", "low_res_logits"):
            np.testing.assert_array_equal(getattr(result, name), getattr(expected, name))
        assert result.best == expected.best and result.key == expected.key
        assert result.tiles == (result.tile,) and result.pending == ()
    assert segmenter.encoder_calls == 1  # the one tile is the image: one embedding
    refine = Prompts.from_points([[150, 260]], mask_input=expected.low_res_logits[0][None])
    np.testing.assert_array_equal(
        tiled.predict(refine).masks, segmenter.predict(embedding, refine).masks
    )
