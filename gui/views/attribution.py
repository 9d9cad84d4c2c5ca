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

Pictures come from engine.attribution.figures, the functions `python main.py export cam`
uses, rendered off the main thread (newest wins). The maps come from the "cam" and
"saliency" jobs; this module never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.attribution import figures
from engine.attribution.metrics import BASELINES, DEFAULT_BASELINE
from engine.attribution.projection import DEFAULT_MAPPING
from engine.errors import EngineError
from engine.jobs import Failed, Finished, Progress
from gui import settings as cfg
from gui.views.base import View
from gui.widgets.fields import ClippedLabel
from gui.widgets.image_pane import ImagePane
from gui.widgets.render_worker import RenderWorker

CAM_METHODS = (
    ("Grad-CAM", "gradcam"),
    ("Grad-CAM++", "gradcam++"),
    ("Layer-CAM", "layercam"),
    ("Score-CAM", "scorecam"),
    ("Eigen-CAM", "eigencam"),
)
SALIENCY_METHODS = (
    ("Saliency: gradient", "gradient"),
    ("Saliency: SmoothGrad", "smoothgrad"),
    ("Saliency: Integrated Gradients", "integrated"),
    ("Saliency: gradient × input", "grad_x_input"),
)
MAPPINGS = (
    ("Receptive field (roi)", "roi"),
    ("Gaussian field", "gaussian"),
    ("Field centres", "center"),
    ("Plain resize (bilinear)", "bilinear"),
)
STYLES = (("ReLU map", "relu"), ("Signed (blue–grey–red)", "signed"))
BASELINE_TIPS = {
    "blur": "a strong blur of the photo",
    "mean": "the photo's mean colour",
    "black": "black",
    "noise": "seeded random noise",
}
TOP_K = 5
SCORE_STEPS = 24


def _render(photo: np.ndarray, heats: list[np.ndarray], cams: list[np.ndarray] | None, look: dict) -> tuple:
    """(overlay image, coarse image or None, cell size in px) for the panes; pure NumPy."""
    style, cmap, alpha = look["style"], look["cmap"], look["alpha"]
    if len(heats) > 1:
        main = figures.compare_overlays(photo, heats, style, cmap, alpha)
    else:
        main = figures.overlay(photo, heats[0], style, cmap, alpha)
    coarse, cell = None, 0
    if cams:
        h = max(c.shape[0] for c in cams)
        cell = int(np.clip(256 // max(h, 1), 2, 32))
        scale = figures.map_scale(cams, style == "signed")
        panels = [figures.coarse_image(c, cell, style, cmap, grid=True, scale=scale) for c in cams]
        coarse = panels[0] if len(panels) == 1 else figures.side_by_side(panels)
    return main, coarse, cell


class AttributionView(View):
    """CAM and saliency maps of the current image, with target, method, mapping and look controls."""

    title = "Attribution"
    owner = "attribution"

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.target_box = QComboBox()
        self.target_box.setToolTip("The class to explain (filled with the top predictions)")
        self.compare_box = QComboBox()
        self.compare_box.setToolTip("A second class shown beside the first on one shared scale")
        self.method_box = QComboBox()
        for label, key in CAM_METHODS:
            self.method_box.addItem(label, ("cam", key))
        self.method_box.insertSeparator(len(CAM_METHODS))
        for label, key in SALIENCY_METHODS:
            self.method_box.addItem(label, ("saliency", key))
        self.mapping_box = QComboBox()
        for label, key in MAPPINGS:
            self.mapping_box.addItem(label, key)
        self.mapping_box.setCurrentIndex(self.mapping_box.findData(DEFAULT_MAPPING))
        self.mapping_box.setToolTip(
            "How each cell of the coarse map is laid onto the photo: over its exact receptive field (roi), "
            "with a Gaussian weight, interpolated between true field centres, or a plain resize"
        )
        self.style_box = QComboBox()
        for label, key in STYLES:
            self.style_box.addItem(label, key)
        self.cmap_box = QComboBox()
        self.cmap_box.addItems(list(figures.CMAPS))
        self.cmap_box.setCurrentText("viridis" if "viridis" in figures.CMAPS else figures.CMAPS[0])
        self.alpha = QSlider(Qt.Orientation.Horizontal)
        self.alpha.setRange(0, 100)
        self.alpha.setValue(50)
        self.alpha.setToolTip("Opacity of the map over the photo")
        self.layer_box = QComboBox()
        self.layer_box.setToolTip(
            "The layer whose map is shown. auto: the last layer with spatial extent (the engine's default) "
            "until you pick a layer here or in the layer tree"
        )
        self.baseline_box = QComboBox()
        for key in BASELINES:
            self.baseline_box.addItem(key, key)
            self.baseline_box.setItemData(
                self.baseline_box.count() - 1,
                f"deleted pixels become {BASELINE_TIPS.get(key, key)}; insertion starts from it",
                Qt.ItemDataRole.ToolTipRole,
            )
        self.baseline_box.setCurrentIndex(self.baseline_box.findData(DEFAULT_BASELINE))
        self.baseline_box.setToolTip(
            "What the scores replace deleted pixels by and insert pixels into: a strong blur of the photo "
            "(default), its mean colour, black, or noise"
        )
        for box in (
            self.target_box,
            self.compare_box,
            self.method_box,
            self.mapping_box,
            self.layer_box,
            self.style_box,
            self.cmap_box,
        ):
            box.setMinimumWidth(64)
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
        self.layer_box.setMinimumContentsLength(12)
        # two rows of label + field pairs: what to explain, then how it looks (fits a 1280 px window)
        bar = QGridLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.setHorizontalSpacing(6)
        bar.setVerticalSpacing(2)
        rows = (
            (
                ("Target", self.target_box),
                ("vs", self.compare_box),
                ("Method", self.method_box),
                ("Mapping", self.mapping_box),
            ),
            (
                ("Layer", self.layer_box),
                ("Look", self.style_box),
                ("Colormap", self.cmap_box),
                ("Opacity", self.alpha),
            ),
        )
        for r, row in enumerate(rows):
            for c, (text, widget) in enumerate(row):
                bar.addWidget(QLabel(text), r, 2 * c, Qt.AlignmentFlag.AlignRight)
                bar.addWidget(widget, r, 2 * c + 1)
        for c in range(4):
            bar.setColumnStretch(2 * c + 1, 1)

        self.photo_pane = ImagePane()
        self.photo_pane.setToolTip("The map on the photo's own pixels")
        self.coarse_pane = ImagePane(pan_zoom=False)
        self.coarse_pane.setToolTip(
            "The raw layer map, one square per cell: hover a cell to see its receptive field"
        )
        self.info = ClippedLabel("")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cell_label = QLabel("")
        self.cell_label.setWordWrap(True)
        self.score_button = QPushButton("Score this map")
        self.score_button.setToolTip(
            "Deletion and insertion curves of the current map (pixels removed/restored in map order)"
        )
        self.score_label = QLabel("")
        self.score_label.setWordWrap(True)
        self.curves = pg.PlotWidget()
        self.curves.setMenuEnabled(False)
        self.curves.setMouseEnabled(False, False)
        self.curves.hideButtons()
        self.curves.setMinimumHeight(110)
        self.curves.setLabel("bottom", "fraction of pixels changed")
        self.curves.setLabel("left", "probability")
        self.curves.setYRange(0, 1)
        self.curves.addLegend(offset=(-4, 4))
        self.deletion_curve = self.curves.plot([], [], pen=pg.mkPen("#d9534f", width=2), name="deletion")
        self.insertion_curve = self.curves.plot([], [], pen=pg.mkPen("#4a90d9", width=2), name="insertion")

        side = QWidget()
        side.setMinimumWidth(160)
        sl = QVBoxLayout(side)
        sl.setContentsMargins(2, 2, 2, 2)
        sl.addWidget(QLabel("<b>Coarse map</b> (hover a cell)"))
        sl.addWidget(self.coarse_pane, 3)
        sl.addWidget(self.cell_label)
        sl.addWidget(self.score_button)
        baseline_row = QHBoxLayout()
        baseline_row.addWidget(QLabel("Baseline"))
        baseline_row.addWidget(self.baseline_box, 1)
        sl.addLayout(baseline_row)
        sl.addWidget(self.score_label)
        sl.addWidget(self.curves, 2)
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(self.photo_pane)
        self.split.addWidget(side)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 1)
        self.split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.info)

        self.result: dict[str, Any] | None = None  # the last cam/saliency job result
        self.kind: str = "cam"  # what self.result holds: "cam" or "saliency"
        self._pending_kind: str = "cam"  # what the job in flight computes
        self.rendered: tuple | None = None  # (overlay, coarse, cell)
        self.rendered_look: dict[str, Any] = {}
        self.scores: dict[str, Any] | None = None
        self._filling = False
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
        self._fill_targets([])
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
        self.photo_pane.clear_image("loading engine…")
        self._fill_layer_field()
        self._update_enabled()

    # ----- choices -----------------------------------------------------------------
    @property
    def method(self) -> tuple[str, str]:
        """("cam" | "saliency", method name)."""
        return tuple(self.method_box.currentData())

    def set_method(self, name: str) -> None:
        for i in range(self.method_box.count()):
            data = self.method_box.itemData(i)
            if data and data[1] == name:
                self.method_box.setCurrentIndex(i)
                return
        raise EngineError(f"unknown attribution method {name!r}")

    @property
    def mapping(self) -> str:
        return str(self.mapping_box.currentData())

    def set_mapping(self, name: str) -> None:
        index = self.mapping_box.findData(name)
        if index < 0:
            raise EngineError(f"unknown mapping {name!r}")
        self.mapping_box.setCurrentIndex(index)

    def look(self) -> dict[str, Any]:
        return {
            "style": str(self.style_box.currentData()),
            "cmap": self.cmap_box.currentText(),
            "alpha": self.alpha.value() / 100.0,
        }

    def set_target(self, index: int | None, compare: int | None = None) -> None:
        """Choose the target (None: top-1) and the compared target (None: none)."""
        for box, value in ((self.target_box, index), (self.compare_box, compare)):
            i = box.findData(value)
            if i < 0 and value is not None:
                box.addItem(self.state.class_name(int(value)), int(value))
                i = box.count() - 1
            box.setCurrentIndex(max(i, 0))

    @property
    def baseline(self) -> str:
        """The deletion/insertion baseline: blur | mean | black | noise."""
        return str(self.baseline_box.currentData())

    def set_baseline(self, name: str) -> None:
        index = self.baseline_box.findData(name)
        if index < 0:
            raise EngineError(f"unknown baseline {name!r}; choose from: {', '.join(BASELINES)}")
        self.baseline_box.setCurrentIndex(index)

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
        elif self.kind == "cam":
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

    def _fill_targets(self, predictions: list[tuple[int, str, float]]) -> None:
        """Targets: top-1, the top predictions with their probabilities, then every class of small models."""
        self._filling = True
        try:
            keep = (self.target_box.currentData(), self.compare_box.currentData())
            names = (self.state.model or {}).get("class_names") or []
            n = int((self.state.model or {}).get("num_classes") or len(names))
            for box, first in ((self.target_box, "top-1"), (self.compare_box, "—")):
                box.clear()
                box.addItem(first, None)
                seen = set()
                for index, name, p in predictions:
                    box.addItem(f"{name}  {100 * p:.1f}%", int(index))
                    seen.add(int(index))
                if 0 < n <= 32:
                    for index in range(n):
                        if index not in seen:
                            box.addItem(self.state.class_name(index), index)
            for box, value in zip((self.target_box, self.compare_box), keep):
                i = box.findData(value)
                box.setCurrentIndex(max(i, 0))
        finally:
            self._filling = False

    def _update_enabled(self) -> None:
        is_cam = self.method[0] == "cam"
        self.mapping_box.setEnabled(is_cam)
        self.compare_box.setEnabled(is_cam)
        self.coarse_pane.setEnabled(is_cam)

    def _request_changed(self) -> None:
        if self._filling:
            return
        self._update_enabled()
        self.invalidate()

    def _look_changed(self) -> None:
        self.cmap_box.setEnabled(self.look()["style"] == "relu")
        self._render()

    # ----- requests -----------------------------------------------------------------
    def refresh(self) -> None:
        state = self.state
        if state.model is None:
            self._clear(state.placeholder(self.client.is_ready))
            return
        if state.model.get("spec") != self._model_spec:  # a new model: its own classes, top-1 again
            self._model_spec = state.model.get("spec")
            self._filling = True
            self.target_box.clear()
            self.compare_box.clear()
            self._filling = False
            self._fill_targets([])
        if state.image is None:
            self._clear("no image: open one or pick a sample")
            return
        kind, method = self.method
        params: dict[str, Any] = {
            "image": state.image,
            "method": method,
            "target": self.target_box.currentData(),
        }
        self._layer_in_use = self.layer_for_cam()
        self._show_layer_field()
        if kind == "cam":
            params.update(
                layer=self._layer_in_use,
                mapping=self.mapping,
                compare=self.compare_box.currentData(),
                top_k=TOP_K,
            )
        else:
            params.update(samples=16, steps=24)
        self.cancel("metrics")
        self._scoring = False
        self._pending_kind = kind
        self.submit(kind, params)
        self.info.setText(f"{method}: computing…")

    def score(self) -> None:
        """Run the deletion/insertion scores of the map shown now."""
        heat = self._primary_heat()
        if heat is None or self.state.image is None:
            return
        target = self.result["result"].target if self.kind == "cam" else self.result.get("target")
        self.scores = None
        self._scoring = True
        self.score_label.setText("scoring…")
        params = {
            "image": self.state.image,
            "heatmap": heat,
            "target": target,
            "steps": SCORE_STEPS,
            "baseline": self.baseline,
        }
        self.submit("metrics", params, tag="metrics")

    def _baseline_changed(self) -> None:
        """A new baseline: rescore the map if it has scores (or is being scored)."""
        if self.scores is not None or self._scoring:
            self.score()

    def _primary_heat(self) -> np.ndarray | None:
        if self.result is None:
            return None
        return self.result["result"].heatmap if self.kind == "cam" else self.result["map"]

    def _clear(self, message: str) -> None:
        self.cancel()
        self.cancel("metrics")
        self.result = None
        self.rendered = None
        self.renderer.cancel()
        self.photo_pane.clear_image(message)
        self.coarse_pane.clear_image("")
        self.info.setText("")
        self._clear_scores()

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
        self.result = event.result
        self.kind = self._pending_kind
        self._clear_scores()
        if self.kind == "cam":
            self._fill_targets(list(event.result["predictions"]))
        self._render()
        self._describe()

    def job_failed(self, tag: str, event: Failed) -> None:
        if tag == "metrics":
            self._scoring = False
            self.score_label.setText(event.message)
            return
        self.result = None
        self.rendered = None
        self.photo_pane.clear_image(event.message)
        self.coarse_pane.clear_image("")
        self.info.setText("")

    def _describe(self) -> None:
        if self.result is None:
            return
        if self.kind == "saliency":
            m = self.result["map"]
            self.info.setText(f"{self.result['method']}: range {float(m.min()):.3g} … {float(m.max()):.3g}")
            return
        parts = []
        for res in (self.result["result"], self.result.get("compare")):
            if res is None:
                continue
            name = res.target_name or str(res.target)
            parts.append(f"<b>{name}</b>: logit {res.score:.3g}, p {100 * res.probability:.1f}%")
        res = self.result["result"]
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
            method += f" ({res.settings.get('precision', 'float32')})"
        self.info.setText(f"{method} on {where} · " + " · ".join(parts))

    def _show_scores(self, out: dict[str, Any]) -> None:
        self.scores = out
        d, i = out["deletion"], out["insertion"]
        self.deletion_curve.setData(np.asarray(d.fractions), np.asarray(d.scores))
        self.insertion_curve.setData(np.asarray(i.fractions), np.asarray(i.scores))
        self.score_label.setText(
            f"deletion AUC {d.auc:.3f} ({d.baseline}), lower is better · "
            f"insertion AUC {i.auc:.3f} ({i.baseline}), higher is better"
        )

    # ----- rendering -----------------------------------------------------------------
    def _inputs(self) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None] | None:
        if self.result is None:
            return None
        photo = self.result["photo"]
        style = self.look()["style"]
        if self.kind == "saliency":
            return photo, [self.result["map"]], None
        results = [r for r in (self.result["result"], self.result.get("compare")) if r is not None]
        heats = [r.heatmap_relu if style == "relu" else r.heatmap for r in results]
        return photo, heats, [r.cam for r in results]

    def _render(self) -> None:
        inputs = self._inputs()
        if inputs is None:
            return
        look = self.look()
        self.renderer.render(_render_job, *inputs, look, self.result)

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
        if box is None:
            self.photo_pane.hide_box()
            self.cell_label.setText("")
            return
        cell_rc, rect = box
        self.photo_pane.show_box(*rect)
        res = self.result["result"]
        other = self.result.get("compare")
        if other is not None and self.rendered is not None:  # which panel: the value is that target's
            hh, ww = res.cam.shape
            hit = figures.panel_at(2, (hh * self.rendered[2], ww * self.rendered[2]), row, col)
            res = other if hit is not None and hit[0] == 1 else res
        value = float(res.cam[cell_rc])
        context = " plus global context" if getattr(res.field, "global_context", False) else ""
        self.cell_label.setText(
            f"cell {cell_rc}: {value:.3g} · receptive field {rect[2] - rect[0]:.0f}×{rect[3] - rect[1]:.0f} "
            f"px of the photo{context}"
        )

    def cell_box(
        self, row: int, col: int
    ) -> tuple[tuple[int, int], tuple[float, float, float, float]] | None:
        """For a pixel of the coarse pane: the cell (i, j) and its field in photo pixels (top, left, bottom, right)."""
        if self.result is None or self.kind != "cam" or self.rendered is None or not self.rendered[2]:
            return None
        res = self.result["result"]
        if res.field is None:
            return None
        cell = self.rendered[2]
        hh, ww = res.cam.shape
        if self.result.get("compare") is not None:  # two panels side by side
            hit = figures.panel_at(2, (hh * cell, ww * cell), row, col)
            if hit is None:
                return None
            _, row, col = hit
        i, j = int(row // cell), int(col // cell)
        if not (0 <= i < hh and 0 <= j < ww):
            return None
        mh, mw = res.model_shape
        top, left, bottom, right = res.field.box_clipped(i, j, (mh, mw))
        if bottom <= top or right <= left:
            return None
        photo = self.result["photo"]
        sy, sx = photo.shape[0] / mh, photo.shape[1] / mw
        # on the photo pane: the first panel, which sits GAP px in when two are shown
        pad = figures.GAP if self.result.get("compare") is not None else 0
        return (i, j), (top * sy + pad, left * sx + pad, bottom * sy + pad, right * sx + pad)

    # ----- export and settings ---------------------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        inputs = self._inputs()
        if inputs is None:
            raise EngineError("no attribution map to export yet")
        look = self.look()
        main, _, _ = _render(*inputs, look)
        meta: dict[str, Any] = {
            **self.base_settings(),
            "view": "attribution",
            "kind": self.kind,
            "method": self.method[1],
            **look,
        }
        if self.kind == "cam":
            res = self.result["result"]
            others = [r for r in (res, self.result.get("compare")) if r is not None]
            meta.update(
                layer=res.layer,
                mapping=res.mapping,
                **({"precision": res.settings.get("precision")} if res.method == "scorecam" else {}),
                targets=[
                    {"index": r.target, "name": r.target_name, "logit": r.score, "probability": r.probability}
                    for r in others
                ],
            )
        else:
            meta.update(target=self.result.get("target"), layer=self.result.get("layer"))
        if self.scores is not None:
            meta["scores"] = {
                "deletion_auc": self.scores["deletion"].auc,
                "insertion_auc": self.scores["insertion"].auc,
                "baseline": self.scores["deletion"].baseline,
            }
        return main, meta

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


def _render_job(photo, heats, cams, look, source) -> tuple:
    main, coarse, cell = _render(photo, heats, cams, look)
    return main, coarse, cell, look, source
