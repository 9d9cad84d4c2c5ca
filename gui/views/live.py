"""What the live optimization tabs (Maximize, DeepDream) share: the run panel, the curve, GIF export
and the run life cycle.

LiveRunView runs one engine job at a time. Pause/Resume and the step size act on the running job
through its handle in the engine (EngineClient.pause / set_lr_scale: the job's CancelToken is its
live control); Stop cancels it within one step. Frames arrive as fast as the engine makes them; a
single-shot timer shows at most ~30 a second (FRAME_INTERVAL_MS). A subclass supplies setup()
(its state and widgets), params() (the job's typed params, e.g. engine.maximize.contract's
MaximizeParams), begin_run(params) (reset its own display; returns the status line),
show_frame() (paint the latest frame) and the job_* handlers for its typed result (self.result).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from engine.jobs import Failed, Finished, JobParams
from engine.maximize.figures import grid
from gui.views.base import View
from gui.widgets.controls import single_shot_timer
from gui.widgets.fields import double_spin

FRAME_INTERVAL_MS = 33  # at most ~30 pane updates a second


def plain(value: Any) -> Any:
    """A JSON-ready copy of a params value for the export sidecar: objective objects as their text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


class CurvePlot(pg.PlotWidget):
    """The objective's curve over the steps, with an optional class-probability curve on a right axis.

    Axes show real values (no SI-prefix rescaling such as "objective (x0.001)"); before the first
    point the axes show no numbers, only a placeholder, so an empty curve claims no range.
    """

    PLACEHOLDER = "the objective appears here when a run starts"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.setMinimumHeight(120)
        self.setMaximumHeight(160)
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
        for name in ("left", "bottom", "right"):
            plot.getAxis(name).enableAutoSIPrefix(False)
        self.prob_view.setXLink(plot)
        self.prob_curve = pg.PlotDataItem(
            [], [], pen=pg.mkPen("#e0a040", width=1, style=Qt.PenStyle.DashLine)
        )
        self.prob_view.addItem(self.prob_curve)
        self.placeholder = pg.TextItem(self.PLACEHOLDER, color="#909090", anchor=(0.5, 0.5))
        plot.vb.addItem(self.placeholder, ignoreBounds=True)
        plot.vb.sigResized.connect(self._sync)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.probs: list[float] = []
        self.show_probability(False)
        self._set_empty(True)

    def _sync(self) -> None:
        self.prob_view.setGeometry(self.getPlotItem().vb.sceneBoundingRect())

    @property
    def empty(self) -> bool:
        return not self.steps

    def _set_empty(self, empty: bool) -> None:
        """Hide the tick numbers and show the placeholder while there is no point to plot."""
        plot = self.getPlotItem()
        for name in ("left", "bottom"):
            plot.getAxis(name).setStyle(showValues=not empty)
        self.placeholder.setVisible(empty)
        if empty:
            plot.vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            self.placeholder.setPos(0.5, 0.5)
        else:
            plot.vb.enableAutoRange()

    def show_probability(self, shown: bool) -> None:
        self.getPlotItem().getAxis("right").setVisible(shown)
        self.prob_curve.setVisible(shown)

    def reset(self) -> None:
        self.steps, self.losses, self.probs = [], [], []
        self.loss_curve.setData([], [])
        self.prob_curve.setData([], [])
        self._set_empty(True)

    def add(self, step: int, loss: float | None, prob: float | None = None) -> None:
        if loss is None or not np.isfinite(loss):
            return
        if self.steps and step <= self.steps[-1]:
            return
        if self.empty:
            self._set_empty(False)
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
        self._set_empty(not self.steps)


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
        self.lr = double_spin(lr, lr_range[0], lr_range[1], decimals)
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
    """Export of a finished run's recorded frames as an animated GIF (needs self.result, a MaximizeOutput
    or DreamOutput, and gif_settings())."""

    result: Any

    def gif_frames(self) -> list[np.ndarray]:
        if self.result is None or not self.result.frames:
            raise EngineError("no finished run to export as GIF yet")
        cols = self.grid_cols() if hasattr(self, "grid_cols") else None
        return [grid(images, cols) for _, images in self.result.frames]

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


class LiveRunView(GifMixin, View):
    """A tab that runs one live optimization job (the kind of its params()) and streams its frames."""

    panel: RunPanel
    curve: CurvePlot
    pane: Any  # gui.widgets.image_pane.ImagePane

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.result: Any = None  # the finished run's typed result (MaximizeOutput, DreamOutput)
        self.run_lr = 1.0
        self.run_settings: dict[str, Any] = {}
        self.frames_seen = 0
        self._frame_timer = single_shot_timer(self, FRAME_INTERVAL_MS, self.show_frame)
        self.setup()

    def run_widgets(self, lr: float, lr_range: tuple[float, float], decimals: int, pane_tip: str) -> None:
        """The run panel (Run / Pause / Stop, the live step size from `lr` on `lr_range`), the image
        pane (tooltip `pane_tip`) and the loss curve every live tab has."""
        from gui.widgets.image_pane import ImagePane

        self.panel = RunPanel(lr, lr_range, decimals)
        self.pane = ImagePane()
        self.pane.setToolTip(pane_tip)
        self.curve = CurvePlot()

    def lay_out(
        self,
        boxes: list[QWidget],
        under_pane: list[QWidget],
        note: QWidget,
        min_width: int,
    ) -> None:
        """The tab's layout: on the left a scrolling form, the run panel first (so Run / Pause / Stop
        never scroll out of sight) then `boxes`; on the right the image gets most of the room: a
        vertical splitter (stretch 5 : 1) holds self.pane over a compact strip of `under_pane` (the
        curve first, stretching; then e.g. a thumbnail) and `note` beside them. Wires the run panel."""
        form = QWidget()
        fl = QVBoxLayout(form)
        fl.setContentsMargins(4, 4, 4, 4)
        for box in (self.panel, *boxes):
            fl.addWidget(box)
        fl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(form)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(max(min_width, form.minimumSizeHint().width() + bar + 2))
        top = QWidget()
        tl = QHBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.pane, 1)
        strip = QWidget()
        sl = QHBoxLayout(strip)
        sl.setContentsMargins(0, 0, 0, 0)
        for i, widget in enumerate(under_pane):
            sl.addWidget(widget, 3 if i == 0 else 0)
        note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        if isinstance(note, QLabel):
            note.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        note.setMinimumWidth(130)
        sl.addWidget(note, 2)
        strip.setMinimumHeight(130)
        strip.setMaximumHeight(200)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(strip)
        right.setStretchFactor(0, 5)
        right.setStretchFactor(1, 1)
        right.setChildrenCollapsible(False)
        self.right_split = right
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self.connect_panel()

    def connect_panel(self) -> None:
        """Wire the run panel (lay_out does it)."""
        self.panel.run_clicked.connect(self.start)
        self.panel.stop_clicked.connect(self.stop)
        self.panel.pause_button.toggled.connect(self._pause_toggled)
        self.panel.lr.valueChanged.connect(self._lr_changed)
        self.panel.gif_clicked.connect(self.export_gif_dialog)

    # ----- hooks ---------------------------------------------------------------------------------
    def setup(self) -> None:  # pragma: no cover - overridden
        """Build the tab's state and widgets (called at the end of __init__)."""
        raise NotImplementedError

    def params(self) -> Any:  # pragma: no cover - overridden
        """The job's typed params (a JobParams dataclass with an `lr` field) for the current form."""
        raise NotImplementedError

    def begin_run(self, params: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def show_frame(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # ----- the run life cycle ------------------------------------------------------------------------
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
        assert isinstance(params, JobParams)
        self.run_lr = float(params.lr)
        self.run_settings = {k: plain(v) for k, v in params.as_dict().items() if k != "image"}
        self.run_settings["model"] = self.state.model_spec
        self.result = None
        self.frames_seen = 0
        self.curve.reset()
        status = self.begin_run(params)
        self.panel.gif_button.setEnabled(False)
        self.panel.set_running(True)
        self.panel.status.setText(status)
        self.submit(params)

    def stop(self) -> None:
        """Cancel the running job (honoured within one optimization step, also while paused)."""
        if self.jobs.get(""):
            self.cancel()
            self.panel.status.setText("stopped")
        self.panel.set_running(False)

    def _pause_toggled(self, paused: bool) -> None:
        job_id = self.jobs.get("")
        if job_id is None:
            return
        self.client.pause(job_id, paused)
        self.panel.pause_button.setText("Resume" if paused else "Pause")

    def _lr_changed(self, value: float) -> None:
        job_id = self.jobs.get("")
        if job_id is not None and self.run_lr > 0:
            self.client.set_lr_scale(job_id, float(value) / self.run_lr)

    def follow_model(self) -> str:
        """For refresh(): stop a run when the model is gone ("none") or another one is loaded
        ("changed"); "same" otherwise. With no model the pane says why."""
        if self.state.model is None:
            self.stop()
            self.pane.clear_image("loading engine…" if not self.client.is_ready else "no model")
            return "none"
        if self.run_settings.get("model") not in (None, self.state.model_spec):
            self.stop()
            return "changed"
        return "same"

    def frame_arrived(self) -> None:
        """Count a frame and schedule its painting (throttled)."""
        self.frames_seen += 1
        if not self._frame_timer.isActive():
            self._frame_timer.start()

    def finish(self, event: Finished) -> bool:
        """End of the job: True (and self.result set, the final frame shown) when it ran to the end."""
        self.panel.set_running(False)
        if event.reason != "done":
            self.panel.status.setText("stopped")
            return False
        self.result = event.result
        self._frame_timer.stop()
        return True

    def job_failed(self, tag: str, event: Failed) -> None:
        self.panel.set_running(False)
        self.panel.status.setText(event.message)
