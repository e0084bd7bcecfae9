"""The files of an evaluation report, as the CLI and the napari dock both write them.

For ``report.csv``:

* ``report.csv`` — one row per model and object (and plane): ``model, plane, id, class,
  area, start, mask_input, iou_1 .. iou_K, noc_85, noc_90, seconds, clicks`` (``plane`` is
  the object's plane as ``"z"`` or ``"t,z"``, empty for a 2D image; ``clicks`` lists the
  simulated clicks as ``+row,col`` / ``-row,col`` separated by ``;``);
* ``report_summary.csv`` — :class:`~.summary.SummaryRow` per model (``class`` ``(all)``) and,
  when the ground truth has classes, per model and class;
* ``report.png`` — mIoU against clicks, one line per model.

Every file is built in memory first, then each is written atomically: bad data leaves the
earlier files as they were.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ...errors import ExportError
from ...storage.files import atomic_write
from .plot import plot_png
from .summary import EvaluationReport, percent

REPORT_SUFFIX = ".csv"


@dataclass(frozen=True)
class ReportPaths:
    """Where a report's three files go."""

    objects: Path
    summary: Path
    plot: Path

    def __iter__(self) -> Iterator[Path]:
        return iter((self.objects, self.summary, self.plot))


def report_paths(output: str | os.PathLike) -> ReportPaths:
    """``report.csv`` → report.csv, report_summary.csv, report.png (same folder)."""
    output = Path(output)
    if output.suffix.lower() != REPORT_SUFFIX:
        raise ExportError(f"the evaluation report is a .csv file; got {output.name}.")
    return ReportPaths(
        objects=output,
        summary=output.with_name(f"{output.stem}_summary.csv"),
        plot=output.with_name(f"{output.stem}.png"),
    )


def object_rows(report: EvaluationReport) -> list[dict[str, Any]]:
    """The per-object table, one dict per model and object (columns as the module says)."""
    settings = report.settings
    rows = []
    for result in report.results:
        row: dict[str, Any] = {
            "model": result.model,
            "plane": ",".join(str(i) for i in result.plane),
            "id": result.label_id,
            "class": result.class_name,
            "area": result.area,
            "start": settings.start,
            "mask_input": int(settings.mask_input),
        }
        row.update({f"iou_{k}": round(v, 6) for k, v in enumerate(result.ious, start=1)})
        row.update({f"noc_{percent(t)}": result.noc(t) for t in settings.thresholds})
        row["seconds"] = round(result.seconds, 6)
        row["clicks"] = ";".join(click.text() for click in result.clicks)
        rows.append(row)
    return rows


def summary_rows(report: EvaluationReport) -> list[dict[str, Any]]:
    """The summary table: one dict per model (and class); see :class:`~.summary.SummaryRow`."""
    rows = [row.as_dict() for row in report.summary()]
    for row in rows:
        row["embedding_seconds"] = round(report.embedding_seconds.get(row["model"], 0.0), 3)
    return rows


def write_report(report: EvaluationReport, output: str | os.PathLike) -> ReportPaths:
    """Write the report's table, summary and plot beside ``output`` (see the module doc)."""
    paths = report_paths(output)
    payloads = (
        _csv_bytes(object_rows(report)),
        _csv_bytes(summary_rows(report)),
        plot_png(report),
    )
    for path, payload in zip(paths, payloads, strict=True):
        atomic_write(path, _writer(payload))
    return paths


def _writer(payload: bytes) -> Callable[[IO[bytes]], object]:
    return lambda file: file.write(payload)


def format_summary(report: EvaluationReport) -> str:
    """The summary as an aligned text table, for a terminal."""
    rows = summary_rows(report)
    if not rows:
        return "no object evaluated"
    columns = list(rows[0])
    cells = [[_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _csv_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    rows = list(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
