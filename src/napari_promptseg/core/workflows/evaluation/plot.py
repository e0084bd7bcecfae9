"""The report's plot: mIoU against the number of clicks, one line per model (PNG bytes).

Drawn with matplotlib's object API on an Agg canvas: no pyplot, no global figure state, no
GUI backend, so it runs in worker threads and on machines without a display, and the napari
dock shows the same PNG the CLI writes.
"""

from __future__ import annotations

import io

import numpy as np

from .summary import EvaluationReport, percent


def plot_png(report: EvaluationReport, *, dpi: int = 100) -> bytes:
    """The mIoU-vs-clicks plot of ``report`` as PNG bytes (about 640 x 420 pixels at 100 dpi).

    Each model is a line over interactions 1 .. clicks; its legend entry gives NoC at the
    highest threshold. Dotted lines mark the thresholds.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    settings = report.settings
    figure = Figure(figsize=(6.4, 4.2), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    clicks = np.arange(1, settings.clicks + 1)
    top = max(settings.thresholds)
    for model in report.models:
        results = report.of_model(model)
        if not results:
            continue
        noc = float(np.mean([r.noc(top) for r in results]))
        label = f"{model}  (NoC@{percent(top)} {noc:.1f})"
        axes.plot(clicks, report.miou_curve(model), marker="o", markersize=3, label=label)
    for threshold in settings.thresholds:
        axes.axhline(threshold, color="0.6", linestyle=":", linewidth=1)
    axes.set_xlim(0.5, settings.clicks + 0.5)
    axes.set_ylim(0.0, 1.0)
    axes.set_xticks(_ticks(settings.clicks))
    first = "box" if settings.start == "box" else "point"
    axes.set_xlabel(f"interactions (1 = first {first})")
    axes.set_ylabel("mean IoU")
    count = len(report.of_model(report.models[0])) if report.models else 0
    axes.set_title(f"mIoU vs clicks, {count} object(s)")
    axes.grid(True, alpha=0.3)
    if report.models:
        axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": "napari-promptseg"})
    return buffer.getvalue()


def _ticks(clicks: int) -> list[int]:
    step = 1 if clicks <= 10 else 2 if clicks <= 20 else 5
    return [1, *range(step, clicks + 1, step)] if step > 1 else list(range(1, clicks + 1))
