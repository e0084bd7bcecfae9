"""Synthetic label stacks for the lineage, edit, CTC and GEFF tests (numpy only).

``lineage_stack()`` is ``(T=7, 64, 64)`` with, as integer-centred discs (their centroids
are exact):

- track 1: a disc r=6 moving right, frames 0..3, then divides into
- tracks 2 and 3 (r=4, above and below), frames 4..6;
- track 4: a disc r=4 that ends early, frames 0..2;
- track 5: a disc r=4 with a gap, frames 0, 1, then 4..6 (absent on 2 and 3).
"""

from __future__ import annotations

import numpy as np

T, H, W = 7, 64, 64
PARENTS = {2: 1, 3: 1}


def disc(center: tuple[int, int], radius: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 < radius**2


def centers() -> dict[int, dict[int, tuple[int, int]]]:
    """track id -> frame -> (row, col) of its disc."""
    return {
        1: {t: (20, 10 + 3 * t) for t in range(4)},
        2: {t: (12, 22 + 2 * (t - 4)) for t in range(4, T)},
        3: {t: (28, 22 + 2 * (t - 4)) for t in range(4, T)},
        4: {t: (50, 10) for t in range(3)},
        5: {t: (50, 45) for t in (0, 1, 4, 5, 6)},
    }


RADII = {1: 6, 2: 4, 3: 4, 4: 4, 5: 4}


def lineage_stack(dtype: type = np.uint16) -> np.ndarray:
    labels = np.zeros((T, H, W), dtype)
    for track_id, frames in centers().items():
        for t, center in frames.items():
            labels[t][disc(center, RADII[track_id])] = track_id
    return labels


def stack_3d() -> np.ndarray:
    """``(T=4, Z=5, 32, 32)``: track 1 on frames 0..1 (z 1..3) dividing into 2 and 3 on 2..3."""
    labels = np.zeros((4, 5, 32, 32), np.uint16)
    labels[0:2, 1:4, 10:16, 10:16] = 1
    labels[2:4, 1:3, 2:8, 2:8] = 2
    labels[2:4, 2:5, 20:26, 20:26] = 3
    return labels
