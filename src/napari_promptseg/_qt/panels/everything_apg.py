"""APG's mask options in the "Segment everything" section: the mask threshold (a logit, or
micro-sam's "auto" local Otsu per mask) and the second pass from box prompts."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QWidget

from ...core.workflows.instances.mask_threshold import AUTO


class APGOptions(QWidget):
    """Two rows: *Mask threshold* [logit] [auto], and *refine with box prompts*."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(-20.0, 20.0)
        self.threshold.setDecimals(2)
        self.threshold.setSingleStep(0.25)
        self.threshold.setValue(0.0)
        self.threshold.setToolTip(
            "SAM's mask logits above this are the mask (0: SAM's own threshold; higher: "
            "tighter masks)"
        )
        self.auto = QCheckBox("auto")
        self.auto.setToolTip(
            "one threshold per mask from a local Otsu of its logits (micro-sam's "
            "mask_threshold='auto')"
        )
        self.auto.toggled.connect(lambda on: self.threshold.setEnabled(not on))
        self.refine = QCheckBox("refine with box prompts")
        self.refine.setToolTip(
            "decode each object once more from a box around its first mask (micro-sam's "
            "refine_with_box_prompts): slower, often tighter"
        )
        threshold_row = QHBoxLayout()
        threshold_row.setContentsMargins(0, 0, 0, 0)
        threshold_row.addWidget(self.threshold)
        threshold_row.addWidget(self.auto)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Mask threshold", threshold_row)
        form.addRow("", self.refine)

    def values(self) -> dict:
        """The ``APGParams`` fields of these options (None: SAM's threshold, as micro-sam)."""
        if self.auto.isChecked():
            threshold: float | str | None = AUTO
        else:
            value = self.threshold.value()
            threshold = None if value == 0.0 else value
        return {"mask_threshold": threshold, "refine_with_box_prompts": self.refine.isChecked()}
