"""Attribution: which part of the photo made the network say this class?

The photo pane shows the class activation map (or a saliency map) laid over the photo on
its own pixel grid, projected through each cell's receptive field by the chosen mapping;
a second target can be shown beside the first on one shared colour scale. The coarse pane
shows the raw layer map with its cell grid; hovering a cell outlines its receptive field on
the photo. "Score" runs the quality scores of the current map (deletion and insertion
curves, plotted) on the engine thread.

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
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.attribution import figures
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
        for box in (
            self.target_box,
            self.compare_box,
            self.method_box,
            self.mapping_box,
            self.style_box,
            self.cmap_box,
        ):
            box.setMinimumWidth(64)
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
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
            (("Look", self.style_box), ("Colormap", self.cmap_box), ("Opacity", self.alpha)),
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
        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_rendered)
        self.renderer.failed.connect(lambda message: self.photo_pane.clear_image(message.splitlines()[0]))
        self._fill_targets([])
        for box in (self.target_box, self.compare_box, self.method_box, self.mapping_box):
            box.currentIndexChanged.connect(self._request_changed)
        for box in (self.style_box, self.cmap_box):
            box.currentIndexChanged.connect(self._look_changed)
        self.alpha.valueChanged.connect(self._look_changed)
        self.coarse_pane.hovered.connect(self._on_coarse_hovered)
        self.score_button.clicked.connect(self.score)
        self.photo_pane.clear_image("loading engine…")
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

    def layer_for_cam(self) -> str | None:
        """The selected layer when it has spatial extent, else None (the engine's default layer)."""
        info = self.state.layer_info()
        if info is not None and info.kind != "model" and info.spatial and (info.output_shape[0] or 0) > 1:
            return info.path
        return None

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
        if kind == "cam":
            params.update(
                layer=self.layer_for_cam(),
                mapping=self.mapping,
                compare=self.compare_box.currentData(),
                top_k=TOP_K,
            )
        else:
            params.update(samples=16, steps=24)
        self.cancel("metrics")
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
        self.score_label.setText("scoring…")
        self.submit(
            "metrics",
            {"image": self.state.image, "heatmap": heat, "target": target, "steps": SCORE_STEPS},
            tag="metrics",
        )

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
        where = f"{res.layer} ({res.cam.shape[0]}×{res.cam.shape[1]} cells"
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
            f"deletion AUC {d.auc:.3f} (lower is better) · insertion AUC {i.auc:.3f} (higher is better)"
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
        self.cell_label.setText(
            f"cell {cell_rc}: {value:.3g} · receptive field {rect[2] - rect[0]:.0f}×{rect[3] - rect[1]:.0f} "
            "px of the photo"
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
            }
        return main, meta

    def save_settings(self, s: QSettings) -> None:
        s.setValue("method", self.method[1])
        s.setValue("mapping", self.mapping)
        s.setValue("style", self.look()["style"])
        s.setValue("cmap", self.cmap_box.currentText())
        s.setValue("alpha", self.alpha.value())

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


def _render_job(photo, heats, cams, look, source) -> tuple:
    main, coarse, cell = _render(photo, heats, cams, look)
    return main, coarse, cell, look, source
