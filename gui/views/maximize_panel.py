"""The Maximize tab's form: its choices (objective mode, start, parameterization, transforms,
regularizers, optimizer) and the construction of its widgets.

A mixin of MaximizeView (gui/views/maximize.py), which reads the form into MaximizeParams.
Transforms and regularizers are read as (name, value, ...) tuples in the form
engine.maximize.transforms / engine.maximize.regularizers take; a regularizer's fixed extra
arguments (the blur's "every 4 steps") are a column of REGULARIZERS, not a special case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
)

from engine.maximize.optimizers import SCHEDULES
from gui.views.maximize_units import DEEP_SCAN_IMAGES
from gui.widgets.fields import combo, double_spin, int_spin
from gui.widgets.forms import add_row, note_label, row_widget
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import column

MODES = (
    ("Channel", "channel"),
    ("Neuron", "neuron"),
    ("Whole layer (mean square)", "layer"),
    ("All channels (grid)", "all"),
    ("Class (logit)", "class"),
    ("Expression", "expression"),
)
STARTS = (
    ("Noise", "noise"),
    ("Grey", "grey"),
    ("Normal noise", "normal"),
    ("Large-scale noise", "structured"),
    ("Photo (current image)", "photo"),
)
PARAMS = (("Pixels", "pixel"), ("Fourier, decorrelated colour", "fourier"))
OPTIMIZERS = (("Normalized gradient", "normalized"), ("Adam", "adam"))
# name, label, default, min, max, decimals, checked by default
TRANSFORMS = (
    ("jitter", "Jitter (px)", 4.0, 0.0, 64.0, 0, True),
    ("rotate", "Rotate (°)", 10.0, 0.0, 180.0, 0, True),
    ("scale", "Scale (±)", 0.1, 0.0, 0.9, 2, True),
    ("pad", "Pad (px)", 4.0, 0.0, 64.0, 0, False),
)
# the same, then the regularizer's fixed further arguments (engine.maximize.regularizers)
REGULARIZERS = (
    ("decay", "L2 decay", 0.01, 0.0, 0.99, 3, False, ()),
    ("blur", "Blur σ (every 4)", 0.5, 0.0, 5.0, 2, False, (4,)),  # sigma, every 4 steps
    ("clip_value", "Clip weak pixels (pct)", 10.0, 0.0, 99.0, 0, False, ()),
    ("clip_contribution", "Clip low contribution (pct)", 10.0, 0.0, 99.0, 0, False, ()),
    ("tv", "Total variation", 0.05, 0.0, 10.0, 3, False, ()),
    ("lp", "L6 norm", 0.05, 0.0, 10.0, 3, False, ()),
)
_REG_EXTRA = {row[0]: tuple(row[7]) for row in REGULARIZERS}

Spins = dict[str, tuple[QCheckBox, QDoubleSpinBox]]


def _checked_spins(box: QGroupBox, rows: Sequence[tuple[Any, ...]]) -> Spins:
    """A check box with a value for each row (name, label, default, min, max, decimals, on, ...)."""
    form = QFormLayout(box)
    out: Spins = {}
    for name, label, value, lo, hi, dec, on, *_ in rows:
        check, spin = QCheckBox(label), double_spin(value, lo, hi, dec)
        check.setChecked(on)
        form.addRow(check, spin)
        out[name] = (check, spin)
    return out


class MaximizeForm:
    """Builds the Maximize tab's widgets and reads its transforms and regularizers."""

    transform_checks: Spins
    reg_checks: Spins

    def _build(self) -> None:
        obj = QGroupBox("Objective")
        of = QFormLayout(obj)
        self.layer_label = add_row(of, "Layer", note_label("—"))
        self.mode_box = add_row(of, "Mode", combo(MODES))
        self.channel_spin = add_row(of, "Channel", int_spin(0, 0, 0))
        self.row_spin = int_spin(0, 0, 0)
        self.col_spin = int_spin(0, 0, 0)
        self.pos_widget = add_row(of, "Row, col", row_widget(self.row_spin, QLabel(","), self.col_spin))
        self.class_box = add_row(of, "Class", QComboBox())
        self.expr_edit = add_row(of, "Expression", QLineEdit())
        self.expr_edit.setPlaceholderText("e.g. 0.5*conv3:5 - class:2")
        self.objective_label = add_row(of, "Runs", note_label(selectable=True))
        self.unit_note = add_row(of, "Units", note_label(selectable=True))
        self.scan_button = QPushButton(f"Scan for dead units ({DEEP_SCAN_IMAGES:,} images)")
        self.scan_button.setToolTip(
            "Measure every unit of the layer on the model's own data (built-in models) or the samples; "
            "units that are zero on every image are dead"
        )
        of.addRow(self.scan_button)
        self.obj_form = of

        start = QGroupBox("Start and parameterization")
        sf = QFormLayout(start)
        self.start_box = combo(STARTS)
        self.seed_spin = int_spin(0, 0, 2**31 - 1)
        self.param_box = combo(PARAMS)
        self.steps_spin = int_spin(200, 1, 100_000)
        sf.addRow("Start", self.start_box)
        sf.addRow("Seed", self.seed_spin)
        sf.addRow("Parameterization", self.param_box)
        sf.addRow("Steps", self.steps_spin)
        self.post_check = QCheckBox("After the activation")
        self.post_check.setToolTip(
            "Read conv/dense units after their fused activation (ReLU). Off (the default), units are read "
            "before it, as Lucid does, so a unit that is silent on the start image still gets a gradient; "
            "except a first-layer conv, which is linear before its ReLU (its maximizer would be flat)"
        )
        sf.addRow("Read units", self.post_check)

        trans = QGroupBox("Transforms (each step)")
        self.transform_checks = _checked_spins(trans, TRANSFORMS)
        regs = QGroupBox("Regularizers")
        self.reg_checks = _checked_spins(regs, REGULARIZERS)

        opt = QGroupBox("Optimizer")
        pf = QFormLayout(opt)
        self.optimizer_box = combo(OPTIMIZERS)
        self.schedule_box = combo(SCHEDULES)
        pf.addRow("Method", self.optimizer_box)
        pf.addRow("Schedule", self.schedule_box)

        self.run_widgets(1.0, (0.01, 100.0), 2, "The optimized input; a grid holds one image per objective")
        self.analytic = ImagePane(pan_zoom=False)
        self.analytic.setToolTip("Analytic maximizer of a first-layer unit: the sign of its weights")
        self.analytic.setMaximumWidth(110)  # a thumbnail in the strip: the result and curve keep the room
        self.analytic.hide()
        self.report = note_label(selectable=True)
        self.report.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.pre_button = QPushButton("Read before the activation")
        self.pre_button.setToolTip("Uncheck “After the activation” and run again")
        self.photo_button = QPushButton("Start from the photo")
        self.photo_button.setToolTip("Start from the current image and run again")
        self.remedy = row_widget(self.pre_button, self.photo_button, stretch=True)
        self.remedy.hide()
        notes = column((self.report, 1), self.remedy, margins=0)
        self.lay_out([obj, start, trans, regs, opt], [self.curve, self.analytic], notes, 280)

        self.mode_box.currentIndexChanged.connect(self._update_form)
        for w in (self.channel_spin, self.row_spin, self.col_spin):
            w.valueChanged.connect(self._update_objective)
        self.channel_spin.valueChanged.connect(self._show_units)
        self.class_box.currentIndexChanged.connect(self._update_objective)
        self.expr_edit.textChanged.connect(self._update_objective)
        self.pane.clicked.connect(self._on_pane_clicked)
        self.pre_button.clicked.connect(self.rerun_before_activation)
        self.photo_button.clicked.connect(self.rerun_from_photo)
        self.scan_button.clicked.connect(lambda: self.scan_units(DEEP_SCAN_IMAGES))
        self._update_form()

    def transforms(self) -> list[tuple[str, float]]:
        """The checked transforms as (name, value)."""
        return [
            (n, float(spin.value()))
            for n, (check, spin) in self.transform_checks.items()
            if check.isChecked()
        ]

    def regularizers(self) -> list[tuple[Any, ...]]:
        """The checked regularizers as (name, value, fixed further arguments...)."""
        return [
            (n, float(spin.value()), *_REG_EXTRA[n])
            for n, (check, spin) in self.reg_checks.items()
            if check.isChecked()
        ]
