"""Attribution: which part of the photo made the network say this class?

The photo pane shows the class activation map (or a saliency map) laid over the photo on
its own pixel grid, projected through each cell's receptive field by the chosen mapping;
a second target can be shown beside the first on one shared colour scale. The coarse pane
shows the raw layer map with its cell grid; hovering a cell outlines its receptive field on
the photo. "Score" runs the quality scores of the current map (deletion and insertion
curves against the chosen baseline, plotted; the baseline is named beside the AUC) on the
engine thread.

The layer: the engine's default (the last layer with spatial extent, where class maps are
meaningful) until the user picks a layer, either in the layer tree (a click, not the
window's automatic selection at start-up: AppState.layer_by_user) or in the tab's own
"Layer" field, which lists the layers with spatial extent and names the one in use.

The maps come from the "cam" and "saliency" jobs, asked with CamParams / SaliencyParams and
answered with a CamOutput / SaliencyOutput (engine.attribution.contract; every default,
SmoothGrad's samples and Integrated Gradients' steps included, is declared there), the
scores from "metrics" (MetricsParams -> MetricsOutput). The widgets are built in
attribution_panel.py; the pictures (engine.attribution.figures, the functions `python main.py
export cam` uses, rendered off the main thread, newest wins), the hover geometry and the
export sidecar are in attribution_draw.py. This module never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QWidget

from engine.attribution.commands import saliency_subject
from engine.attribution.contract import (
    CamOutput,
    CamParams,
    MetricsOutput,
    MetricsParams,
    SaliencyOutput,
    SaliencyParams,
)
from engine.attribution.methods import FAST_CHANNELS
from engine.attribution.metrics import DEFAULT_BASELINE
from engine.contract import ImageParams
from engine.errors import EngineError
from engine.jobs import Failed, Finished, Progress
from engine.plot.spec import FigureSpec
from gui import settings as cfg
from gui.views import attribution_draw as draw
from gui.views.attribution_boxes import BoxController, metrics_note
from gui.views.attribution_panel import (
    CAM_METHODS,
    FAST_SCORECAM,
    MAPPINGS,
    SALIENCY_METHODS,
    STYLES,
    AttributionPanel,
)
from gui.views.base import View
from gui.widgets.render_worker import RenderWorker

__all__ = ["CAM_METHODS", "MAPPINGS", "SALIENCY_METHODS", "SCORE_STEPS", "STYLES", "AttributionView"]

SCORE_STEPS = 24  # deletion/insertion steps of "Score this map": a quicker curve than the engine's 32


class AttributionView(AttributionPanel, View):
    """CAM and saliency maps of the current image, with target, method, mapping and look controls."""

    title = "Attribution"
    owner = "attribution"

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self._build_panel()
        self.result: CamOutput | SaliencyOutput | None = None  # the last cam/saliency job's answer
        self.rendered: tuple | None = None  # (overlay, coarse, cell)
        self.rendered_look: dict[str, Any] = {}
        self.scores: MetricsOutput | None = None
        self.request: CamParams | SaliencyParams | None = None  # what the last map was asked with
        self.request_image: str | None = None  # ... and the spec of its image
        self.probs: np.ndarray | None = None  # the image's class probabilities (a saliency figure's title)
        self._model_spec: str | None = None
        # which layer the tab uses: "follow" the tree once the user has picked there (else the
        # engine's default), "auto" (the default, chosen in the field) or "field" (self._field_layer)
        self._layer_mode = "follow"
        self._field_layer: str | None = None
        self._layer_in_use: str | None = None  # what the last request asked for (None: the default)
        self._scoring = False  # a metrics job is in flight
        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_rendered)
        self.renderer.failed.connect(lambda message: self.photo_pane.clear_image(message.splitlines()[0]))
        self._fill_targets()
        for box in (self.target_box, self.compare_box, self.method_box, self.mapping_box):
            box.currentIndexChanged.connect(self._request_changed)
        for box in (self.style_box, self.cmap_box):
            box.currentIndexChanged.connect(self._look_changed)
        self.alpha.valueChanged.connect(self._look_changed)
        self.layer_box.activated.connect(self._on_layer_field)
        self.baseline_box.currentIndexChanged.connect(self._baseline_changed)
        # the tree's layer matters only through layer_for_cam: refresh when that changes; a new
        # model starts on the engine's default layer again (reset before the refresh)
        state.layer_changed.disconnect(self.invalidate)
        state.layer_changed.connect(self._on_tree_layer)
        state.model_changed.disconnect(self.invalidate)
        state.model_changed.connect(self._on_model_changed)
        self.coarse_pane.hovered.connect(self._on_coarse_hovered)
        self.score_button.clicked.connect(self.score)
        self.user_boxes = BoxController(self)  # the user's own boxes on the photo, and their scores
        self.photo_pane.clear_image("loading engine…")
        self._fill_layer_field()
        self._update_enabled()
        self.sanity_button.clicked.connect(self.sanity_check)
        self.compare_methods_button.clicked.connect(self.compare_methods)

    def sanity_check(self) -> None:
        """Open the Sanity check dialog (gui/views/sanity_dialog.py) on the map the fields ask for now."""
        from gui.views.sanity_dialog import open_sanity_dialog

        open_sanity_dialog(self)

    def compare_methods(self) -> None:
        """Open the Compare methods dialog (gui/views/compare_dialog.py) on the tab's image, target and layer."""
        from gui.views.compare_dialog import open_compare_dialog

        open_compare_dialog(self)

    @property
    def kind(self) -> str:
        """What the shown map is: "cam" or "saliency"."""
        return self.result.kind if self.result is not None else "cam"

    # ----- the layer ------------------------------------------------------------------
    def _tree_layer(self) -> str | None:
        """The tree's layer when the user picked it and it has spatial extent, else None."""
        if not self.state.layer_by_user:
            return None
        return self.state.layer if self.state.layer in self.state.spatial_layers() else None

    def layer_for_cam(self) -> str | None:
        """The layer to explain; None means the engine's default (the last one with spatial extent).

        The layer picked in the tab's field, else the tree's layer once the user has picked one
        there and it has spatial extent, else None.
        """
        if self._layer_mode == "field" and self._field_layer in self.state.spatial_layers():
            return self._field_layer
        if self._layer_mode == "follow":
            return self._tree_layer()
        return None

    def set_layer(self, path: str | None) -> None:
        """Pick the layer in the tab's own field, as the user does (None: auto, the engine's default)."""
        if path is not None and path not in self.state.spatial_layers():
            raise EngineError(f"layer {path!r} has no spatial extent here")
        self._layer_mode = "auto" if path is None else "field"
        self._field_layer = path
        self._layer_settled()

    def _on_layer_field(self, index: int) -> None:
        self.set_layer(self.layer_box.itemData(index))

    def _on_model_changed(self) -> None:
        self._layer_mode, self._field_layer = "follow", None
        self._fill_layer_field()
        self.invalidate()

    def _on_tree_layer(self) -> None:
        if self.state.layer_by_user:  # a pick in the tree: follow it from now on
            self._layer_mode = "follow"
            self._field_layer = None
        self._layer_settled()

    def _layer_settled(self) -> None:
        """Show the layer in use in the field; recompute when it is not what the map was made on."""
        self._show_layer_field()
        if self.layer_for_cam() != self._layer_in_use:
            self.invalidate()
        elif isinstance(self.result, CamOutput):
            self._describe()  # the same map; the note on why this layer may have changed

    def _fill_layer_field(self) -> None:
        """The field's entries: auto (naming the default), then every layer with spatial extent."""
        blocked = self.layer_box.blockSignals(True)
        try:
            self.layer_box.clear()
            default = self.state.cam_layer()
            # the layer's name first: a narrow field still shows which layer is in use
            self.layer_box.addItem(f"{default} (auto: last spatial layer)" if default else "auto", None)
            for path in self.state.spatial_layers():
                self.layer_box.addItem(path, path)
        finally:
            self.layer_box.blockSignals(blocked)
        self._show_layer_field()

    def _show_layer_field(self) -> None:
        blocked = self.layer_box.blockSignals(True)
        try:
            self.layer_box.setCurrentIndex(max(self.layer_box.findData(self.layer_for_cam()), 0))
        finally:
            self.layer_box.blockSignals(blocked)

    def _request_changed(self) -> None:
        if self._filling:
            return
        self._update_enabled()
        self.invalidate()

    def _look_changed(self) -> None:
        self.cmap_box.setEnabled(self.look()["style"] == "relu")
        self._render()

    # ----- requests -----------------------------------------------------------------
    def job_params(self) -> CamParams | SaliencyParams:
        """The request for the map the fields ask for now (every other setting: its default)."""
        kind, method = self.method
        target = self.target_box.currentData()
        if kind == "saliency":
            return SaliencyParams(image=self.state.image, method=method, target=target)
        fast = method == FAST_SCORECAM  # Score-CAM's fast mode: only the most varied channels
        return CamParams(
            image=self.state.image,
            method="scorecam" if fast else method,
            target=target,
            layer=self.layer_for_cam(),
            mapping=self.mapping,
            compare=self.compare_box.currentData(),
            max_channels=FAST_CHANNELS if fast else None,
        )

    def refresh(self) -> None:
        state = self.state
        if state.model is None:
            self._clear(state.placeholder(self.client.is_ready))
            return
        if state.model_spec != self._model_spec:  # a new model: its own classes, top-1 again
            self._model_spec = state.model_spec
            self._clear_targets()
        if state.image is None:
            self._clear("no image: open one or pick a sample")
            return
        self._layer_in_use = self.layer_for_cam()
        self._show_layer_field()
        params = self.job_params()
        self.cancel("metrics")
        self._scoring = False
        self.request, self.request_image, self.probs = params, state.image_spec, None
        self.submit(params)
        if isinstance(params, SaliencyParams):  # its figure names the class with its probability
            self.submit(ImageParams(image=state.image), tag="probs")
        self.info.setText(f"{params.method}: computing…")

    def score(self) -> None:
        """Run the deletion/insertion scores of the map shown now."""
        if self.result is None or self.state.image is None:
            return
        self.scores = None
        self._scoring = True
        self.score_label.setText("scoring…")
        params = MetricsParams(
            image=self.state.image,
            heatmap=self.result.heatmap,
            target=self.result.target,
            steps=SCORE_STEPS,
            baseline=self.baseline,
            mask=self.user_boxes.mask(np.shape(self.result.heatmap)[:2]),
        )
        self.submit(params, tag="metrics")

    def _baseline_changed(self) -> None:
        """A new baseline: rescore the map if it has scores (or is being scored)."""
        if self.scores is not None or self._scoring:
            self.score()

    def _primary_heat(self) -> np.ndarray | None:
        """The map the scores rank: the target's, on the photo's grid (None before the first)."""
        return None if self.result is None else self.result.heatmap

    def _clear(self, message: str) -> None:
        self.cancel()
        self.cancel("metrics")
        self.cancel("probs")
        self.result = None
        self.rendered = None
        self.renderer.cancel()
        self.photo_pane.clear_image(message)
        self.coarse_pane.clear_image("")
        self.info.setText("")
        self._clear_scores()
        self.user_boxes.map_changed()

    def _clear_scores(self) -> None:
        self.scores = None
        self._scoring = False
        self.score_label.setText("")
        self.deletion_curve.setData([], [])
        self.insertion_curve.setData([], [])

    def job_progress(self, tag: str, event: Progress) -> None:
        if tag == "metrics":
            self.score_label.setText(f"scoring… {event.step}/{event.total}")
        elif event.total:
            self.info.setText(f"{self.method[1]}: {event.step}/{event.total}")

    def job_finished(self, tag: str, event: Finished) -> None:
        if event.reason != "done":
            return
        if tag == "metrics":
            self._scoring = False
            self._show_scores(event.result)
            return
        if tag == "probs":
            self.probs = np.asarray(event.result, np.float64).reshape(-1)
            return
        self.result = event.result
        self._clear_scores()
        if isinstance(self.result, CamOutput):
            self._fill_targets(self.result.predictions)
        self._render()
        self._describe()
        self.user_boxes.map_changed()

    def job_failed(self, tag: str, event: Failed) -> None:
        if tag == "probs":
            return  # the saliency figure says so when asked for
        if tag == "metrics":
            self._scoring = False
            self.score_label.setText(event.message)
            return
        self.result = None
        self.rendered = None
        self.photo_pane.clear_image(event.message)
        self.coarse_pane.clear_image("")
        self.info.setText("")
        self.user_boxes.map_changed()

    def _describe(self) -> None:
        out = self.result
        if isinstance(out, SaliencyOutput):
            m = out.map
            self.info.setText(f"{out.method}: range {float(m.min()):.3g} … {float(m.max()):.3g}")
            return
        if out is None:
            return
        parts = []
        for res in out.results:
            name = res.target_name or str(res.target)
            parts.append(f"<b>{name}</b>: logit {res.score:.3g}, p {100 * res.probability:.1f}%")
        res = out.result
        rf = res.field
        where = res.layer
        if self.layer_for_cam() is None:  # the engine's default layer
            picked = self.state.layer if self.state.layer_by_user and self._layer_mode == "follow" else None
            where += (
                f" [auto: {picked} has no spatial extent]" if picked and picked != res.layer else " [auto]"
            )
        where += f" ({res.cam.shape[0]}×{res.cam.shape[1]} cells"
        where += f", field {rf.size[0]}×{rf.size[1]} px, stride {rf.stride[0]})" if rf is not None else ")"
        method = res.method
        if res.method == "scorecam":
            fast = res.settings.get("max_channels")
            method += f" ({res.settings.get('precision', 'float32')}" + (
                f", fast: {fast:g} of the channels)" if fast else ")"
            )
        self.info.setText(f"{method} on {where} · " + " · ".join(parts))

    def _show_scores(self, out: MetricsOutput) -> None:
        self.scores = out
        d, i = out.deletion, out.insertion
        self.deletion_curve.setData(np.asarray(d.fractions), np.asarray(d.scores))
        self.insertion_curve.setData(np.asarray(i.fractions), np.asarray(i.scores))
        self.score_label.setText(
            f"deletion AUC {d.auc:.3f} ({d.baseline}), lower is better · "
            f"insertion AUC {i.auc:.3f} ({i.baseline}), higher is better" + metrics_note(out)
        )

    # ----- rendering -----------------------------------------------------------------
    def _render(self) -> None:
        if self.result is None:
            return
        look = self.look()
        self.renderer.render(draw.render_job, *draw.render_inputs(self.result, look), look, self.result)

    def _on_rendered(self, out: tuple) -> None:
        main, coarse, cell, look, source = out
        if source is not self.result:
            return  # a newer result is on its way
        self.rendered = (main, coarse, cell)
        self.rendered_look = look
        self.photo_pane.set_image(main)
        if coarse is None:
            self.coarse_pane.clear_image("saliency has no coarse map")
        else:
            self.coarse_pane.set_image(coarse)

    def overlay_image(self) -> np.ndarray | None:
        """The uint8 image the photo pane shows now (None before the first render)."""
        return None if self.rendered is None else self.rendered[0]

    # ----- hover: a cell's receptive field ---------------------------------------------
    def _on_coarse_hovered(self, row: int, col: int) -> None:
        box = self.cell_box(row, col) if row >= 0 else None
        if box is None or not isinstance(self.result, CamOutput) or self.rendered is None:
            self.photo_pane.hide_box()
            self.cell_label.setText("")
            return
        cell_rc, rect = box
        self.photo_pane.show_box(*rect)
        self.cell_label.setText(draw.hover_text(self.result, self.rendered[2], row, col, cell_rc, rect))

    def cell_box(
        self, row: int, col: int
    ) -> tuple[tuple[int, int], tuple[float, float, float, float]] | None:
        """For a pixel of the coarse pane: the cell (i, j) and its field in photo pixels (top, left, bottom, right)."""
        if self.rendered is None:
            return None
        return draw.cell_box(self.result, self.rendered[2], row, col)

    # ----- export and settings ---------------------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self.result is None:
            raise EngineError("no attribution map to export yet")
        look = self.look()
        main, _, _ = draw.render(*draw.render_inputs(self.result, look), look)
        model = self.state.model
        meta: dict[str, Any] = {
            **self.base_settings(),
            "view": "attribution",
            "image": self.request_image or self.state.image_spec,
            "scaling": model.scaling if model is not None else None,
            "method": self.method[1],
            **look,
            **draw.export_settings(self.result, self.scores, self.request, look),
            **self.user_boxes.settings(),  # "boxes": [[x0, y0, x1, y1], ...] in photo pixels
        }
        return main, meta

    def figure_spec(self) -> FigureSpec:
        """The figure `export cam` / `export saliency` draws (engine.plot.attribution)."""
        from engine.plot.attribution import Look, cam_figure, saliency_figure, source_name

        out = self.result
        if out is None:
            raise EngineError("no attribution map to export yet")
        look, model = self.look(), self.state.model
        name, image = (model.name if model else ""), source_name(self.request_image or self.state.image_spec)
        if out.kind == "cam":
            return cam_figure(
                out.photo,
                out.results,
                out.result.method,
                out.layer,
                name,
                image,
                style=look["style"],
                look=Look(look["cmap"], look["alpha"]),
            )
        if self.probs is None and not out.layer:
            raise EngineError("the image's class probabilities are still being computed: try again")
        target = saliency_subject(out.target, self.probs, self.state.class_names, out.layer)
        signed = look["style"] == "signed"  # as the raw export and `export saliency --map-style` draw it
        drawn = Look(look["cmap"], look["alpha"])
        return saliency_figure(out.photo, out.map, out.method, target, signed, name, image, drawn)

    def export_values(self) -> np.ndarray | None:
        """The map(s) drawn over the photo, as `export cam|saliency --raw` writes them: (N, H, W) for
        CAM (the target, then the compared one), (H, W) for saliency."""
        if self.result is None:
            return None
        if isinstance(self.result, CamOutput):
            return np.stack(self.result.heatmaps(self.look()["style"])).astype(np.float32)
        return np.asarray(self.result.map, np.float32)

    def save_settings(self, s: QSettings) -> None:
        s.setValue("method", self.method[1])
        s.setValue("mapping", self.mapping)
        s.setValue("style", self.look()["style"])
        s.setValue("cmap", self.cmap_box.currentText())
        s.setValue("alpha", self.alpha.value())
        s.setValue("baseline", self.baseline)

    def restore_settings(self, s: QSettings) -> None:
        try:
            self.set_method(cfg.read(s, "method", self.method[1], str))
            self.set_mapping(cfg.read(s, "mapping", self.mapping, str))
        except EngineError:
            pass
        style = self.style_box.findData(cfg.read(s, "style", "relu", str))
        if style >= 0:
            self.style_box.setCurrentIndex(style)
        cmap = cfg.read(s, "cmap", self.cmap_box.currentText(), str)
        if self.cmap_box.findText(cmap) >= 0:
            self.cmap_box.setCurrentText(cmap)
        self.alpha.setValue(int(np.clip(cfg.read(s, "alpha", 50, int), 0, 100)))
        baseline = self.baseline_box.findData(cfg.read(s, "baseline", DEFAULT_BASELINE, str))
        if baseline >= 0:
            self.baseline_box.setCurrentIndex(baseline)
