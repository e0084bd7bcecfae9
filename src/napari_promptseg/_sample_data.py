"""A synthetic "cells" image for trying the plugin without downloading anything.

The image looks like a fluorescence micrograph: about twenty elliptical cells of varying size,
orientation and brightness on a dim, uneven, noisy background. It is generated with numpy only
(no torch, no napari, no Qt), is deterministic for a given seed and takes a few milliseconds.

    >>> from napari_promptseg._sample_data import sample_cells_image
    >>> image = sample_cells_image()
    >>> image.shape, image.dtype
    ((384, 512), dtype('uint8'))

Write it to a file (``.tif`` needs tifffile, anything else is saved with ``numpy.save``), and
optionally one point prompt per cell as a CSV for ``promptseg segment --points``::

    python -m napari_promptseg._sample_data out/sample_cells.tif --points out/sample_points.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_SHAPE: tuple[int, int] = (384, 512)  # (rows, columns): deliberately not square
SAMPLE_SEED = 0
SAMPLE_NUM_CELLS = 20


def sample_cells_image(
    seed: int = SAMPLE_SEED,
    shape: tuple[int, int] = SAMPLE_SHAPE,
    n_cells: int = SAMPLE_NUM_CELLS,
) -> np.ndarray:
    """Return a synthetic 2D grayscale ``uint8`` image of ``n_cells`` blob-like cells.

    Cells are ellipses (radii 7-26 px, random orientation) with soft edges and a brightness
    between ~100 and ~245 out of 255; they barely overlap. The background is ~15-35 with a
    smooth gradient and Gaussian noise. The same arguments always give the same image.
    """
    return _generate(seed, shape, n_cells)[0]


def sample_cells_centers(
    seed: int = SAMPLE_SEED,
    shape: tuple[int, int] = SAMPLE_SHAPE,
    n_cells: int = SAMPLE_NUM_CELLS,
) -> np.ndarray:
    """The (row, col) centres of the cells in ``sample_cells_image(...)``, shape ``(n, 2)``.

    Handy as point prompts: each centre lies well inside its cell.
    """
    return _generate(seed, shape, n_cells)[1]


def _generate(seed: int, shape: tuple[int, int], n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    height, width = shape
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]

    # Dim, uneven illumination: a gentle gradient plus one broad bump.
    gy, gx = rng.uniform(-1.0, 1.0, size=2)
    image = 0.08 + 0.03 * (gy * rows / height + gx * cols / width)
    by, bx = rng.uniform(0.25, 0.75, size=2) * (height, width)
    image = image + 0.04 * np.exp(-(((rows - by) / height) ** 2 + ((cols - bx) / width) ** 2) * 4)
    image = image.astype(np.float32)

    placed: list[tuple[float, float, float]] = []  # (row, col, radius) of accepted cells
    attempts = 0
    while len(placed) < n_cells and attempts < 200 * max(n_cells, 1):
        attempts += 1
        r_major = rng.uniform(12.0, 26.0)
        r_minor = r_major * rng.uniform(0.55, 1.0)
        margin = r_major + 4.0
        if 2 * margin >= min(height, width):
            continue
        cy = rng.uniform(margin, height - margin)
        cx = rng.uniform(margin, width - margin)
        if any(np.hypot(cy - py, cx - px) < 0.9 * (r_major + pr) for py, px, pr in placed):
            continue
        placed.append((cy, cx, r_major))

        angle = rng.uniform(0.0, np.pi)
        brightness = rng.uniform(0.4, 0.95)
        # Evaluate only inside the cell's bounding box (plus the soft edge).
        r0, r1 = int(max(cy - margin, 0)), int(min(cy + margin + 1, height))
        c0, c1 = int(max(cx - margin, 0)), int(min(cx + margin + 1, width))
        dy = rows[r0:r1] - cy
        dx = cols[:, c0:c1] - cx
        cos, sin = np.cos(angle), np.sin(angle)
        u = (dx * cos + dy * sin) / r_major
        v = (-dx * sin + dy * cos) / r_minor
        dist = np.sqrt(u * u + v * v)  # 1.0 on the ellipse outline
        body = 1.0 / (1.0 + np.exp((dist - 1.0) * 14.0))  # soft edge
        # Slightly brighter towards the middle, like a nucleus.
        profile = body * (0.85 + 0.15 * np.clip(1.0 - dist, 0.0, 1.0))
        tile = image[r0:r1, c0:c1]
        np.maximum(tile, tile + brightness * profile.astype(np.float32), out=tile)

    image += rng.normal(0.0, 0.02, size=shape).astype(np.float32)
    centers = np.array([(cy, cx) for cy, cx, _ in placed], dtype=np.float64).reshape(-1, 2)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8), centers


def make_sample_cells() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """napari sample-data provider (``napari-promptseg.sample_cells`` in ``napari.yaml``)."""
    return [(sample_cells_image(), {"name": "cells (sample)"}, "image")]


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m napari_promptseg._sample_data",
        description="Write the synthetic cells sample image (and optionally point prompts).",
    )
    parser.add_argument("output", type=Path, help="image file: .tif (tifffile) or .npy")
    parser.add_argument(
        "--points", type=Path, help="also write a points CSV (object,row,col,label), one per cell"
    )
    args = parser.parse_args(argv)

    image, centers = _generate(SAMPLE_SEED, SAMPLE_SHAPE, SAMPLE_NUM_CELLS)
    path: Path = args.output
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".tif", ".tiff"}:
        import tifffile

        tifffile.imwrite(path, image)
    else:
        path = path.with_suffix(".npy")  # what numpy.save would write anyway
        np.save(path, image)
    print(path)
    if args.points is not None:
        args.points.parent.mkdir(parents=True, exist_ok=True)
        lines = ["object,row,col,label"]
        lines += [f"cell_{i:02d},{r:.1f},{c:.1f},1" for i, (r, c) in enumerate(centers, start=1)]
        args.points.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(args.points)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
