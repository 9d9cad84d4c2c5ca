"""Activation maximization, live: pick a unit, press Run, watch its image grow beside its curve.

The form builds an objective string in the engine's grammar (engine.maximize.objectives)
from the layer selected in the tree: a channel, a neuron, the whole layer, a class, every
channel of the layer (a grid filled chunk by chunk), or a free expression. The run is one
"maximize" job on the engine thread; its Frames update the image pane (throttled to ~30
updates a second) and its Progress events the objective curve (and the class probability
for class objectives). Pause/resume and the step size act on the running job through an
engine.maximize.Control; Stop cancels it within one step. Export writes the result (a grid
for a batch) as PNG through the window's Export, and the whole run as an animated GIF.

Units are read before their fused activation by default (Lucid's "pre_relu"); "After the
activation" reads the post-ReLU unit. When the engine finds the unit silent from the chosen start
(zero gradient on the first steps) the run stops early and the tab offers the remedy in one click
("Read before the activation", "Start from the photo"), each re-running at once.

When the layer changes the tab asks the engine for each unit's activity ("unit_activity" job) on
the sample images that fit the model and opens on the most selective channel (activity.best), then scans
SCAN_IMAGES images of the model's own data (built-in models; the samples otherwise) and names
the units that are zero on every one of them as dead, with that evidence.

The run life cycle, RunPanel, CurvePlot and GIF export are shared with the DeepDream tab
(gui/views/live.py).
"""

from __future__ import annotations

import re
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
    QPushButton,
    QVBoxLayout,
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
SCAN_IMAGES = 256  # images of the model's own data scanned for dead units when the layer changes
DEEP_SCAN_IMAGES = 1000  # the "Scan 1,000 images" button

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
        self._read_before = False  # the "Read before the activation" remedy forces it for one run
        self.count = 0  # images in the whole run (chunked "all channels" runs)
        self.activity: Any = None  # engine UnitActivity of the layer on the sample images
        self.scan: Any = None  # engine UnitActivity of the layer on SCAN_IMAGES images (dead units)
        self._picked_for: tuple[Any, Any] | None = None  # (model spec, layer) the pick was asked for
        self._pick_channel = 0  # the channel shown when the pick was asked (a user change wins)
        self._run_since_pick = False
        self._chosen_for: tuple[Any, Any] | None = None  # (model spec, layer) whose channel was handed in
        self._scanning = 0  # images of the scan in flight (0: none)
        self._rescan = 0  # a scan cancelled by Run, to run again when the run ends
        self._scan_done = 0
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
        self.unit_note = QLabel("")
        self.unit_note.setWordWrap(True)
        self.unit_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scan_button = QPushButton(f"Scan for dead units ({DEEP_SCAN_IMAGES:,} images)")
        self.scan_button.setToolTip(
            "Measure every unit of the layer on the model's own data (built-in models) or the samples; "
            "units that are zero on every image are dead"
        )
        of.addRow("Units", self.unit_note)
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
        self.analytic.setMaximumWidth(110)  # a thumbnail in the strip: the result and curve keep the room
        self.analytic.hide()
        self.report = QLabel("")
        self.report.setWordWrap(True)
        self.report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.report.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.pre_button = QPushButton("Read before the activation")
        self.pre_button.setToolTip("Uncheck “After the activation” and run again")
        self.photo_button = QPushButton("Start from the photo")
        self.photo_button.setToolTip("Start from the current image and run again")
        self.remedy = QWidget()
        rl = QHBoxLayout(self.remedy)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.pre_button)
        rl.addWidget(self.photo_button)
        rl.addStretch(1)
        self.remedy.hide()
        notes = QWidget()
        nl = QVBoxLayout(notes)
        nl.setContentsMargins(0, 0, 0, 0)
        nl.addWidget(self.report, 1)
        nl.addWidget(self.remedy)
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

    # ----- the objective --------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return str(self.mode_box.currentData())

    def set_mode(self, mode: str) -> None:
        index = self.mode_box.findData(mode)
        if index < 0:
            raise EngineError(f"unknown mode {mode!r}")
        self.mode_box.setCurrentIndex(index)

    def set_objective(self, objective: str) -> None:
        """Show `objective` in the form ("conv3:5" a channel, "conv3:5@10,12" a neuron, else an expression),
        selecting its layer; a channel handed in this way is kept (the tab does not re-pick it)."""
        m = re.fullmatch(r"\s*([^:@\s]+):(\d+)(?:@(\d+),(\d+))?\s*", str(objective))
        if m is None or self.state.layer_info(m.group(1)) is None:
            self.set_mode("expression")
            self.expr_edit.setText(str(objective))
            return
        layer = m.group(1)
        self._chosen_for = ((self.state.model or {}).get("spec"), layer)
        self.state.set_layer(layer)
        self.set_mode("neuron" if m.group(3) else "channel")
        self._update_form()  # the channel and position ranges of the new layer
        self.channel_spin.setValue(int(m.group(2)))
        if m.group(3):
            self.row_spin.setValue(int(m.group(3)))
            self.col_spin.setValue(int(m.group(4)))

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
            # unchecked: auto (before the activation, except a first-layer conv: read_before_activation)
            "pre_activation": False if self.post_check.isChecked() else (True if self._read_before else None),
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
        self.pick_unit()

    # ----- which unit to show: the most selective one; dead units ----------------------------------------
    def _unit_layer(self) -> Any:
        """The selected layer when its units can be measured (not a nested model, has an output)."""
        info = self.state.layer_info()
        if info is None or info.kind == "model" or not tuple(info.output_shape or ()):
            return None
        return info

    def pick_unit(self) -> None:
        """On a new (model, layer): ask for each unit's activity on the sample images; the tab then
        opens on the most selective channel and scans for dead units (see _picked)."""
        if self.state.model is None:
            return
        info = self._unit_layer()
        key = (self.state.model.get("spec"), info.path if info is not None else self.state.layer)
        if key == self._picked_for:
            return
        self._picked_for = key
        self.activity = self.scan = None
        self.cancel("scan")
        self._scanning = self._rescan = 0
        if info is None:
            self.cancel("pick")
            self.unit_note.setText("")
            return
        self._pick_channel = self.channel_spin.value()
        self._run_since_pick = False
        self.unit_note.setText("measuring the units on the sample images…")
        pick = {"layer": info.path, "images": "samples", "seed": int(self.seed_spin.value())}
        if self.start_box.currentData() != "photo":  # the unit picked first must fire on this start
            pick.update(
                start=self.start_box.currentData(),
                pre_activation=False if self.post_check.isChecked() else None,
            )
        self.submit("unit_activity", pick, tag="pick")

    def scan_units(self, n: int = SCAN_IMAGES) -> None:
        """Scan n images of the model's own data (the samples for non-built-in models) for dead units."""
        info = self._unit_layer()
        if info is None or self.state.model is None:
            return
        self.scan = None
        self._scanning = int(n)
        self._scan_done = 0
        self._show_units()
        self.submit("unit_activity", {"layer": info.path, "images": "natural", "n": int(n)}, tag="scan")

    def _picked(self, event: Finished) -> None:
        self.jobs.pop("pick", None)
        act = event.result if event.reason == "done" else None
        info = self._unit_layer()
        if act is None or info is None or act.layer != info.path:
            self.unit_note.setText("")
            return
        self.activity = act
        chosen = self._chosen_for == self._picked_for
        if not chosen and not self._run_since_pick and self.channel_spin.value() == self._pick_channel:
            self.channel_spin.setValue(act.best)
        self._show_units()
        self.scan_units(SCAN_IMAGES)

    def _scanned(self, event: Finished) -> None:
        self.jobs.pop("scan", None)
        self._scanning = 0
        act = event.result if event.reason == "done" else None
        info = self._unit_layer()
        if act is not None and info is not None and act.layer == info.path:
            self.scan = act
        self._show_units()

    def _show_units(self, *_args: Any) -> None:
        """The Units note: the most selective channel on the samples, and the dead units with their evidence."""
        lines = []
        act, scan = self.activity, self.scan
        if act is not None and len(act.mean):
            best = act.best
            flat = "" if act.flat is None else f" against {float(act.flat[best]):.3g} on a flat image"
            lines.append(
                f"most selective on {act.source}: {act.unit} {best} (mean {float(act.mean[best]):.3g}"
                f"{flat}, max {float(act.max[best]):.3g})"
            )
        if scan is not None:
            channel = self.channel_spin.value()
            if channel in scan.dead and self.mode in ("channel", "neuron"):
                lines.append(
                    f"<b>{scan.unit} {channel} is dead</b>: zero on all {scan.count:,} scanned images"
                )
            lines.append(
                scan.dead_note()
                or f"no dead {scan.unit}s: each fires on some of the {scan.count:,} scanned images ({scan.source})"
            )
        elif self._scanning:
            done = f"{self._scan_done:,} / " if self._scan_done else ""
            lines.append(f"scanning for dead units: {done}{self._scanning:,} images…")
        self.unit_note.setText("<br>".join(lines))

    # ----- runs ------------------------------------------------------------------------------------------
    def begin_run(self, params: dict[str, Any]) -> str:
        self.images = None
        self.count = 0
        self._run_since_pick = True
        if self._scanning:  # the scan waits for the run (the engine runs one job at a time)
            self._rescan = self._scanning
            self._scanning = 0
            self.cancel("scan")
            self._show_units()
        self.curve.show_probability(self.mode == "class" or "class:" in str(params["objective"]))
        self.report.setText("")
        self.remedy.hide()
        self.analytic.hide()
        self.pane.hide_box()
        return f"running {params['objective']} …"

    def _run_ended(self) -> None:
        if self._rescan:
            n, self._rescan = self._rescan, 0
            self.scan_units(n)

    def rerun_before_activation(self) -> None:
        """Remedy for a silent unit: read it before its activation, and run again."""
        self.post_check.setChecked(False)
        self._read_before = True  # for this run, also on a first-layer conv (auto reads it after)
        try:
            self.start()
        finally:
            self._read_before = False

    def rerun_from_photo(self) -> None:
        """Remedy for a silent unit: start from the current image, and run again."""
        self.start_box.setCurrentIndex(self.start_box.findData("photo"))
        self.start()

    # ----- events -----------------------------------------------------------------------------------
    def job_frame(self, tag: str, event: Frame) -> None:
        if tag:
            return
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
        if tag == "scan":
            self._scan_done = int(event.step)
            self._show_units()
            return
        if tag:
            return
        self.curve.add(event.step, event.loss)
        if event.total:
            self.panel.status.setText(f"step {event.step} / {event.total}   objective {event.loss or 0:.4g}")

    def job_finished(self, tag: str, event: Finished) -> None:
        if tag == "pick":
            self._picked(event)
            return
        if tag == "scan":
            self._scanned(event)
            return
        if tag:
            return
        self._run_ended()
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
        if tag in ("pick", "scan"):
            self.jobs.pop(tag, None)
            self._scanning = 0
            self.unit_note.setText(f"could not measure the units: {event.message}")
            return
        super().job_failed(tag, event)
        self._run_ended()
        if self.images is None:
            self.pane.clear_image(event.message)

    def _show_extras(self, result: dict[str, Any]) -> None:
        lines = []
        start, end = result.get("start_objective") or (), result.get("objective") or ()
        message = result.get("message")
        if len(end) == 1 and len(start) == 1:
            lines.append(
                f"objective {start[0]:.4g} → {end[0]:.4g} over {len(result.get('losses') or ())} steps"
            )
            if not message and abs(end[0] - start[0]) <= 1e-6 + 1e-3 * abs(start[0]):
                lines.append(
                    "the objective barely moved: try more steps, a larger step size or another start"
                )
        elif end:
            lines.append(f"{len(end)} images; mean objective {np.mean(start):.4g} → {np.mean(end):.4g}")
        if message:
            lines.append(str(message))
        self._offer_remedy(bool(message))
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
            lines.append(
                "beside the curve: the analytic maximizer of this first-layer unit (sign of its weights)"
            )
        self.report.setText("\n".join(lines))
        stopped = result.get("stopped") == "silent"
        self.panel.status.setText("stopped early: the unit is silent from this start" if stopped else "done")

    def _offer_remedy(self, silent: bool) -> None:
        """Show the one-click remedies that apply to the run that just found silent units."""
        post = (self.result or {}).get("settings", {}).get("pre_activation") is False
        photo = self.run_settings.get("init") != "photo" and self.state.image is not None
        self.pre_button.setVisible(post)
        self.photo_button.setVisible(photo)
        self.remedy.setVisible(silent and (post or photo))

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
        s.setValue("post_activation", self.post_check.isChecked())  # "pre_activation" was the old key
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
        # a new key: an old saved "pre_activation" False must not turn the new default off
        self.post_check.setChecked(cfg.read(s, "post_activation", False, bool))
        for group, items in (("transforms", self.transform_checks), ("regularizers", self.reg_checks)):
            for name, (check, spin) in items.items():
                check.setChecked(cfg.read(s, f"{group}/{name}/on", check.isChecked(), bool))
                spin.setValue(cfg.read(s, f"{group}/{name}/value", spin.value(), float))
