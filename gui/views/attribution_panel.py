"""The Attribution tab's controls and panes, and the choices they hold (split out of gui.views.attribution).

AttributionPanel is a mixin of AttributionView: `_build_panel()` makes the two rows of
label + field pairs (what to explain, then how it looks), the photo pane, and the side column
(the coarse map, the score button with its baseline, the deletion/insertion plot); the
properties and setters read and set the choices as the user does. Nothing here submits jobs.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
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
from engine.attribution.contract import Prediction
from engine.attribution.metrics import BASELINES, DEFAULT_BASELINE
from engine.attribution.projection import DEFAULT_MAPPING
from engine.errors import EngineError
from gui.state import AppState
from gui.widgets.fields import info_line
from gui.widgets.image_pane import ImagePane
from gui.widgets.plots import static_plot
from gui.widgets.wiring import combo_choice

FAST_SCORECAM = "scorecam-fast"  # the menu's fast Score-CAM: scorecam with max_channels=FAST_CHANNELS

CAM_METHODS = (
    ("Grad-CAM", "gradcam"),
    ("Grad-CAM++", "gradcam++"),
    ("Layer-CAM", "layercam"),
    ("Score-CAM", "scorecam"),
    ("Score-CAM, fast (¼ of the channels)", FAST_SCORECAM),
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


class AttributionPanel:
    """Mixin of AttributionView (a QWidget): its widgets, and the choices they hold."""

    state: AppState

    def _build_panel(self) -> None:
        """Make the fields, panes and plot, and lay them out on the view."""
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
        self.info = info_line()
        self.cell_label = QLabel("")
        self.cell_label.setWordWrap(True)
        self.score_button = QPushButton("Score this map")
        self.score_button.setToolTip(
            "Deletion and insertion curves of the current map (pixels removed/restored in map order)"
        )
        self.score_label = QLabel("")
        self.score_label.setWordWrap(True)
        self.curves = static_plot(bottom="fraction of pixels changed", left="probability")
        self.curves.setMinimumHeight(110)
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
        # the user's own boxes on the photo (gui/views/attribution_boxes.py draws and scores them)
        self.draw_boxes_button = QPushButton("Draw boxes")
        self.draw_boxes_button.setCheckable(True)
        self.draw_boxes_button.setToolTip(
            "Drag on the photo to draw an object box (Shift+drag draws without this toggle): the map's "
            "pointing game and energy share inside your boxes appear below"
        )
        self.clear_boxes_button = QPushButton("Clear boxes")
        self.clear_boxes_button.setToolTip("Remove every box drawn on the photo")
        boxes_row = QHBoxLayout()
        boxes_row.addWidget(self.draw_boxes_button)
        boxes_row.addWidget(self.clear_boxes_button)
        sl.addLayout(boxes_row)
        self.box_label = QLabel("")
        self.box_label.setWordWrap(True)
        sl.addWidget(self.box_label)
        self.sanity_button = QPushButton("Sanity check")
        self.sanity_button.setToolTip(
            "Does this map depend on what the model learned? Re-initialize its layers from the top down "
            "and see whether the map changes (Adebayo et al. 2018)"
        )
        sl.addWidget(self.sanity_button)
        self.compare_methods_button = QPushButton("Compare methods")
        self.compare_methods_button.setToolTip(
            "Every attribution method on this image, target and layer side by side, with its deletion, "
            "insertion, pointing and energy scores and its sanity-check verdict"
        )
        sl.addWidget(self.compare_methods_button)
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
        layout = QVBoxLayout(self)  # type: ignore[arg-type]  # the mixin sits on a QWidget
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.info)
        self._filling = False  # True while the target fields are refilled (no request then)

    # ----- choices -----------------------------------------------------------------
    @property
    def method(self) -> tuple[str, str]:
        """("cam" | "saliency", method name)."""
        kind, name = self.method_box.currentData()
        return str(kind), str(name)

    def set_method(self, name: str) -> None:
        for i in range(self.method_box.count()):
            data = self.method_box.itemData(i)
            if data and data[1] == name:
                self.method_box.setCurrentIndex(i)
                return
        raise EngineError(f"unknown attribution method {name!r}")

    mapping, set_mapping = combo_choice("mapping_box", "mapping")
    baseline, set_baseline = combo_choice(
        "baseline_box", "baseline", doc="The deletion/insertion baseline: blur | mean | black | noise."
    )

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

    def _fill_targets(self, predictions: tuple[Prediction, ...] = ()) -> None:
        """Targets: top-1, the top predictions with their probabilities, then every class of small models."""
        self._filling = True
        try:
            keep = (self.target_box.currentData(), self.compare_box.currentData())
            n = self.state.num_classes or len(self.state.class_names)
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

    def _clear_targets(self) -> None:
        """A new model: its own classes, top-1 again."""
        self._filling = True
        try:
            self.target_box.clear()
            self.compare_box.clear()
        finally:
            self._filling = False
        self._fill_targets()

    def _update_enabled(self) -> None:
        is_cam = self.method[0] == "cam"
        self.mapping_box.setEnabled(is_cam)
        self.compare_box.setEnabled(is_cam)
        self.coarse_pane.setEnabled(is_cam)
