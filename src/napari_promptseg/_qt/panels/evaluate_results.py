"""The results part of the "Evaluate" section: summary table, plot, "Save report…".

It shows an :class:`~napari_promptseg.core.workflows.evaluation.EvaluationReport` the way the
CLI writes it: the table holds the rows of ``report_summary.csv`` and the picture is the PNG
of ``report.png`` (rendered in the worker, so the GUI thread only decodes it).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.workflows.evaluation import EvaluationReport, ReportPaths, write_report
from ...core.workflows.evaluation.report import summary_rows

PLOT_WIDTH = 360  # pixels in the dock; the saved PNG keeps its full size

# summary columns shown in the dock (all of them are in the saved file)
SHOWN = ("model", "class", "objects", "miou_1", "miou_3", "miou_5", "noc_85", "noc_90",
         "failed_85", "failed_90", "seconds_per_object")  # fmt: skip


class EvaluationResults(QWidget):
    """Summary table + mIoU plot of the last evaluation, and the button that saves both."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: EvaluationReport | None = None
        self.default_name = "evaluation_report.csv"
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.plot = QLabel()
        self.plot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.save_button = QPushButton("Save report…")
        self.save_button.setToolTip("REPORT.csv, REPORT_summary.csv and REPORT.png, as the CLI")
        self.save_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.plot)
        layout.addWidget(self.save_button)
        self.setVisible(False)

    def show_report(self, report: EvaluationReport, png: bytes) -> None:
        """Fill the table and the plot; enable saving."""
        self.report = report
        rows = summary_rows(report)
        columns = [c for c in SHOWN if any(c in row for row in rows)]
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(columns)
        for r, row in enumerate(rows):
            for c, column in enumerate(columns):
                value = row.get(column, "")
                text = f"{value:.3f}" if isinstance(value, float) else str(value)
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeRowsToContents()
        # as high as its rows (up to 8), so the plot sits right under it
        shown = sum(self.table.rowHeight(r) for r in range(min(len(rows), 8)))
        scrollbar = self.table.horizontalScrollBar().sizeHint().height()
        self.table.setFixedHeight(
            self.table.horizontalHeader().height() + shown + scrollbar + 2 * self.table.frameWidth()
        )
        pixmap = QPixmap()
        pixmap.loadFromData(png, "PNG")
        self.plot.setPixmap(
            pixmap.scaledToWidth(PLOT_WIDTH, Qt.TransformationMode.SmoothTransformation)
        )
        self.save_button.setEnabled(True)
        self.setVisible(True)

    def clear(self) -> None:
        self.report = None
        self.table.setRowCount(0)
        self.plot.clear()
        self.save_button.setEnabled(False)
        self.setVisible(False)

    def cell(self, row: int, column: str) -> str:
        """The text shown in the table at ``row`` under ``column`` (for tests and tools)."""
        for c in range(self.table.columnCount()):
            if self.table.horizontalHeaderItem(c).text() == column:
                return self.table.item(row, c).text()
        raise KeyError(column)

    def save(self, path: str | Path) -> ReportPaths:
        """Write the shown report as the CLI writes ``-o path``."""
        if self.report is None:
            raise RuntimeError("no evaluation to save yet")
        return write_report(self.report, path)

    def ask_path(self) -> str | None:
        """A report path from a save dialog (``.csv`` added if missing); None if cancelled."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Save evaluation report", self.default_name, "CSV table (*.csv)"
        )
        if not path:
            return None
        return path if path.lower().endswith(".csv") else path + ".csv"
