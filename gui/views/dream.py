"""DeepDream on the current image, live: octaves, steps, step size, and which layers dream.

The layers field takes the engine's objective grammar (engine.maximize.objectives): one or
more layers joined with "+" ("conv2 + 0.5*conv3", each the mean square of its output), or
one channel ("conv3:5", the single-map mode). "Use selected layer" fills it from the layer
tree (with the channel when one is set). The run is one "dream" job (DreamParams,
engine.maximize.contract): Frames show the photo as it dreams (at its own size, octave by
octave), the curve the objective; its DreamOutput is read by attribute. Pause/resume and the
step size act on the running job; Stop cancels it within one step. The window's Export writes
the dreamed image; Export GIF the whole run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
)

from engine.errors import EngineError
from engine.jobs import Finished, Frame, Progress
from engine.maximize.contract import DreamParams, StepInfo
from engine.maximize.figures import grid
from engine.plot.spec import FigureSpec
from gui import settings as cfg
from gui.views.live import LiveRunView
from gui.widgets.fields import double_spin, int_spin


class DreamView(LiveRunView):
    """DeepDream of the current image with the chosen layers, streamed live."""

    title = "DeepDream"
    owner = "dream"

    def setup(self) -> None:
        self.image: np.ndarray | None = None  # (1, H, W, C) shown now
        self.run_photo: np.ndarray | None = None
        self.run_lr = 0.01
        what = QGroupBox("Dream with")
        wf = QFormLayout(what)
        self.layers_edit = QLineEdit()
        self.layers_edit.setPlaceholderText("e.g. conv2 + 0.5*conv3, or conv3:5 for one map")
        self.follow = QCheckBox("Follow the selected layer")
        self.follow.setChecked(True)
        self.channel_spin = int_spin(-1, -1, 0)
        self.channel_spin.setSpecialValueText("whole layer")
        self.channel_spin.setToolTip("One channel of the selected layer dreams alone (single-map mode)")
        self.use_button = QPushButton("Use selected layer")
        wf.addRow("Layers", self.layers_edit)
        wf.addRow(self.follow)
        wf.addRow("Channel", self.channel_spin)
        wf.addRow(self.use_button)
        how = QGroupBox("Octaves and steps")
        hf = QFormLayout(how)
        self.octaves_spin = int_spin(4, 1, 12)
        self.scale_spin = double_spin(1.4, 1.0, 4.0, 2)
        self.steps_spin = int_spin(20, 1, 10_000)
        self.seed_spin = int_spin(0, 0, 2**31 - 1)
        self.size_spin = int_spin(384, 0, 4096)
        self.size_spin.setSpecialValueText("photo size")
        self.size_spin.setToolTip("Shrink a larger photo to this longest side first (0: keep its size)")
        hf.addRow("Octaves", self.octaves_spin)
        hf.addRow("Octave scale", self.scale_spin)
        hf.addRow("Steps per octave", self.steps_spin)
        hf.addRow("Longest side at most", self.size_spin)
        hf.addRow("Seed", self.seed_spin)
        self.run_widgets(0.01, (0.0005, 1.0), 4, "The dreamed image")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.lay_out([what, how], [self.curve], self.note, 260)
        self.use_button.clicked.connect(self.use_selected_layer)
        self.channel_spin.valueChanged.connect(
            lambda _v: self.follow.isChecked() and self.use_selected_layer()
        )
        self.pane.clear_image("select an image and press Run")

    # ----- form ----------------------------------------------------------------------------------------
    def use_selected_layer(self) -> None:
        info = self.state.layer_info()
        if info is None or info.kind == "model":
            return
        shape = tuple(info.output_shape)
        channels = int(shape[-1] or 0) if shape else 0
        self.channel_spin.blockSignals(True)
        self.channel_spin.setMaximum(max(-1, channels - 1))
        self.channel_spin.blockSignals(False)
        channel = self.channel_spin.value()
        self.layers_edit.setText(info.path if channel < 0 else f"{info.path}:{channel}")

    def layers(self) -> str:
        text = self.layers_edit.text().strip()
        if not text:
            raise EngineError("name the layers to dream with (select a layer in the tree)")
        return text

    def params(self) -> DreamParams:
        """The "dream" job's params for the current form (EngineError when it cannot run)."""
        if self.state.image is None:
            raise EngineError("no image to dream on: open one or pick a sample")
        limit = int(self.size_spin.value())
        return DreamParams(
            image=self.state.image,
            layers=self.layers(),
            octaves=int(self.octaves_spin.value()),
            octave_scale=float(self.scale_spin.value()),
            steps=int(self.steps_spin.value()),
            lr=float(self.panel.lr.value()),
            seed=int(self.seed_spin.value()),
            every=None,  # frames as often as fps allows
            fps=25.0,
            # shrink big photos; small ones dream at their own size
            size=limit if limit > 0 and max(self.state.image.shape[:2]) > limit else None,
        )

    # ----- refresh and runs ------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self.follow.isChecked():
            self.use_selected_layer()
        if self.follow_model() == "none":
            return
        if self.image is None and self.state.image is not None:
            self.pane.set_image(grid(self.state.image[None]))
            self.pane.set_message("")

    def begin_run(self, params: DreamParams) -> str:
        self.run_settings["image"] = self.state.image_spec
        self.run_photo = params.image  # the photo this run dreams on (the figure shows it beside the dream)
        self.image = None
        self.note.setText("")
        return f"dreaming with {params.layers} …"

    # ----- events --------------------------------------------------------------------------------------------
    def job_frame(self, tag: str, event: Frame) -> None:
        self.image = np.asarray(event.images, np.float32)
        info: StepInfo = event.info
        self.curve.add(event.step, info.loss)
        if info.octave is not None and info.shape is not None:
            h, w = info.shape
            self.note.setText(f"octave {info.octave + 1}: dreaming at {w}×{h}")
        self.frame_arrived()

    def job_progress(self, tag: str, event: Progress) -> None:
        self.curve.add(event.step, event.loss)
        if event.total:
            self.panel.status.setText(f"step {event.step} / {event.total}")

    def job_finished(self, tag: str, event: Finished) -> None:
        if not self.finish(event) or self.result is None:
            return
        self.image = np.asarray(self.result.images, np.float32)
        self.show_frame()
        if self.result.losses:
            self.curve.set_curve(list(self.result.losses))
        self.panel.gif_button.setEnabled(bool(self.result.frames))
        s = self.result.settings  # the run's settings: a plain dict, as the export sidecar writes it
        self.note.setText(
            f"{s.get('layers', '')}: {s.get('octaves', '?')} octaves × {s.get('steps', '?')} steps at "
            f"{'×'.join(str(v) for v in s.get('size', ()))}"
        )
        self.panel.status.setText("done")

    def show_frame(self) -> None:
        if self.image is not None:
            self.pane.set_image(grid(self.image))

    # ----- export and settings ----------------------------------------------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self.image is None:
            raise EngineError("nothing to export yet: press Run")
        return grid(self.image), self.gif_settings()

    def figure_spec(self) -> FigureSpec:
        """The figure `export dream` draws (engine.plot.optimize): the photo, the dream, the curve."""
        from engine.plot.optimize import dream_figure

        if self.image is None or self.result is None or self.run_photo is None:
            raise EngineError("nothing to export yet: press Run")
        r, model = self.result, self.state.model
        settings = {**self.gif_settings(), **dict(r.settings)}
        layers = str(r.objective or r.settings.get("layers", ""))
        image = str(self.run_settings.get("image") or "")  # the spec, as `export dream --image` names it
        return dream_figure(
            self.run_photo,
            self.image,
            list(r.losses) or None,
            layers,
            model.name if model else "",
            image,
            settings,
        )

    def export_values(self) -> np.ndarray | None:
        return None if self.image is None else np.asarray(self.image, np.float32)

    def gif_settings(self) -> dict[str, Any]:
        meta = {**self.base_settings(), "kind": "dream", **self.run_settings}
        meta["image"] = self.run_settings.get("image", self.state.image_spec)
        meta["scaling"] = self.state.model.scaling if self.state.model is not None else None
        return meta

    def save_settings(self, s: QSettings) -> None:
        s.setValue("layers", self.layers_edit.text())
        s.setValue("follow", self.follow.isChecked())
        s.setValue("octaves", int(self.octaves_spin.value()))
        s.setValue("octave_scale", float(self.scale_spin.value()))
        s.setValue("steps", int(self.steps_spin.value()))
        s.setValue("size", int(self.size_spin.value()))
        s.setValue("seed", int(self.seed_spin.value()))
        s.setValue("lr", float(self.panel.lr.value()))

    def restore_settings(self, s: QSettings) -> None:
        self.follow.setChecked(cfg.read(s, "follow", True, bool))
        self.layers_edit.setText(cfg.read(s, "layers", "", str))
        self.octaves_spin.setValue(cfg.read(s, "octaves", 4, int))
        self.scale_spin.setValue(cfg.read(s, "octave_scale", 1.4, float))
        self.steps_spin.setValue(cfg.read(s, "steps", 20, int))
        self.size_spin.setValue(cfg.read(s, "size", 384, int))
        self.seed_spin.setValue(cfg.read(s, "seed", 0, int))
        self.panel.lr.setValue(cfg.read(s, "lr", 0.01, float))
