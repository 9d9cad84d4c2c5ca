"""Activation maximization, live: pick a unit, press Run, watch its image grow beside its curve.

The form (gui/views/maximize_panel.py) builds an objective object of
engine.maximize.objective_terms from the layer selected in the tree: a channel, a neuron, the
whole layer, a class, every channel of the layer (a grid filled chunk by chunk), or a free
expression (parsed by the engine's grammar). The run is one "maximize" job (MaximizeParams,
engine.maximize.contract) on the engine thread; its Frames update the image pane (throttled to
~30 updates a second) and its Progress events the objective curve (and the class probability
for class objectives); its MaximizeOutput is read by attribute. Pause/resume and the step size
act on the running job's handle (EngineClient.pause / set_lr_scale); Stop cancels it within one
step. Export writes the result (a grid for a batch) as PNG through the window's Export, and the
whole run as an animated GIF.

Units are read before their fused activation by default (Lucid's "pre_relu"); "After the
activation" reads the post-ReLU unit. When the engine finds the unit silent from the chosen start
(zero gradient on the first steps) the run stops early and the tab offers the remedy in one click
("Read before the activation", "Start from the photo"), each re-running at once.

When the layer changes the tab opens on the layer's most selective channel and names its dead
units (gui/views/maximize_units.py). The run life cycle, RunPanel, CurvePlot and GIF export are
shared with the DeepDream tab (gui/views/live.py).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings

from engine.errors import EngineError
from engine.jobs import Failed, Finished, Frame, Progress
from engine.maximize.contract import MaximizeParams, StepInfo
from engine.maximize.figures import grid, tile_at
from engine.maximize.objective_terms import channel, class_logit, layer, neuron
from engine.maximize.objectives import Expr, as_expressions, parse
from engine.maximize.optimizers import SCHEDULES
from engine.plot.spec import FigureSpec
from gui import settings as cfg
from gui.views.live import LiveRunView
from gui.views.maximize_panel import (
    MODES,
    OPTIMIZERS,
    PARAMS,
    REGULARIZERS,
    STARTS,
    TRANSFORMS,
    MaximizeForm,
)
from gui.views.maximize_units import DEEP_SCAN_IMAGES, SCAN_IMAGES, UnitSurvey
from gui.widgets.controls import select_data

__all__ = [
    "CHUNK",
    "DEEP_SCAN_IMAGES",
    "MODES",
    "OPTIMIZERS",
    "PARAMS",
    "REGULARIZERS",
    "SCAN_IMAGES",
    "SCHEDULES",
    "STARTS",
    "TRANSFORMS",
    "MaximizeView",
]

CHUNK = 16  # images per batch when filling "all channels" of a layer


class MaximizeView(MaximizeForm, UnitSurvey, LiveRunView):
    """Gradient ascent on the input for the selected layer's units, streamed live."""

    title = "Maximize"
    owner = "maximize"

    def setup(self) -> None:
        self.images: np.ndarray | None = None  # (N, H, W, C) float32 shown now
        self._read_before = False  # the "Read before the activation" remedy forces it for one run
        self.count = 0  # images in the whole run (chunked "all channels" runs)
        self._reset_survey()
        self._build()
        self.pane.clear_image("pick a layer and press Run")

    # ----- the objective --------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return str(self.mode_box.currentData())

    def set_mode(self, mode: str) -> None:
        select_data(self.mode_box, mode, "mode")

    def set_objective(self, objective: str | Expr) -> None:
        """Show `objective` (an objective object or its text) in the form: one channel ("conv3:5") or
        one neuron ("conv3:5@10,12") selects its layer and mode, anything else is an expression.
        A channel handed in this way is kept (the tab does not re-pick it)."""
        m = re.fullmatch(r"\s*([^:@\s]+):(\d+)(?:@(\d+),(\d+))?\s*", str(objective))
        if m is None or self.state.layer_info(m.group(1)) is None:
            self.set_mode("expression")
            self.expr_edit.setText(str(objective))
            return
        path = m.group(1)
        self._chosen_for = (self.state.model_spec, path)
        self.state.set_layer(path)
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
        names = list(self.state.class_names)
        n_classes = self.state.num_classes or len(names)
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

    def objective(self) -> Expr:
        """The objective object the current form describes (EngineError when it cannot run);
        str() of it is its text in the engine's grammar."""
        mode = self.mode
        if mode == "expression":
            text = self.expr_edit.text().strip()
            if not text:
                raise EngineError("type an objective expression, e.g. conv3:5 or class:2")
            return parse(text)
        if mode == "class":
            if self.class_box.count() == 0:
                raise EngineError("this model has no classes")
            return class_logit(self.class_box.currentIndex())
        info = self.state.layer_info()
        if info is None:
            raise EngineError("select a layer in the tree")
        if info.kind == "model":
            raise EngineError(f"{info.name} is a nested model: select a layer inside it")
        if mode == "layer":
            return layer(info.path)
        if mode == "all":
            return channel(info.path, "*")
        if mode == "neuron":
            if len(info.output_shape) != 3:
                raise EngineError(f"{info.path} has no spatial axes: use Channel mode for its units")
            return neuron(info.path, self.channel_spin.value(), self.row_spin.value(), self.col_spin.value())
        return channel(info.path, self.channel_spin.value())

    def _update_objective(self) -> None:
        try:
            self.objective_label.setText(str(self.objective()))
        except EngineError as exc:
            self.objective_label.setText(f"<i>{exc}</i>")

    def params(self) -> MaximizeParams:
        """The "maximize" job's params for the current form (EngineError when it cannot run)."""
        init = self.start_box.currentData()
        if init == "photo" and self.state.image is None:
            raise EngineError("start 'photo' needs an image: open one or pick a sample")
        return MaximizeParams(
            objective=self.objective(),
            steps=int(self.steps_spin.value()),
            init=init,
            seed=int(self.seed_spin.value()),
            param=self.param_box.currentData(),
            transforms=self.transforms(),
            regularizers=self.regularizers(),
            optimizer=self.optimizer_box.currentData(),
            schedule=self.schedule_box.currentText(),
            lr=float(self.panel.lr.value()),
            every=None,  # frames as often as fps allows
            fps=25.0,
            # unchecked: auto (before the activation, except a first-layer conv: read_before_activation)
            pre_activation=False if self.post_check.isChecked() else (True if self._read_before else None),
            image=self.state.image if init == "photo" else None,
            chunk=CHUNK if self.mode == "all" else 0,
        )

    # ----- refresh and runs -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Model or layer changed: update the form; a run on another model is stopped."""
        self._update_form()
        followed = self.follow_model()
        if followed == "none":
            return
        if followed == "changed":
            self.result = None
            self.images = None
            self.pane.clear_image("model changed: press Run")
        self.pick_unit()

    # ----- runs ------------------------------------------------------------------------------------------
    def begin_run(self, params: MaximizeParams) -> str:
        self.images = None
        self.count = 0
        self._pause_scan()
        self.curve.show_probability(any(e.uses_class for e in as_expressions(params.objective)))
        info = self.state.layer_info()
        if self.mode in ("channel", "neuron", "layer", "all") and info is not None:
            # the export command names the unit as --layer with --channel (spatial) or --unit (dense)
            self.run_settings.update(objective_layer=info.path, layer_rank=len(info.output_shape))
        if params.init == "photo":
            self.run_settings["photo"] = self.state.image_spec
        self.report.setText("")
        self.remedy.hide()
        self.analytic.hide()
        self.pane.hide_box()
        return f"running {params.objective} …"

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
        info: StepInfo = event.info
        offset, count = info.offset, info.count if info.count is not None else images.shape[0]
        if self.images is None or self.images.shape[0] != count or self.images.shape[1:] != images.shape[1:]:
            self.images = np.full((count, *images.shape[1:]), 0.5, np.float32)
        self.images[offset : offset + images.shape[0]] = images
        self.count = count
        prob = info.probability
        self.curve.add(event.step, info.loss, float(np.mean(prob)) if prob else None)
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
        result = self.result
        self.images = np.asarray(result.images, np.float32)
        self.count = self.images.shape[0]
        self.show_frame()
        if result.losses:
            self.curve.set_curve(list(result.losses))
        self.panel.gif_button.setEnabled(bool(result.frames))
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

    def _show_extras(self, result: Any) -> None:
        """The report under the image: the objective's change, silent units, predictions, boxes."""
        lines = []
        start, end, message = result.start_objective, result.objective, result.message
        if len(end) == 1 and len(start) == 1:
            lines.append(f"objective {start[0]:.4g} → {end[0]:.4g} over {len(result.losses)} steps")
            if not message and abs(end[0] - start[0]) <= 1e-6 + 1e-3 * abs(start[0]):
                lines.append(
                    "the objective barely moved: try more steps, a larger step size or another start"
                )
        elif end:
            lines.append(f"{len(end)} images; mean objective {np.mean(start):.4g} → {np.mean(end):.4g}")
        if message:
            lines.append(message)
        self._offer_remedy(bool(message))
        report = result.report
        if report:
            lines.append(report[0] if len(report) == 1 else f"{len(report)} predictions, first: {report[0]}")
        boxes, rfs = result.changed_boxes, result.receptive_fields
        if len(boxes) == 1 and boxes[0] is not None:
            top, left, bottom, right = boxes[0]
            self.pane.show_box(top, left, bottom, right)
            rf = f"; receptive field {rfs[0][2] - rfs[0][0]}×{rfs[0][3] - rfs[0][1]} px" if rfs else ""
            lines.append(
                f"changed pixels: rows {top}–{bottom - 1}, cols {left}–{right - 1}{rf} (box on the image)"
            )
        if result.analytic is not None and len(result.analytic):
            self.analytic.set_image(grid(np.asarray(result.analytic), self.grid_cols()))
            self.analytic.show()
            lines.append(
                "beside the curve: the analytic maximizer of this first-layer unit (sign of its weights)"
            )
        self.report.setText("\n".join(lines))
        stopped = result.stopped == "silent"
        self.panel.status.setText("stopped early: the unit is silent from this start" if stopped else "done")

    def _offer_remedy(self, silent: bool) -> None:
        """Show the one-click remedies that apply to the run that just found silent units."""
        post = self.result is not None and self.result.settings.get("pre_activation") is False
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
        objectives = self.result.objectives if self.result is not None else ()
        name = objectives[index] if index < len(objectives) else f"image {index}"
        values = self.result.objective if self.result is not None else ()
        value = f": objective {values[index]:.4g}" if index < len(values) else ""
        self.panel.status.setText(f"{name}{value}")

    # ----- export and settings ------------------------------------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self.images is None:
            raise EngineError("nothing to export yet: press Run")
        return grid(self.images, self.grid_cols()), self.gif_settings()

    def figure_spec(self) -> FigureSpec:
        """The figure `export maximize` draws (engine.plot.optimize): the images, their objectives, the curve."""
        from engine.plot.optimize import maximize_figure

        if self.images is None or self.result is None:
            raise EngineError("nothing to export yet: press Run")
        r, model = self.result, self.state.model
        return maximize_figure(
            self.images,
            list(r.objectives),
            list(r.losses) or None,
            model.name if model else "",
            str(self.run_settings.get("objective", "")),
            dict(r.settings),
            start=list(r.start_objective) or None,
            final=list(r.objective) or None,
            cols=self.grid_cols(),
        )

    def export_values(self) -> np.ndarray | None:
        return None if self.images is None else np.asarray(self.images, np.float32)

    def gif_settings(self) -> dict[str, Any]:
        meta = {**self.base_settings(), "kind": "maximize", **self.run_settings}
        meta["scaling"] = self.state.model.scaling if self.state.model is not None else None
        meta.pop("image", None)
        if meta.get("init") == "photo":  # the photo the run started from
            meta["image"] = self.run_settings.get("photo", self.state.image_spec)
        if self.result is not None:
            for key, name in (
                ("objectives", "objectives"),
                ("start_objective", "start_objective"),
                ("objective", "final_objective"),
                ("report", "report"),
            ):
                value = getattr(self.result, key)
                if value:
                    meta[name] = list(value)
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
