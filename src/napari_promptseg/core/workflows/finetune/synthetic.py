"""Synthetic fluorescence images of nuclei and cells, with their instance labels.

Training data for the demo model and for the tests of the training loop: no download, no
licence question, the exact ground truth known. Each image draws its own look from a seed:

* objects: compact nuclei (radius 5-22 px) or larger irregular cells (14-45 px), as
  star-shaped outlines (an ellipse with a few random harmonics), any orientation;
* crowding: from sparse to packed; touching objects share a border where their
  normalised distances meet (as neighbouring nuclei do), sometimes with a darker seam;
* intensity: per-object brightness, smooth texture, bright spots (nucleoli), a rim or
  a brighter middle; soft edges;
* background: offset, illumination gradient, out-of-focus haze, unlabelled specks;
* optics and camera: Gaussian blur (the microscope's PSF), Poisson shot noise at a random
  photon count, read noise; stored as uint8 at low or high contrast, or uint16 with a
  camera offset, so the image goes through :func:`..sam.image.to_rgb_uint8` as a user's
  image does.

Only numpy and scipy; deterministic for a seed; a 512x512 image takes ~50 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

Kind = Literal["nuclei", "cells"]


@dataclass(frozen=True)
class SyntheticImage:
    """One synthetic image and its ground truth.

    Attributes
    ----------
    image
        (H, W) uint8 or uint16 fluorescence-like image.
    labels
        (H, W) int32 instance labels, 0 = background, 1..n the objects.
    kind
        ``"nuclei"`` or ``"cells"``.
    """

    image: np.ndarray
    labels: np.ndarray
    kind: str


@dataclass(frozen=True)
class _Look:
    """The per-image random choices, drawn once from the seed."""

    kind: Kind
    radius: tuple[float, float]  # range of object radii, px
    elongation: float  # max ratio major/minor - 1
    roughness: float  # amplitude of the outline harmonics
    coverage: float  # target fraction of the image covered by objects
    touching: float  # 0: objects keep apart .. 1: they may overlap a third of a radius
    edge_sharpness: float
    texture: float
    seam: float  # darkening where two objects touch
    spots: float  # probability of bright spots in an object


def synthetic_cells(
    seed: int,
    shape: tuple[int, int] | None = None,
    *,
    kind: Kind | None = None,
) -> SyntheticImage:
    """Generate one image and its instance labels.

    Parameters
    ----------
    seed
        The same seed (and arguments) always gives the same image.
    shape
        (H, W); a random size between 256 and 640 px per side by default.
    kind
        ``"nuclei"`` or ``"cells"``; random by default.
    """
    rng = np.random.default_rng(seed)
    if shape is None:
        shape = (int(rng.integers(256, 641)), int(rng.integers(256, 641)))
    look = _draw_look(rng, kind)
    signal, labels = _paint_objects(rng, shape, look)
    image = _add_background_and_camera(rng, signal, labels)
    return SyntheticImage(image=image, labels=labels, kind=look.kind)


def synthetic_dataset(
    seed: int, count: int, shape: tuple[int, int] | None = None
) -> list[SyntheticImage]:
    """``count`` images from consecutive seeds derived from ``seed`` (independent streams)."""
    seeds = np.random.SeedSequence(seed).generate_state(count)
    return [synthetic_cells(int(s), shape) for s in seeds]


# -- the look of one image -----------------------------------------------------------------


def _draw_look(rng: np.random.Generator, kind: Kind | None) -> _Look:
    chosen: Kind = kind if kind is not None else ("nuclei" if rng.random() < 0.6 else "cells")
    if chosen == "nuclei":
        low = rng.uniform(5.0, 14.0)
        radius = (low, low * rng.uniform(1.2, 1.8))
        elongation, roughness = rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.08)
    else:
        low = rng.uniform(14.0, 28.0)
        radius = (low, low * rng.uniform(1.2, 1.7))
        elongation, roughness = rng.uniform(0.1, 1.0), rng.uniform(0.04, 0.2)
    return _Look(
        kind=chosen,
        radius=radius,
        elongation=elongation,
        roughness=roughness,
        coverage=rng.uniform(0.08, 0.45),
        touching=rng.uniform(0.0, 1.0),
        edge_sharpness=rng.uniform(5.0, 25.0),
        texture=rng.uniform(0.0, 0.45),
        seam=rng.uniform(0.0, 0.5) if rng.random() < 0.5 else 0.0,
        spots=rng.uniform(0.0, 0.8),
    )


# -- objects -------------------------------------------------------------------------------


def _paint_objects(
    rng: np.random.Generator, shape: tuple[int, int], look: _Look
) -> tuple[np.ndarray, np.ndarray]:
    """Object signal (float32, 0 outside objects) and instance labels (int32)."""
    height, width = shape
    signal = np.zeros(shape, np.float32)
    nearest = np.full(shape, np.inf, np.float32)  # smallest normalised distance so far
    owner = np.zeros(shape, np.int32)
    target_area = look.coverage * height * width
    covered = 0.0
    placed: list[tuple[float, float, float]] = []
    attempts = 0
    while covered < target_area and attempts < 400:
        attempts += 1
        radius = rng.uniform(*look.radius)
        cy, cx = (
            rng.uniform(-0.3 * radius, height + 0.3 * radius),
            rng.uniform(-0.3 * radius, width + 0.3 * radius),
        )
        # how close two centres may come: apart (>= r1 + r2) .. overlapping a third
        closest = 1.0 - 0.35 * look.touching
        if any(np.hypot(cy - py, cx - px) < closest * (radius + pr) for py, px, pr in placed):
            continue
        placed.append((cy, cx, radius))
        index = len(placed)
        covered += np.pi * radius * radius
        _paint_one(rng, look, index, (cy, cx), radius, signal, nearest, owner)
    labels = _relabel(owner)
    if look.seam > 0:
        boundary = _touching_boundary(labels)
        signal[boundary] *= 1.0 - look.seam
    return signal, labels


def _paint_one(
    rng: np.random.Generator,
    look: _Look,
    index: int,
    center: tuple[float, float],
    radius: float,
    signal: np.ndarray,
    nearest: np.ndarray,
    owner: np.ndarray,
) -> None:
    height, width = signal.shape
    cy, cx = center
    reach = radius * (1.0 + look.elongation) * (1.0 + 3 * look.roughness) + 4.0
    r0, r1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, height)
    c0, c1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, width)
    if r0 >= r1 or c0 >= c1:
        return
    rows = np.arange(r0, r1, dtype=np.float32)[:, None] - cy
    cols = np.arange(c0, c1, dtype=np.float32)[None, :] - cx
    angle = rng.uniform(0.0, np.pi)
    stretch = 1.0 + rng.uniform(0.0, look.elongation)
    u = (cols * np.cos(angle) + rows * np.sin(angle)) / (radius * np.sqrt(stretch))
    v = (-cols * np.sin(angle) + rows * np.cos(angle)) * np.sqrt(stretch) / radius
    theta = np.arctan2(v, u)
    outline = np.ones_like(theta)
    for harmonic in range(2, 6):
        amplitude = look.roughness * rng.uniform(0.0, 1.0) / (harmonic - 1)
        outline += amplitude * np.cos(harmonic * theta + rng.uniform(0.0, 2 * np.pi))
    dist = np.sqrt(u * u + v * v) / np.maximum(outline, 0.3)  # 1.0 on the outline

    # ownership: the object whose outline is relatively closest wins a shared pixel
    window = (slice(r0, r1), slice(c0, c1))
    wins = (dist < 1.0) & (dist < nearest[window])
    nearest[window] = np.where(wins, dist, nearest[window])
    owner[window] = np.where(wins, index, owner[window])

    brightness = rng.uniform(0.25, 1.0)
    body = 1.0 / (1.0 + np.exp((dist - 1.0) * look.edge_sharpness))
    profile_kind = rng.integers(0, 3)
    if profile_kind == 1:  # brighter middle
        body = body * (0.75 + 0.25 * np.clip(1.0 - dist, 0.0, 1.0))
    elif profile_kind == 2:  # brighter rim, as a membrane or nuclear envelope stain
        body = body * (0.7 + 0.3 * np.exp(-(((dist - 0.85) / 0.12) ** 2)))
    if look.texture > 0:
        noise = ndimage.gaussian_filter(
            rng.normal(size=body.shape).astype(np.float32), rng.uniform(1.0, 3.0)
        )
        noise /= max(float(noise.std()), 1e-6)
        body = body * np.clip(1.0 + look.texture * noise, 0.2, 2.0)
    if rng.random() < look.spots:
        for _ in range(int(rng.integers(1, 4))):
            sy, sx = rng.normal(0.0, 0.35 * radius, size=2)
            spot_radius = rng.uniform(1.0, max(1.5, radius / 5))
            spot = np.exp(-((rows - sy) ** 2 + (cols - sx) ** 2) / (2 * spot_radius**2))
            body = body + rng.uniform(0.2, 0.6) * spot * (dist < 0.9)
    tile = signal[window]
    np.maximum(tile, brightness * body.astype(np.float32), out=tile)


def _relabel(owner: np.ndarray) -> np.ndarray:
    """Consecutive ids 1..n; fragments cut off an object by its neighbours are dropped."""
    labels = np.zeros_like(owner)
    next_id = 1
    for index, window in enumerate(ndimage.find_objects(owner), start=1):
        if window is None:
            continue
        parts, count = ndimage.label(owner[window] == index)
        if count == 0:
            continue
        sizes = np.bincount(parts.ravel())[1:]
        keep = parts == (1 + int(np.argmax(sizes)))
        if keep.sum() < 12:  # a sliver at the image border or under a neighbour
            continue
        labels[window][keep] = next_id
        next_id += 1
    return labels


def _touching_boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object that touch another object (4-neighbourhood)."""
    boundary = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        a = labels.take(range(labels.shape[axis] - 1), axis=axis)
        b = labels.take(range(1, labels.shape[axis]), axis=axis)
        meet = (a != b) & (a > 0) & (b > 0)
        if axis == 0:
            boundary[:-1] |= meet
            boundary[1:] |= meet
        else:
            boundary[:, :-1] |= meet
            boundary[:, 1:] |= meet
    return boundary


# -- background, optics, camera ------------------------------------------------------------


def _add_background_and_camera(
    rng: np.random.Generator, signal: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    height, width = signal.shape
    rows = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    background = rng.uniform(0.0, 0.15) + rng.uniform(-0.05, 0.05) * (
        rng.uniform(-1, 1) * rows + rng.uniform(-1, 1) * cols
    )
    if rng.random() < 0.5:  # out-of-focus haze
        haze = ndimage.gaussian_filter(
            rng.normal(size=(height, width)).astype(np.float32), rng.uniform(15, 40)
        )
        haze /= max(float(np.abs(haze).max()), 1e-6)
        background = background + rng.uniform(0.0, 0.12) * np.clip(haze, 0.0, None)
    image = (signal + background).astype(np.float32)
    if rng.random() < 0.4:  # unlabelled debris: single bright pixels, blurred into specks
        specks = np.zeros_like(image)
        for _ in range(int(rng.integers(1, 15))):
            y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
            if not labels[y, x]:
                specks[y, x] = rng.uniform(3.0, 15.0)
        image += ndimage.gaussian_filter(specks, rng.uniform(0.8, 2.0))
    image = ndimage.gaussian_filter(image, rng.uniform(0.4, 2.0))
    photons = rng.uniform(15.0, 600.0)  # photons at brightness 1.0
    image = rng.poisson(np.clip(image, 0.0, None) * photons).astype(np.float32) / photons
    image += rng.normal(0.0, rng.uniform(0.003, 0.04), size=image.shape).astype(np.float32)
    return _to_camera_dtype(rng, image)


def _to_camera_dtype(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    if rng.random() < 0.35:  # 16-bit camera: an offset and a gain, range far from 0..65535
        offset, gain = rng.uniform(50, 500), rng.uniform(200, 8000)
        return np.clip(np.rint(offset + image * gain), 0, 65535).astype(np.uint16)
    # 8-bit: sometimes the brightest object fills the range, sometimes the image is dim
    gain = rng.uniform(60.0, 255.0) / max(float(np.percentile(image, 99.9)), 1e-3)
    return np.clip(np.rint(image * gain), 0, 255).astype(np.uint8)
