"""Activation maximization, live: pick a unit, press Run, watch its image grow beside its curve.

The form builds an objective string in the engine's grammar (engine.maximize.objectives)
from the layer selected in the tree: a channel, a neuron, the whole layer, a class, every
channel of the layer (a grid filled chunk by chunk), or a free expression. The run is one
"maximize" job on the engine thread; its Frames update the image pane (throttled to ~30
updates a second) and its Progress events the objective curve (and the class probability
for class objectives). Pause/resume and the step size act on the running job through an
engine.maximize.Control; Stop cancels it within one step. Export writes the result (a grid
for a batch) as PNG through the window's Export, and the whole run as an animated GIF.

The run life cycle, RunPanel, CurvePlot and GIF export are shared with the DeepDream tab
(gui/views/live.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from engine.errors import EngineError
from engine.jobs import Failed, Finished, Frame, Progress
from engine.maximize.figures import grid, tile_at
from gui import settings as cfg
from gui.views.live import CurvePlot, LiveRunView, RunPanel
from gui.widgets.fields import combo, double_spin, int_spin
from gui.widgets.image_pane import ImagePane

CHUNK = 16  # images per batch when filling "all channels" of a layer

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
SCHEDULES = ("constant", "linear", "cosine", "exp", "warmup")
# name, label, default, min, max, decimals, checked by default
TRANSFORMS = (
    ("jitter", "Jitter (px)", 4.0, 0.0, 64.0, 0, True),
    ("rotate", "Rotate (°)", 10.0, 0.0, 180.0, 0, True),
    ("scale", "Scale (±)", 0.1, 0.0, 0.9, 2, True),
    ("pad", "Pad (px)", 4.0, 0.0, 64.0, 0, False),
)
REGULARIZERS = (
    ("decay", "L2 decay", 0.01, 0.0, 0.99, 3, False),
    ("blur", "Blur σ (every 4)", 0.5, 0.0, 5.0, 2, False),
    ("clip_value", "Clip weak pixels (pct)", 10.0, 0.0, 99.0, 0, False),
    ("clip_contribution", "Clip low contribution (pct)", 10.0, 0.0, 99.0, 0, False),
    ("tv", "Total variation", 0.05, 0.0, 10.0, 3, False),
    ("lp", "L6 norm", 0.05, 0.0, 10.0, 3, False),
)


class MaximizeView(LiveRunView):
    """Gradient ascent on the input for the selected layer's units, streamed live."""

    title = "Maximize"
    owner = "maximize"
    job_kind = "maximize"

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.images: np.ndarray | None = None  # (N, H, W, C) float32 shown now
        self.count = 0  # images in the whole run (chunked "all channels" runs)
        self._build()
        self.pane.clear_image("pick a layer and press Run")

    # ----- construction ----------------------------------------------------------------------
    def _build(self) -> None:
        obj = QGroupBox("Objective")
        of = QFormLayout(obj)
        self.layer_label = QLabel("—")
        self.layer_label.setWordWrap(True)
        self.mode_box = combo(MODES)
        self.channel_spin = int_spin(0, 0, 0)
        self.row_spin = int_spin(0, 0, 0)
        self.col_spin = int_spin(0, 0, 0)
        pos = QHBoxLayout()
        pos.addWidget(self.row_spin)
        pos.addWidget(QLabel(","))
        pos.addWidget(self.col_spin)
        self.pos_widget = QWidget()
        self.pos_widget.setLayout(pos)
        pos.setContentsMargins(0, 0, 0, 0)
        self.class_box = QComboBox()
        self.expr_edit = QLineEdit()
        self.expr_edit.setPlaceholderText("e.g. 0.5*conv3:5 - class:2")
        self.objective_label = QLabel("")
        self.objective_label.setWordWrap(True)
        self.objective_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        of.addRow("Layer", self.layer_label)
        of.addRow("Mode", self.mode_box)
        of.addRow("Channel", self.channel_spin)
        of.addRow("Row, col", self.pos_widget)
        of.addRow("Class", self.class_box)
        of.addRow("Expression", self.expr_edit)
        of.addRow("Runs", self.objective_label)
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
        self.pre_check = QCheckBox("Before the ReLU")
        self.pre_check.setToolTip(
            "Optimize conv/dense units before their activation, so a unit that is dead on the start image still moves"
        )
        sf.addRow("Read units", self.pre_check)

        trans = QGroupBox("Transforms (each step)")
        tf_ = QFormLayout(trans)
        self.transform_checks: dict[str, tuple[QCheckBox, QDoubleSpinBox]] = {}
        for name, label, value, lo, hi, dec, on in TRANSFORMS:
            check, spin = QCheckBox(label), double_spin(value, lo, hi, dec)
            check.setChecked(on)
            tf_.addRow(check, spin)
            self.transform_checks[name] = (check, spin)

        regs = QGroupBox("Regularizers")
        rf = QFormLayout(regs)
        self.reg_checks: dict[str, tuple[QCheckBox, QDoubleSpinBox]] = {}
        for name, label, value, lo, hi, dec, on in REGULARIZERS:
            check, spin = QCheckBox(label), double_spin(value, lo, hi, dec)
            check.setChecked(on)
            rf.addRow(check, spin)
            self.reg_checks[name] = (check, spin)

        opt = QGroupBox("Optimizer")
        pf = QFormLayout(opt)
        self.optimizer_box = combo(OPTIMIZERS)
        self.schedule_box = combo(SCHEDULES)
        pf.addRow("Method", self.optimizer_box)
        pf.addRow("Schedule", self.schedule_box)

        self.panel = RunPanel(1.0, (0.01, 100.0), 2)
        self.pane = ImagePane()
        self.pane.setToolTip("The optimized input; a grid holds one image per objective")
        self.curve = CurvePlot()
        self.analytic = ImagePane(pan_zoom=False)
        self.analytic.setToolTip("Analytic maximizer of a first-layer unit: the sign of its weights")
        self.analytic.setMaximumWidth(170)
        self.analytic.hide()
        self.report = QLabel("")
        self.report.setWordWrap(True)
        self.report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.lay_out([obj, start, trans, regs, opt], [self.curve, self.analytic], self.report, 280)

        self.mode_box.currentIndexChanged.connect(self._update_form)
        for w in (self.channel_spin, self.row_spin, self.col_spin):
            w.valueChanged.connect(self._update_objective)
        self.class_box.currentIndexChanged.connect(self._update_objective)
        self.expr_edit.textChanged.connect(self._update_objective)
        self.pane.clicked.connect(self._on_pane_clicked)
        self._update_form()

    # ----- the objective --------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return str(self.mode_box.currentData())

    def set_mode(self, mode: str) -> None:
        index = self.mode_box.findData(mode)
        if index < 0:
            raise EngineError(f"unknown mode {mode!r}")
        self.mode_box.setCurrentIndex(index)

    def _layer_shape(self) -> tuple[int, ...]:
        info = self.state.layer_info()
        return tuple(info.output_shape) if info is not None else ()

    def _update_form(self) -> None:
        mode = self.mode
        info = self.state.layer_info()
        shape = self._layer_shape()
        spatial = len(shape) == 3
        channels = int(shape[-1] or 1) if shape else 1
        self.layer_label.setText(info.path if info is not None else "select a layer in the tree")
        self.channel_spin.setMaximum(max(0, channels - 1))
        if spatial:
            self.row_spin.setMaximum(max(0, int(shape[0] or 1) - 1))
            self.col_spin.setMaximum(max(0, int(shape[1] or 1) - 1))
            if self.row_spin.value() == 0 and self.col_spin.value() == 0:
                self.row_spin.setValue(int(shape[0] or 1) // 2)
                self.col_spin.setValue(int(shape[1] or 1) // 2)
        names = list((self.state.model or {}).get("class_names") or [])
        n_classes = int((self.state.model or {}).get("num_classes") or len(names))
        wanted = names or [str(i) for i in range(n_classes)]
        if [self.class_box.itemText(i) for i in range(self.class_box.count())] != wanted:
            self.class_box.clear()
            self.class_box.addItems(wanted)
        of = self.obj_form
        of.setRowVisible(self.channel_spin, mode in ("channel", "neuron"))
        of.setRowVisible(self.pos_widget, mode == "neuron")
        of.setRowVisible(self.class_box, mode == "class")
        of.setRowVisible(self.expr_edit, mode == "expression")
        self._update_objective()

    def objective(self) -> str:
        """The objective string the current form describes (EngineError when it cannot run)."""
        mode = self.mode
        if mode == "expression":
            text = self.expr_edit.text().strip()
            if not text:
                raise EngineError("type an objective expression, e.g. conv3:5 or class:2")
            return text
        if mode == "class":
            if self.class_box.count() == 0:
                raise EngineError("this model has no classes")
            return f"class:{self.class_box.currentIndex()}"
        info = self.state.layer_info()
        if info is None:
            raise EngineError("select a layer in the tree")
        if info.kind == "model":
            raise EngineError(f"{info.name} is a nested model: select a layer inside it")
        if mode == "layer":
            return info.path
        if mode == "all":
            return f"{info.path}:*"
        if mode == "neuron":
            if len(info.output_shape) != 3:
                raise EngineError(f"{info.path} has no spatial axes: use Channel mode for its units")
            return f"{info.path}:{self.channel_spin.value()}@{self.row_spin.value()},{self.col_spin.value()}"
        return f"{info.path}:{self.channel_spin.value()}"

    def _update_objective(self) -> None:
        try:
            self.objective_label.setText(self.objective())
        except EngineError as exc:
            self.objective_label.setText(f"<i>{exc}</i>")

    def transforms(self) -> list[str]:
        return [
            f"{n}:{spin.value():g}" for n, (check, spin) in self.transform_checks.items() if check.isChecked()
        ]

    def regularizers(self) -> list[str]:
        out = []
        for name, (check, spin) in self.reg_checks.items():
            if check.isChecked():
                out.append(f"{name}:{spin.value():g}" + (":4" if name == "blur" else ""))
        return out

    def params(self) -> dict[str, Any]:
        """The "maximize" job's params for the current form (EngineError when it cannot run)."""
        params: dict[str, Any] = {
            "objective": self.objective(),
            "steps": int(self.steps_spin.value()),
            "init": self.start_box.currentData(),
            "seed": int(self.seed_spin.value()),
            "param": self.param_box.currentData(),
            "transforms": self.transforms(),
            "regularizers": self.regularizers(),
            "optimizer": self.optimizer_box.currentData(),
            "schedule": self.schedule_box.currentText(),
            "lr": float(self.panel.lr.value()),
            "every": None,
            "fps": 25.0,
            "pre_activation": self.pre_check.isChecked(),
        }
        if params["init"] == "photo":
            if self.state.image is None:
                raise EngineError("start 'photo' needs an image: open one or pick a sample")
            params["image"] = self.state.image
        if self.mode == "all":
            params["chunk"] = CHUNK
        return params

    # ----- refresh and runs -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Model or layer changed: update the form; a run on another model is stopped."""
        self._update_form()
        if self.state.model is None:
            self.stop()
            self.pane.clear_image("loading engine…" if not self.client.is_ready else "no model")
            return
        if self.run_settings.get("model") not in (None, self.state.model.get("spec")):
            self.stop()
            self.result = None
            self.images = None
            self.pane.clear_image("model changed: press Run")

    def begin_run(self, params: dict[str, Any]) -> str:
        self.images = None
        self.count = 0
        self.curve.show_probability(self.mode == "class" or "class:" in str(params["objective"]))
        self.report.setText("")
        self.analytic.hide()
        self.pane.hide_box()
        return f"running {params['objective']} …"

    # ----- events -----------------------------------------------------------------------------------
    def job_frame(self, tag: str, event: Frame) -> None:
        images = np.asarray(event.images, np.float32)
        info = dict(event.info)
        offset, count = int(info.get("offset", 0)), int(info.get("count", images.shape[0]))
        if self.images is None or self.images.shape[0] != count or self.images.shape[1:] != images.shape[1:]:
            self.images = np.full((count, *images.shape[1:]), 0.5, np.float32)
        self.images[offset : offset + images.shape[0]] = images
        self.count = count
        prob = info.get("probability")
        self.curve.add(event.step, info.get("loss"), float(np.mean(prob)) if prob else None)
        self.frame_arrived()

    def job_progress(self, tag: str, event: Progress) -> None:
        self.curve.add(event.step, event.loss)
        if event.total:
            self.panel.status.setText(f"step {event.step} / {event.total}   objective {event.loss or 0:.4g}")

    def job_finished(self, tag: str, event: Finished) -> None:
        if not self.finish(event):
            return
        result = self.result or {}
        self.images = np.asarray(result["images"], np.float32)
        self.count = self.images.shape[0]
        self.show_frame()
        losses = result.get("losses") or []
        if losses:
            self.curve.set_curve(losses)
        self.panel.gif_button.setEnabled(bool(result.get("frames")))
        self._show_extras(result)

    def job_failed(self, tag: str, event: Failed) -> None:
        super().job_failed(tag, event)
        if self.images is None:
            self.pane.clear_image(event.message)

    def _show_extras(self, result: dict[str, Any]) -> None:
        lines = []
        start, end = result.get("start_objective") or (), result.get("objective") or ()
        if len(end) == 1 and len(start) == 1:
            lines.append(
                f"objective {start[0]:.4g} → {end[0]:.4g} over {len(result.get('losses') or ())} steps"
            )
            if abs(end[0] - start[0]) <= 1e-6 + 1e-3 * abs(start[0]):
                lines.append(
                    "the objective did not move: the unit is silent for this start and gets no gradient "
                    "(a ReLU that never fires?). Try “Before the ReLU”, another start, or another unit."
                )
        elif end:
            lines.append(f"{len(end)} images; mean objective {np.mean(start):.4g} → {np.mean(end):.4g}")
        report = result.get("report") or []
        if report:
            lines.append(report[0] if len(report) == 1 else f"{len(report)} predictions, first: {report[0]}")
        boxes = result.get("changed_boxes") or []
        rfs = result.get("receptive_fields") or []
        if len(boxes) == 1 and boxes[0] is not None:
            top, left, bottom, right = boxes[0]
            self.pane.show_box(top, left, bottom, right)
            rf = f"; receptive field {rfs[0][2] - rfs[0][0]}×{rfs[0][3] - rfs[0][1]} px" if rfs else ""
            lines.append(
                f"changed pixels: rows {top}–{bottom - 1}, cols {left}–{right - 1}{rf} (box on the image)"
            )
        analytic = result.get("analytic")
        if analytic is not None and len(analytic):
            self.analytic.set_image(grid(np.asarray(analytic), self.grid_cols()))
            self.analytic.show()
            lines.append("right: the analytic maximizer of this first-layer unit (sign of its weights)")
        self.report.setText("\n".join(lines))
        self.panel.status.setText("done")

    def grid_cols(self) -> int | None:
        return None

    def show_frame(self) -> None:
        if self.images is None:
            return
        self.pane.set_image(grid(self.images, self.grid_cols()))

    def _on_pane_clicked(self, row: int, col: int) -> None:
        if self.images is None or self.count <= 1:
            return
        index = tile_at(row, col, self.count, self.images.shape[1:3], self.grid_cols())
        if index is None:
            return
        objectives = (self.result or {}).get("objectives") or []
        name = objectives[index] if index < len(objectives) else f"image {index}"
        values = (self.result or {}).get("objective") or []
        value = f": objective {values[index]:.4g}" if index < len(values) else ""
        self.panel.status.setText(f"{name}{value}")

    # ----- export and settings ------------------------------------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self.images is None:
            raise EngineError("nothing to export yet: press Run")
        return grid(self.images, self.grid_cols()), self.gif_settings()

    def gif_settings(self) -> dict[str, Any]:
        meta = {**self.base_settings(), "kind": "maximize", **self.run_settings}
        meta.pop("image", None)
        if meta.get("init") == "photo":
            meta["image"] = self.state.image_spec
        result = self.result or {}
        for key, name in (
            ("objectives", "objectives"),
            ("start_objective", "start_objective"),
            ("objective", "final_objective"),
            ("report", "report"),
        ):
            if key in result:
                meta[name] = result[key]
        return meta

    def save_settings(self, s: QSettings) -> None:
        s.setValue("mode", self.mode)
        s.setValue("start", self.start_box.currentData())
        s.setValue("param", self.param_box.currentData())
        s.setValue("optimizer", self.optimizer_box.currentData())
        s.setValue("schedule", self.schedule_box.currentText())
        s.setValue("steps", int(self.steps_spin.value()))
        s.setValue("seed", int(self.seed_spin.value()))
        s.setValue("lr", float(self.panel.lr.value()))
        s.setValue("expression", self.expr_edit.text())
        s.setValue("pre_activation", self.pre_check.isChecked())
        for group, items in (("transforms", self.transform_checks), ("regularizers", self.reg_checks)):
            for name, (check, spin) in items.items():
                s.setValue(f"{group}/{name}/on", check.isChecked())
                s.setValue(f"{group}/{name}/value", float(spin.value()))

    def restore_settings(self, s: QSettings) -> None:
        for box, key in (
            (self.mode_box, "mode"),
            (self.start_box, "start"),
            (self.param_box, "param"),
            (self.optimizer_box, "optimizer"),
            (self.schedule_box, "schedule"),
        ):
            value = cfg.read(s, key, box.currentData(), str)
            index = box.findData(value)
            if index >= 0:
                box.setCurrentIndex(index)
        self.steps_spin.setValue(cfg.read(s, "steps", self.steps_spin.value(), int))
        self.seed_spin.setValue(cfg.read(s, "seed", self.seed_spin.value(), int))
        self.panel.lr.setValue(cfg.read(s, "lr", self.panel.lr.value(), float))
        self.expr_edit.setText(cfg.read(s, "expression", "", str))
        self.pre_check.setChecked(cfg.read(s, "pre_activation", False, bool))
        for group, items in (("transforms", self.transform_checks), ("regularizers", self.reg_checks)):
            for name, (check, spin) in items.items():
                check.setChecked(cfg.read(s, f"{group}/{name}/on", check.isChecked(), bool))
                spin.setValue(cfg.read(s, f"{group}/{name}/value", spin.value(), float))
