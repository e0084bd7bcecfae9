"""APG's ``mask_threshold="auto"``: one logit threshold per mask from a local Otsu.

micro-sam 1.8.14 (``micro_sam.inference._local_otsu_threshold``) normalises each mask's
low-resolution logits to [0, 1], takes a 64-bin histogram of every 31 x 31 window (zero
padded), finds each window's Otsu bin, and keeps the largest window threshold, mapped back
to logits and clamped at 0. It builds the windows with ``unfold``: 961 values per pixel, about
0.75 GB per 256 x 256 mask and 24 GB for its default batch of 32. Here the same histograms
come from summed-area tables of the per-bin indicator images (exact integer counts), and
the Otsu step runs the same float32 operations, so the thresholds are
bit for bit micro-sam's at a few MB per mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the value of ``APGParams.mask_threshold`` that asks for these thresholds
AUTO = "auto"

WINDOW = 31
BINS = 64
_EPS = 1e-6


def local_otsu_thresholds(logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1) float32 thresholds for (B, 1, h, w) low-resolution mask logits."""
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"expected (B, 1, h, w) logits, got shape {tuple(logits.shape)}")
    # one mask at a time: the counts are (h + 30) x (w + 30) x 64 integers per mask
    thresholds = [_threshold(mask[None]) for mask in logits.to(torch.float32)]
    if not thresholds:
        return torch.zeros((0, 1, 1), dtype=torch.float32, device=logits.device)
    return torch.cat(thresholds).view(-1, 1, 1)


def _threshold(x: torch.Tensor) -> torch.Tensor:
    """(1,) threshold of one (1, 1, h, w) mask."""
    _b, _c, h, w = x.shape
    flat = x.view(1, -1)
    x_min = flat.min(dim=1).values.view(1, 1, 1, 1)
    x_max = flat.max(dim=1).values.view(1, 1, 1, 1)
    x_range = (x_max - x_min).clamp_min(_EPS)
    x_norm = (x - x_min) / x_range
    bins = (x_norm * (BINS - 1)).long().clamp(0, BINS - 1)[0, 0]
    pad = WINDOW // 2
    # unfold's zero padding lands in bin 0, so pad the bin image with 0
    bins = F.pad(bins, (pad, pad, pad, pad), value=0)
    levels = torch.arange(BINS, device=x.device)
    counts = _window_sums((bins[None] == levels[:, None, None]).to(torch.float32))
    # (L, bins) with the bins last: the reductions run along contiguous memory (7x faster
    # than micro-sam's (bins, L)); sums of integer counts and a sequential cumsum give the
    # same float32 values either way
    hist = counts.permute(1, 2, 0).reshape(h * w, BINS)
    p = hist / hist.sum(dim=1, keepdim=True).clamp_min(_EPS)
    omega1 = torch.cumsum(p, dim=1)
    mu = torch.cumsum(p * levels.to(torch.float32), dim=1)
    mu_total = mu[:, -1:]
    omega2 = 1.0 - omega1
    mu1 = mu / omega1.clamp_min(_EPS)
    mu2 = (mu_total - mu) / omega2.clamp_min(_EPS)
    between = omega1 * omega2 * (mu1 - mu2) ** 2
    t_norm = torch.argmax(between, dim=1).to(torch.float32) / (BINS - 1)
    values = (x_min.view(1) + t_norm * x_range.view(1)).clamp_min(0.0)
    return torch.amax(values).view(1)


def _window_sums(indicators: torch.Tensor) -> torch.Tensor:
    """Counts in every WINDOW x WINDOW window of padded (C, H, W) 0/1 images: (C, H - 30,
    W - 30), exact (integers far below float32's 2**24)."""
    table = F.pad(indicators.cumsum(1).cumsum(2), (1, 0, 1, 0))  # a zero row and column first
    k = WINDOW
    return table[:, k:, k:] - table[:, :-k, k:] - table[:, k:, :-k] + table[:, :-k, :-k]
