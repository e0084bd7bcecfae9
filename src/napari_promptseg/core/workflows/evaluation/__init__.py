"""How well a model segments *your* objects: simulated interactive prompting against labels.

Per ground-truth object, a click simulator prompts the model the way a user corrects a mask
(:mod:`.clicks`), and the IoU after every interaction is recorded (:mod:`.simulate`); the
figures are mIoU@k, NoC@85/90 and the failure rate (:mod:`.summary`), written as CSV tables
and a PNG plot (:mod:`.report`, :mod:`.plot`). :mod:`.run` drives several models over every
plane of an image or stack.

    >>> from napari_promptseg.core.workflows.evaluation import EvaluationSettings, evaluate
    >>> report = evaluate([segmenter], image, ground_truth, EvaluationSettings(clicks=20))
    >>> report.miou(segmenter.name, 5)                  # mIoU after 5 clicks
    >>> write_report(report, "report.csv")              # + report_summary.csv, report.png
"""

from .clicks import Click, first_prompt, mask_iou, most_interior_pixel, next_click
from .ground_truth import EvaluationError, check_ground_truth, classes_from_rows, plane_objects
from .report import ReportPaths, format_summary, report_paths, write_report
from .run import EvaluationProgress, evaluate, iter_evaluate
from .simulate import (
    EvaluationSettings,
    ObjectResult,
    evaluate_object,
    evaluate_plane,
    iter_evaluate_plane,
)
from .summary import ALL_OBJECTS, EvaluationReport, SummaryRow

__all__ = [
    "ALL_OBJECTS",
    "Click",
    "EvaluationError",
    "EvaluationProgress",
    "EvaluationReport",
    "EvaluationSettings",
    "ObjectResult",
    "ReportPaths",
    "SummaryRow",
    "check_ground_truth",
    "classes_from_rows",
    "evaluate",
    "evaluate_object",
    "evaluate_plane",
    "first_prompt",
    "format_summary",
    "iter_evaluate",
    "iter_evaluate_plane",
    "mask_iou",
    "most_interior_pixel",
    "next_click",
    "plane_objects",
    "report_paths",
    "write_report",
]
