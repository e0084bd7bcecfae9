"""A real-looking synthetic image of two kinds of cells, for tests, benchmarks and demos.

Class ``"round"``: small bright discs with a smooth interior. Class ``"long"``: larger,
dimmer, elongated ellipses at random angles with a grainy interior. Both sit on an uneven
background with shot-like noise and a blur, as a widefield fluorescence image would; the
image is non-square on purpose (SAM pads it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("round", "long")


@dataclass(frozen=True)
class SyntheticCells:
    """``image`` (H, W) uint16, ``labels`` (H, W) uint16 (ids 1..N), ``classes`` id → name."""

    image: np.ndarray
    labels: np.ndarray
    classes: dict[int, str]


def two_class_cells(
    shape: tuple[int, int] = (300, 417), per_class: int = 12, *, seed: int = 0
) -> SyntheticCells:
    """``per_class`` objects of each class placed without overlap (fewer if they do not fit)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    height, width = shape
    labels = np.zeros(shape, dtype=np.uint16)
    signal = np.zeros(shape)
    rows, cols = np.mgrid[0:height, 0:width]
    classes: dict[int, str] = {}
    wanted = [name for _ in range(per_class) for name in CLASSES]
    for name in wanted:
        for _attempt in range(200):
            if name == "round":
                radius_r = radius_c = rng.uniform(6, 9)
            else:
                radius_r, radius_c = rng.uniform(5, 7), rng.uniform(14, 20)
            angle = rng.uniform(0, np.pi)
            margin = int(max(radius_r, radius_c)) + 2
            r0, c0 = rng.integers(margin, height - margin), rng.integers(margin, width - margin)
            dr, dc = rows - r0, cols - c0
            u = dr * np.cos(angle) + dc * np.sin(angle)
            v = -dr * np.sin(angle) + dc * np.cos(angle)
            mask = (u / radius_r) ** 2 + (v / radius_c) ** 2 <= 1
            grown = ndimage.binary_dilation(mask, iterations=3)
            if (labels[grown] > 0).any():
                continue
            object_id = len(classes) + 1
            labels[mask] = object_id
            classes[object_id] = name
            if name == "round":
                signal[mask] += rng.uniform(2600, 3200)
            else:
                signal[mask] += rng.uniform(1100, 1500) * (
                    1 + 0.35 * rng.standard_normal(mask.sum())
                )
            break
    background = 300 + 200 * (cols / width) + 120 * np.sin(rows / height * np.pi)
    image = ndimage.gaussian_filter(signal, 1.2) + background
    image = rng.poisson(np.maximum(image, 0)).astype(np.float64)
    image += rng.normal(0, 30, shape)
    return SyntheticCells(np.clip(image, 0, 65535).astype(np.uint16), labels, classes)
