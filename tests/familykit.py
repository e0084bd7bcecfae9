"""Random-weight MobileSAM and SAM 2.1 models built by their own packages, saved as checkpoints.

"Fidelity" means: the same weights give the same numbers in our engine as in the family's
reference predictor. The packages' builders leave parts of the model at trivial values
(TinyViT's attention biases at zero, BatchNorm statistics at 0 and 1), so every parameter and
statistic is perturbed with a fixed seed before the weights are saved in the family's own
checkpoint format (MobileSAM: a plain state dict; SAM 2.1: ``{"model": state_dict}``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SIZES = [(300, 517), (517, 300)]


def perturb(model: torch.nn.Module, seed: int = 0, scale: float = 0.02) -> torch.nn.Module:
    """Add seeded noise to every parameter; random BatchNorm statistics; back to eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
            elif name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
    return model.eval()  # TinyViT caches its attention biases when switched to eval


def mobilesam_reference(seed: int = 0) -> torch.nn.Module:
    """``mobile_sam``'s registry "vit_t" with perturbed random weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mobile_sam import sam_model_registry
    torch.manual_seed(seed)
    return perturb(sam_model_registry["vit_t"](), seed)


def sam2_reference(seed: int = 0) -> torch.nn.Module:
    """``build_sam2(SAM 2.1 hiera_t config, ckpt_path=None)`` with perturbed random weights."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    return perturb(build_sam2(SAM2_CONFIG, ckpt_path=None, device="cpu"), seed)


def save_mobilesam(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


def save_sam2(model: torch.nn.Module, path: Path) -> Path:
    torch.save({"model": model.state_dict()}, path)  # the official SAM 2.1 checkpoint layout
    return path


def prompt_sets(height: int, width: int) -> dict[str, dict]:
    """SAM-frame (x, y) prompts for the fidelity cases: one point, points, box, both."""
    points = np.array(
        [[0.2 * width, 0.3 * height], [0.7 * width, 0.6 * height], [width - 1, height - 1]]
    )
    labels = np.array([1, 0, 1])
    box = np.array([0.1 * width, 0.15 * height, 0.8 * width, 0.9 * height])
    return {
        "one point": dict(point_coords=points[:1], point_labels=labels[:1]),
        "points": dict(point_coords=points, point_labels=labels),
        "box": dict(box=box),
        "points and box": dict(point_coords=points, point_labels=labels, box=box),
    }


def images() -> dict[tuple[int, int], np.ndarray]:
    rng = np.random.default_rng(7)
    return {size: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in SIZES}
