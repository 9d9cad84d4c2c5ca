"""Activation maximization, live: pick a unit, press Run, watch its image grow beside its curve.

The form builds an objective string in the engine's grammar (engine.maximize.objectives)
from the layer selected in the tree: a channel, a neuron, the whole layer, a class, every
channel of the layer (a grid filled chunk by chunk), or a free expression. The run is one
"maximize" job on the engine thread; its Frames update the image pane (throttled to ~30
updates a second) and its Progress events the objective curve (and the class probability
for class objectives). Pause/resume and the step size act on the running job through an
engine.maximize.Control; Stop cancels it within one step. Export writes the result (a grid
for a batch) as PNG through the window's Export, and the whole run as an animated GIF.

RunPanel, CurvePlot and GifMixin are shared with the DeepDream tab (gui/views/dream.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from engine.jobs import Failed, Finished, Frame, Progress
from engine.maximize.common import Control
from engine.maximize.figures import grid, tile_at
from gui import settings as cfg
from gui.views.base import View
from gui.widgets.image_pane import ImagePane

FRAME_INTERVAL_MS = 33  # at most ~30 pane updates a second
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


def _combo(items: tuple[tuple[str, str], ...] | tuple[str, ...]) -> QComboBox:
    box = QComboBox()
    for item in items:
        label, key = (item, item) if isinstance(item, str) else item
        box.addItem(label, key)
    return box


def _double(value: float, lo: float, hi: float, decimals: int) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(decimals)
    spin.setSingleStep(10 ** (-decimals) if decimals else 1.0)
    spin.setValue(value)
    return spin


def _spin(value: int, lo: int, hi: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    return spin


class CurvePlot(pg.PlotWidget):
    """The objective's curve over the steps, with an optional class-probability curve on a right axis."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.setMaximumHeight(170)
        self.setLabel("bottom", "step")
        self.setLabel("left", "objective")
        self.showGrid(x=True, y=True, alpha=0.2)
        self.loss_curve = self.plot([], [], pen=pg.mkPen("#4a90d9", width=2))
        self.prob_view = pg.ViewBox()
        self.prob_view.setYRange(0.0, 1.0)
        self.prob_view.setMouseEnabled(False, False)
        plot = self.getPlotItem()
        plot.showAxis("right")
        plot.scene().addItem(self.prob_view)
        plot.getAxis("right").linkToView(self.prob_view)
        plot.getAxis("right").setLabel("probability")
        self.prob_view.setXLink(plot)
        self.prob_curve = pg.PlotDataItem(
            [], [], pen=pg.mkPen("#e0a040", width=1, style=Qt.PenStyle.DashLine)
        )
        self.prob_view.addItem(self.prob_curve)
        plot.vb.sigResized.connect(self._sync)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.probs: list[float] = []
        self.show_probability(False)

    def _sync(self) -> None:
        self.prob_view.setGeometry(self.getPlotItem().vb.sceneBoundingRect())

    def show_probability(self, shown: bool) -> None:
        self.getPlotItem().getAxis("right").setVisible(shown)
        self.prob_curve.setVisible(shown)

    def reset(self) -> None:
        self.steps, self.losses, self.probs = [], [], []
        self.loss_curve.setData([], [])
        self.prob_curve.setData([], [])

    def add(self, step: int, loss: float | None, prob: float | None = None) -> None:
        if loss is None or not np.isfinite(loss):
            return
        if self.steps and step <= self.steps[-1]:
            return
        self.steps.append(int(step))
        self.losses.append(float(loss))
        if prob is not None:
            self.probs.append(float(prob))
        self.loss_curve.setData(self.steps, self.losses)
        if self.probs and len(self.probs) == len(self.steps):
            self.prob_curve.setData(self.steps, self.probs)

    def set_curve(self, losses: list[float], start: int = 1) -> None:
        """Replace the streamed points with a run's full curve (step i + start for losses[i])."""
        self.steps = list(range(start, start + len(losses)))
        self.losses = [float(v) for v in losses]
        self.loss_curve.setData(self.steps, self.losses)


class RunPanel(QWidget):
    """Run / Pause / Stop / Export GIF buttons with a live step-size control and a status line."""

    run_clicked = Signal()
    stop_clicked = Signal()
    gif_clicked = Signal()

    def __init__(
        self, lr: float, lr_range: tuple[float, float], decimals: int, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Start (F5)")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.stop_button = QPushButton("Stop")
        self.gif_button = QPushButton("Export GIF…")
        self.gif_button.setToolTip("Write the whole run as an animated GIF (with a JSON sidecar)")
        self.lr = _double(lr, lr_range[0], lr_range[1], decimals)
        self.lr.setToolTip("Step size; changes apply to a running job from its next step")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons = QHBoxLayout()
        for b in (self.run_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(buttons)
        row = QHBoxLayout()
        row.addWidget(QLabel("Step size"))
        row.addWidget(self.lr, 1)
        lay.addLayout(row)
        lay.addWidget(self.gif_button)
        lay.addWidget(self.status)
        self.run_button.clicked.connect(self.run_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        self.gif_button.clicked.connect(self.gif_clicked)
        self.set_running(False)
        self.gif_button.setEnabled(False)

    def set_running(self, running: bool) -> None:
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)


class GifMixin:
    """Export of a finished run's recorded frames as an animated GIF (needs self.result and gif_settings())."""

    result: dict[str, Any] | None

    def gif_frames(self) -> list[np.ndarray]:
        if not self.result or not self.result.get("frames"):
            raise EngineError("no finished run to export as GIF yet")
        cols = self.grid_cols() if hasattr(self, "grid_cols") else None
        return [grid(images, cols) for _, images in self.result["frames"]]

    def export_gif(self, path: str | Path, overwrite: bool = False) -> list[Path]:
        """Write the last run as an animated GIF plus FILE.gif.json (engine.export); returns both paths."""
        from engine import export

        frames = self.gif_frames()
        settings = {**self.gif_settings(), "frames": len(frames)}
        return list(export.write_gif(Path(path), frames, settings, overwrite=overwrite))

    def gif_settings(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return {}

    def export_gif_dialog(self) -> None:
        widget: Any = self
        path, _ = QFileDialog.getSaveFileName(
            widget, "Export run as GIF", str(Path.home() / "run.gif"), "GIF (*.gif)"
        )
        if not path:
            return
        try:
            written = self.export_gif(path, overwrite=True)  # the dialog already asked about overwriting
        except (EngineError, OSError) as exc:
            widget.status.emit(f"GIF export failed: {exc}")
            return
        widget.status.emit(f"exported {written[0]}")


class MaximizeView(GifMixin, View):
    """Gradient ascent on the input for the selected layer's units, streamed live."""

    title = "Maximize"
    owner = "maximize"

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.result: dict[str, Any] | None = None
        self.images: np.ndarray | None = None  # (N, H, W, C) float32 shown now
        self.count = 0  # images in the whole run (chunked "all channels" runs)
        self.control: Control | None = None
        self.run_lr = 1.0
        self.run_settings: dict[str, Any] = {}
        self.frames_seen = 0
        self._build()
        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._frame_timer.setInterval(FRAME_INTERVAL_MS)
        self._frame_timer.timeout.connect(self._show_images)
        self.pane.clear_image("pick a layer and press Run")

    # ----- construction ----------------------------------------------------------------------
    def _build(self) -> None:
        form = QWidget()
        fl = QVBoxLayout(form)
        fl.setContentsMargins(4, 4, 4, 4)

        obj = QGroupBox("Objective")
        of = QFormLayout(obj)
        self.layer_label = QLabel("—")
        self.layer_label.setWordWrap(True)
        self.mode_box = _combo(MODES)
        self.channel_spin = _spin(0, 0, 0)
        self.row_spin = _spin(0, 0, 0)
        self.col_spin = _spin(0, 0, 0)
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
        self.start_box = _combo(STARTS)
        self.seed_spin = _spin(0, 0, 2**31 - 1)
        self.param_box = _combo(PARAMS)
        self.steps_spin = _spin(200, 1, 100_000)
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
            check, spin = QCheckBox(label), _double(value, lo, hi, dec)
            check.setChecked(on)
            tf_.addRow(check, spin)
            self.transform_checks[name] = (check, spin)

        regs = QGroupBox("Regularizers")
        rf = QFormLayout(regs)
        self.reg_checks: dict[str, tuple[QCheckBox, QDoubleSpinBox]] = {}
        for name, label, value, lo, hi, dec, on in REGULARIZERS:
            check, spin = QCheckBox(label), _double(value, lo, hi, dec)
            check.setChecked(on)
            rf.addRow(check, spin)
            self.reg_checks[name] = (check, spin)

        opt = QGroupBox("Optimizer")
        pf = QFormLayout(opt)
        self.optimizer_box = _combo(OPTIMIZERS)
        self.schedule_box = _combo(SCHEDULES)
        pf.addRow("Method", self.optimizer_box)
        pf.addRow("Schedule", self.schedule_box)

        self.panel = RunPanel(1.0, (0.01, 100.0), 2)
        fl.addWidget(self.panel)  # Run / Pause / Stop first, so they never scroll out of sight
        for box in (obj, start, trans, regs, opt):
            fl.addWidget(box)
        fl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(280)

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
        bottom = QHBoxLayout()
        bottom.addWidget(self.curve, 1)
        bottom.addWidget(self.analytic)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.pane, 1)
        rl.addLayout(bottom)
        rl.addWidget(self.report)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        self.mode_box.currentIndexChanged.connect(self._update_form)
        for w in (self.channel_spin, self.row_spin, self.col_spin):
            w.valueChanged.connect(self._update_objective)
        self.class_box.currentIndexChanged.connect(self._update_objective)
        self.expr_edit.textChanged.connect(self._update_objective)
        self.panel.run_clicked.connect(self.start)
        self.panel.stop_clicked.connect(self.stop)
        self.panel.pause_button.toggled.connect(self._pause_toggled)
        self.panel.lr.valueChanged.connect(self._lr_changed)
        self.panel.gif_clicked.connect(self.export_gif_dialog)
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

    def run(self) -> None:
        """F5: start a run with the form's settings."""
        self._dirty = False
        self.start()

    def start(self) -> None:
        try:
            params = self.params()
        except EngineError as exc:
            self.panel.status.setText(str(exc))
            self.status.emit(str(exc))
            return
        if self.state.model is None:
            self.panel.status.setText("no model loaded")
            return
        self.control = Control()
        self.run_lr = params["lr"]
        params["control"] = self.control
        self.run_settings = {k: v for k, v in params.items() if k not in ("control", "image")}
        self.run_settings["model"] = self.state.model.get("spec")
        self.result = None
        self.images = None
        self.count = 0
        self.frames_seen = 0
        self.curve.reset()
        self.curve.show_probability(self.mode == "class" or "class:" in str(params["objective"]))
        self.report.setText("")
        self.analytic.hide()
        self.pane.hide_box()
        self.panel.gif_button.setEnabled(False)
        self.panel.set_running(True)
        self.panel.status.setText(f"running {params['objective']} …")
        self.submit("maximize", params)

    def stop(self) -> None:
        """Cancel the running job (honoured within one optimization step)."""
        if self.control is not None:
            self.control.resume()
        if self.jobs.get(""):
            self.cancel()
            self.panel.status.setText("stopped")
        self.panel.set_running(False)

    def _pause_toggled(self, paused: bool) -> None:
        if self.control is None:
            return
        if paused:
            self.control.pause()
            self.panel.pause_button.setText("Resume")
        else:
            self.control.resume()
            self.panel.pause_button.setText("Pause")

    def _lr_changed(self, value: float) -> None:
        if self.control is not None and self.run_lr > 0:
            self.control.lr_scale = float(value) / self.run_lr

    # ----- events -----------------------------------------------------------------------------------
    def job_frame(self, tag: str, event: Frame) -> None:
        images = np.asarray(event.images, np.float32)
        info = dict(event.info)
        offset, count = int(info.get("offset", 0)), int(info.get("count", images.shape[0]))
        if self.images is None or self.images.shape[0] != count or self.images.shape[1:] != images.shape[1:]:
            self.images = np.full((count, *images.shape[1:]), 0.5, np.float32)
        self.images[offset : offset + images.shape[0]] = images
        self.count = count
        self.frames_seen += 1
        prob = info.get("probability")
        self.curve.add(event.step, info.get("loss"), float(np.mean(prob)) if prob else None)
        if not self._frame_timer.isActive():
            self._frame_timer.start()

    def job_progress(self, tag: str, event: Progress) -> None:
        self.curve.add(event.step, event.loss)
        if event.total:
            self.panel.status.setText(f"step {event.step} / {event.total}   objective {event.loss or 0:.4g}")

    def job_finished(self, tag: str, event: Finished) -> None:
        self.panel.set_running(False)
        if event.reason != "done":
            self.panel.status.setText("stopped")
            return
        result = dict(event.result)
        self.result = result
        self.images = np.asarray(result["images"], np.float32)
        self.count = self.images.shape[0]
        self._frame_timer.stop()
        self._show_images()
        losses = result.get("losses") or []
        if losses:
            self.curve.set_curve(losses)
        self.panel.gif_button.setEnabled(bool(result.get("frames")))
        self._show_extras(result)

    def job_failed(self, tag: str, event: Failed) -> None:
        self.panel.set_running(False)
        self.panel.status.setText(event.message)
        if self.images is None:
            self.pane.clear_image(event.message)

    def _show_extras(self, result: dict[str, Any]) -> None:
        lines = []
        start, end = result.get("start_objective") or (), result.get("objective") or ()
        if len(end) == 1 and len(start) == 1:
            lines.append(
                f"objective {start[0]:.4g} → {end[0]:.4g} over {len(result.get('losses') or ())} steps"
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

    def _show_images(self) -> None:
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
