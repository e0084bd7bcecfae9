"""elf's block-wise connected components and distance transform, as micro-sam calls them.

micro-sam's APG labels its seed map and its merged masks with ``elf.parallel.label`` on
512 x 512 blocks and finds prompt centres with ``elf.parallel.distance_transform`` on the
same blocks plus a 16-pixel halo. Both differ from their global counterparts (the label
numbering follows the blocks; distances are cut off at block + halo), so they are written
out here with bioimage-cpp's kernels (python-elf 0.9.2, MIT licence) to give the same
results. Depending on python-elf would pull numba, llvmlite, h5py, skan and openpyxl.
"""

from __future__ import annotations

import bioimage_cpp as bic
import numpy as np

BLOCK = (512, 512)


def _slices(block: object) -> tuple[slice, ...]:
    return tuple(slice(b, e) for b, e in zip(block.begin, block.end, strict=True))  # type: ignore[attr-defined]


def label(data: np.ndarray, block_shape: tuple[int, int] = BLOCK) -> np.ndarray:
    """Connected components (4-connected, 0 = background) per block, merged across faces.

    Parameters
    ----------
    data : numpy.ndarray
        (H, W) bool or integer image; components are runs of equal non-zero value.

    Returns
    -------
    numpy.ndarray
        (H, W) uint32 labels numbered as ``elf.parallel.label`` numbers them.
    """
    out = np.zeros(data.shape, dtype=np.uint32)
    blocking = bic.utils.Blocking([0] * data.ndim, list(data.shape), list(block_shape))
    n_blocks = blocking.number_of_blocks
    maxima = []
    for block_id in range(n_blocks):
        bb = _slices(blocking.get_block(block_id))
        labelled = bic.segmentation.label(data[bb].copy(), background=0, connectivity=1)
        out[bb] = labelled
        maxima.append(int(labelled.max()))
    counts = np.asarray(maxima, dtype="uint64")
    last = counts[-1]
    offsets = np.cumsum(np.concatenate([[0], counts[:-1]])).astype("uint64")
    max_id = offsets[-1] + last
    mapping = _merge_faces(data, out, offsets, blocking, int(max_id))
    for block_id in range(n_blocks):
        bb = _slices(blocking.get_block(block_id))
        d = out[bb]
        d[d != 0] += offsets[block_id].astype(out.dtype)
        out[bb] = mapping[d]
    return out


def _merge_faces(
    data: np.ndarray, out: np.ndarray, offsets: np.ndarray, blocking: object, max_id: int
) -> np.ndarray:
    merges = []
    for block_id in range(blocking.number_of_blocks):  # type: ignore[attr-defined]
        block = blocking.get_block(block_id)  # type: ignore[attr-defined]
        for axis in range(out.ndim):
            ngb_id = blocking.get_neighbor_id(block_id, axis, lower=True)  # type: ignore[attr-defined]
            if ngb_id == -1:
                continue
            ngb = blocking.get_block(ngb_id)  # type: ignore[attr-defined]
            face = tuple(
                slice(b, e) if d != axis else slice(b, b + 1)
                for d, (b, e) in enumerate(zip(block.begin, block.end, strict=True))
            )
            ngb_face = tuple(
                slice(b, e) if d != axis else slice(e - 1, e)
                for d, (b, e) in enumerate(zip(ngb.begin, ngb.end, strict=True))
            )
            d, d_ngb = data[face], data[ngb_face]
            keep = np.ones_like(d, dtype=bool)
            keep[d == 0] = 0
            keep[d_ngb == 0] = 0
            keep[d != d_ngb] = 0
            if keep.sum() == 0:
                continue
            o = out[face][keep] + offsets[block_id]
            o_ngb = out[ngb_face][keep] + offsets[ngb_id]
            pairs = np.unique(np.concatenate([o[:, None], o_ngb[:, None]], axis=1), axis=0)
            if pairs.size:
                merges.append(pairs)
    n = max_id + 1
    if not merges:
        return np.arange(n, dtype=out.dtype)
    ufd = bic.utils.UnionFind(int(n))
    ufd.merge(np.concatenate(merges, axis=0).astype("uint64"))
    roots = ufd.find(np.arange(n, dtype="uint64"))
    return bic.segmentation.relabel_sequential(roots)[0]


def distance_transform(
    data: np.ndarray, halo: tuple[int, int] = (16, 16), block_shape: tuple[int, int] = BLOCK
) -> np.ndarray:
    """(H, W) float32 Euclidean distances to the nearest 0 of ``data``, computed per block
    with ``halo`` (exact only up to the block border plus the halo, as in elf)."""
    distances = np.zeros(data.shape, dtype="float32")
    blocking = bic.utils.Blocking([0] * data.ndim, list(data.shape), list(block_shape))
    for block_id in range(blocking.number_of_blocks):
        block = blocking.get_block_with_halo(block_id, list(halo))
        dist = bic.distance.distance_transform(
            data[_slices(block.outer_block)], return_distances=True, number_of_threads=1
        )
        distances[_slices(block.inner_block)] = dist[_slices(block.inner_block_local)]
    return distances
