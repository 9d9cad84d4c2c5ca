"""Dataset: what each unit of a layer responds to across a whole set of images.

Choose a source (a folder with one sub-folder per class, builtin:digits, builtin:shapes)
and a layer, then Run: the engine thread scans the set (a "scan" job, progress with
images/s, Cancel keeps a checkpoint and the next Run resumes; a finished scan is
cached on disk, and reopening the same source and layer shows it at once through a
cache-only lookup). Then browse four pages:

- Units: a grid of units, each with its top-k crops (the input under the receptive
  field of the cell where the unit peaked), drawn by engine.dataset.render_units, the
  function `python main.py export topk` uses. Click a unit for its hits large, with
  names and values, beside its maximization (a "maximize" job streamed into the pane;
  "Open in Maximize tab" hands the objective to that tab when it offers set_objective).
- Classes: each unit's mean activation per class as a heatmap of classes × units
  (z-scored per unit, or raw); for dense layers also each class's activation grid.
  Pick two classes to list the units that separate them most (standardized mean
  difference) with a few images of each side and their maps side by side.
- Images: images of the set side by side, each with the channel that fired most and
  its map.

Nothing here imports TensorFlow: rendering uses NumPy, PIL and engine.dataset, which
are TensorFlow-free; unit crops too large to keep are read from disk off the main thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.dataset.topk import FigureLayout, ScanResult, render_units_layout, tile_figure
from engine.errors import EngineError
from engine.jobs import Failed, Finished, Frame, Progress
from gui import settings as cfg
from gui.views.base import View
from gui.widgets.fields import ClippedLabel
from gui.widgets.image_pane import ImagePane
from gui.widgets.render_worker import RenderWorker

SOURCES = ("builtin:digits", "builtin:shapes?n=1000&seed=1234")
SCANNABLE_KINDS = ("conv", "dense", "pool", "norm", "activation", "merge", "other")
PAGES = ("units", "classes", "images")
MAX_STEPS = 64


def _lut(name: str = "viridis") -> np.ndarray:
    """A (256, 3) uint8 colour table from pyqtgraph."""
    try:
        return np.asarray(pg.colormap.get(name).getLookupTable(nPts=256, alpha=False), np.uint8)[:, :3]
    except Exception:  # noqa: BLE001 - a missing colormap falls back to grey
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp], axis=-1)


def colorize(
    values: np.ndarray, lo: float | None = None, hi: float | None = None, cmap: str = "viridis"
) -> np.ndarray:
    """float (h, w) -> uint8 RGB through a colormap; NaN cells are white."""
    v = np.asarray(values, np.float64)
    finite = np.isfinite(v)
    lo = float(np.min(v[finite])) if lo is None and finite.any() else (lo or 0.0)
    hi = float(np.max(v[finite])) if hi is None and finite.any() else (hi if hi is not None else 1.0)
    scale = (hi - lo) if hi > lo else 1.0
    idx = np.clip((np.nan_to_num(v, nan=lo) - lo) / scale * 255.0, 0, 255).astype(np.uint8)
    out = _lut(cmap)[idx]
    out[~finite] = 255
    return out


def upscale(img: np.ndarray, cell_h: int, cell_w: int) -> np.ndarray:
    """Nearest-neighbour enlargement by whole cells."""
    return np.repeat(np.repeat(img, cell_h, axis=0), cell_w, axis=1)


def scannable(info: Any) -> bool:
    """A layer a scan accepts: spatial (h, w, c) or flat (units,) output, not a nested model."""
    return info.kind not in ("model", "input") and len(info.output_shape) in (1, 3)


@dataclass(frozen=True)
class HeatLayout:
    """Where the cells of a class heatmap lie in its image (to map clicks to units)."""

    left: int
    top: int
    cell_h: int
    cell_w: int
    classes: int
    units: int

    def cell_at(self, row: int, col: int) -> tuple[int, int] | None:
        """(class, unit) under image pixel (row, col), or None outside the cells."""
        r, c = row - self.top, col - self.left
        if r < 0 or c < 0:
            return None
        cls, unit = r // self.cell_h, c // self.cell_w
        if cls < self.classes and unit < self.units:
            return int(cls), int(unit)
        return None


def class_heatmap(
    result: ScanResult, mode: str = "zscore", stat: str = "mean"
) -> tuple[np.ndarray, HeatLayout]:
    """uint8 RGB heatmap, one row per class (named on the left), one column per unit (indexed on top).

    mode "zscore": each unit's class means standardized across classes (what makes a unit
    class-specific); "raw": the class means on one shared scale.
    """
    from PIL import Image, ImageDraw

    stats = result.class_stats(stat)
    m = np.asarray(stats.mean, np.float64)
    m = np.where(stats.count[:, None] > 0, m, np.nan)
    if mode == "zscore":
        with np.errstate(invalid="ignore"):
            mu = np.nanmean(m, axis=0, keepdims=True)
            sd = np.nanstd(m, axis=0, keepdims=True)
        m = (m - mu) / np.where(sd > 0, sd, 1.0)
        img = colorize(m, -2.5, 2.5, "viridis")
    else:
        img = colorize(m, cmap="viridis")
    k, units = m.shape
    cw = max(2, min(24, 1200 // max(units, 1)))
    ch = max(8, min(32, 400 // max(k, 1)))
    cells = upscale(img, ch, cw)
    names = [str(n)[:16] for n in result.class_names]
    left = 6 + 6 * max((len(n) for n in names), default=1)
    top = 14
    out = np.full((top + cells.shape[0] + 2, left + cells.shape[1] + 2, 3), 255, np.uint8)
    out[top : top + cells.shape[0], left : left + cells.shape[1]] = cells
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    for i, name in enumerate(names):
        draw.text((2, top + i * ch + max(0, ch // 2 - 6)), name, fill=(0, 0, 0))
    need = max(1, int(np.ceil(40 / cw)))
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if s >= need), need)
    for u in range(0, units, step):
        draw.text((left + u * cw, 1), str(u), fill=(0, 0, 0))
    return np.ascontiguousarray(np.asarray(pil)), HeatLayout(left, top, ch, cw, k, units)


def fit_tile(rgb: np.ndarray, size: int, smooth: bool = True) -> np.ndarray:
    """A uint8 RGB image scaled to fit a size x size square, centred on white.

    Enlarging is nearest-neighbour (maps and crops keep their cells); shrinking is Lanczos
    when smooth, else nearest.
    """
    from PIL import Image

    a = rgb if rgb.ndim == 3 else rgb[..., None]
    a = np.ascontiguousarray(np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a[..., :3])
    h, w = a.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.LANCZOS if (smooth and scale < 1) else Image.Resampling.NEAREST
    im = np.asarray(Image.fromarray(a).resize(new, resample))
    out = np.full((size, size, 3), 255, np.uint8)
    y0, x0 = (size - im.shape[0]) // 2, (size - im.shape[1]) // 2
    out[y0 : y0 + im.shape[0], x0 : x0 + im.shape[1]] = im
    return out


def class_grid_figure(result: ScanResult, stat: str = "mean") -> np.ndarray:
    """For dense layers: each class's mean unit activations as a small grid, side by side, shared scale."""
    grids = result.class_grids(stat)
    finite = grids[np.isfinite(grids)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cell = max(2, min(16, 160 // max(grids.shape[1:])))
    tiles = [upscale(colorize(g, lo, hi), cell, cell) for g in grids]
    return tile_figure(tiles, list(result.class_names), cols=min(len(tiles), 10))[0]


def map_tile(m: np.ndarray, size: int, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """A map coloured (magma) and enlarged with whole cells to a size x size tile."""
    return fit_tile(colorize(np.atleast_2d(m), lo, hi, "magma"), size, smooth=False)


def image_tile(img: np.ndarray, size: int) -> np.ndarray:
    """A [0, 1] image (H, W, C) as a size x size uint8 RGB tile."""
    a = np.clip(np.asarray(img, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return fit_tile(a, size)


def compare_figure(out: dict[str, Any], class_names: tuple[str, ...], size: int = 96) -> np.ndarray:
    """Images of the two classes (rows) with their maps of the most separating units, side by side."""
    ex = out["examples"]
    sep = out["separation"]
    tiles: list[np.ndarray] = []
    titles: list[str] = []
    n = ex["ids"].shape[1]
    chans = ex["channels"]
    maps = ex["maps"]
    valid = ex["ids"] >= 0
    # one colour scale per unit, shared by both classes so their maps compare fairly
    scales = []
    for ci in range(len(chans)):
        vals = maps[:, :, ci][valid]
        scales.append((float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0))
    d_of = {int(c): float(d) for c, d in zip(sep.channels, sep.d)}
    for row, cls in enumerate(ex["classes"]):
        for col in range(n):
            i = int(ex["ids"][row, col])
            if i < 0:
                tiles.append(np.full((size, size, 3), 255, np.uint8))
                titles.append("")
                continue
            tiles.append(image_tile(ex["images"][row, col], size))
            titles.append(f"{class_names[cls]} #{i}")
            for ci, c in enumerate(chans):
                tiles.append(map_tile(maps[row, col, ci], size, *scales[ci]))
                titles.append(f"u{c} d={d_of.get(int(c), 0.0):+.2f}")
    if not tiles:
        raise EngineError("no images of these classes in the scan")
    return tile_figure(tiles, titles, cols=n * (1 + len(chans)))[0]


def maps_figure(out: dict[str, Any], size: int = 128) -> np.ndarray:
    """Each image beside the map of the channel that fired most for it."""
    tiles: list[np.ndarray] = []
    titles: list[str] = []
    for i, img, sm in zip(out["ids"], out["images"], out["maps"]):
        tiles.append(image_tile(img, size))
        titles.append(f"#{i}")
        tiles.append(map_tile(sm.map, size))
        titles.append(f"ch {sm.channel} max {sm.value:.3g}")
    if not tiles:
        raise EngineError("no images to show")
    return tile_figure(tiles, titles, cols=8)[0]


def _render_units(
    result: ScanResult, cell: int, fit: tuple[int, int] | None = None
) -> tuple[np.ndarray, FigureLayout, ScanResult]:
    image, layout = render_units_layout(result, None, None, cell, fit=fit)
    return image, layout, result


def _render_detail(result: ScanResult, unit: int) -> tuple[np.ndarray, int, ScanResult]:
    crops = result.crops_of(unit)
    hits = result.hits(unit)
    size = 96
    tiles, titles = [], []
    for rank, crop in enumerate(crops[: len(hits)]):
        rgb = np.repeat(crop, 3, axis=-1) if crop.shape[-1] == 1 else crop[..., :3]
        tiles.append(fit_tile(rgb, size, smooth=False))
        hit = hits[rank]
        label = f" {result.class_names[hit.label]}"[:9] if 0 <= hit.label < len(result.class_names) else ""
        titles.append(f"{hit.value:.3g} #{hit.image_id}{label}")
    if not tiles:
        raise EngineError(f"unit {unit} has no hits")
    image, _ = tile_figure(tiles, titles, cols=3)
    return image, unit, result


class DatasetView(View):
    """Scan a dataset through a layer; browse top-k crops per unit, class patterns and per-image maps."""

    title = "Dataset"
    owner = "dataset"
    maximize_requested = Signal(str)  # an objective string such as "conv3:5", for the Maximize tab

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.result: ScanResult | None = None
        self.layout_units: FigureLayout | None = None
        self.selected: int | None = None
        self.compare_result: dict[str, Any] | None = None
        self.maps_result: dict[str, Any] | None = None
        self.figures: dict[str, np.ndarray] = {}
        self.heat_layout: HeatLayout | None = None
        self._sourced_for: str | None = None  # the model spec the source was last fitted to

        # ----- controls -----
        self.source_box = QComboBox()
        self.source_box.setEditable(True)
        self.source_box.addItems(SOURCES)
        self.source_box.setMinimumWidth(160)
        self.source_box.setToolTip(
            "A folder (labels from sub-folder names), builtin:digits or builtin:shapes?n=N&seed=S"
        )
        self.folder_button = QPushButton("Folder…")
        self.layer_box = QComboBox()
        self.layer_box.setMinimumWidth(120)
        self.layer_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_box.setMinimumContentsLength(12)
        self.k_box = QSpinBox()
        self.k_box.setRange(1, 64)
        self.k_box.setValue(9)
        self.k_box.setToolTip("Top images kept per unit")
        self.cell_box = QSpinBox()
        self.cell_box.setRange(12, 128)
        self.cell_box.setValue(32)
        self.cell_box.setToolTip("Pixels per crop in the unit grid")
        self.run_button = QPushButton("Run scan")
        self.run_button.setToolTip("Scan the source through the layer (F5, Run → Run)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setMinimumWidth(120)
        self.info = ClippedLabel("")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # two rows, so the Run button is in sight in a 1280 px window: what to scan, then how
        bar = QGridLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.setHorizontalSpacing(6)
        bar.setVerticalSpacing(2)
        bar.addWidget(QLabel("Source"), 0, 0, Qt.AlignmentFlag.AlignRight)
        bar.addWidget(self.source_box, 0, 1, 1, 4)
        bar.addWidget(self.folder_button, 0, 5)
        bar.addWidget(QLabel("Layer"), 0, 6, Qt.AlignmentFlag.AlignRight)
        bar.addWidget(self.layer_box, 0, 7)
        bar.addWidget(QLabel("k"), 1, 0, Qt.AlignmentFlag.AlignRight)
        bar.addWidget(self.k_box, 1, 1)
        bar.addWidget(QLabel("Crop px"), 1, 2, Qt.AlignmentFlag.AlignRight)
        bar.addWidget(self.cell_box, 1, 3)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        bar.addLayout(buttons, 1, 4, 1, 2)
        bar.addWidget(self.progress_bar, 1, 6, 1, 2)
        bar.setColumnStretch(4, 2)
        bar.setColumnStretch(7, 2)

        # ----- units page -----
        self.units_pane = ImagePane()
        self.units_pane.setToolTip("Click a unit to see its top images and its maximization")
        self.detail_title = QLabel("Click a unit")
        self.detail_title.setWordWrap(True)
        self.detail_pane = ImagePane()
        self.max_pane = ImagePane(pan_zoom=False)
        self.max_pane.setToolTip("The unit's activation maximization")
        self.max_button = QPushButton("Maximize this unit")
        self.max_button.setEnabled(False)
        self.open_max_button = QPushButton("Open in Maximize tab")
        self.open_max_button.setEnabled(False)
        self.max_label = QLabel("")
        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(2, 2, 2, 2)
        dl.addWidget(self.detail_title)
        dl.addWidget(self.detail_pane, 3)
        row = QHBoxLayout()
        row.addWidget(self.max_button)
        row.addWidget(self.open_max_button)
        dl.addLayout(row)
        dl.addWidget(self.max_pane, 2)
        dl.addWidget(self.max_label)
        self.units_split = QSplitter(Qt.Orientation.Horizontal)
        self.units_split.addWidget(self.units_pane)
        self.units_split.addWidget(detail)
        self.units_split.setStretchFactor(0, 3)
        self.units_split.setStretchFactor(1, 2)

        # ----- classes page -----
        self.heat_mode = QComboBox()
        self.heat_mode.addItem("z-score per unit", "zscore")
        self.heat_mode.addItem("mean activation", "raw")
        self.stat_box = QComboBox()
        self.stat_box.addItem("spatial mean", "mean")
        self.stat_box.addItem("spatial max", "max")
        self.class_a = QComboBox()
        self.class_b = QComboBox()
        self.compare_button = QPushButton("Compare")
        self.heat_pane = ImagePane()
        self.heat_pane.setToolTip("Rows: classes; columns: units. Click a cell to open the unit")
        self.heat_label = ClippedLabel("")
        self.grids_pane = ImagePane()
        self.sep_table = QTableWidget(0, 4)
        self.sep_table.setHorizontalHeaderLabels(["unit", "d", "mean A", "mean B"])
        self.sep_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.sep_table.verticalHeader().setVisible(False)
        self.sep_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.compare_pane = ImagePane()
        classes = QWidget()
        cl = QVBoxLayout(classes)
        cl.setContentsMargins(2, 2, 2, 2)
        crow = QGridLayout()  # two rows: the heatmap's look, then the pair of classes to compare
        crow.setHorizontalSpacing(6)
        for i, (text, w) in enumerate(
            (
                ("Heatmap", self.heat_mode),
                ("Statistic", self.stat_box),
                ("Class A", self.class_a),
                ("Class B", self.class_b),
            )
        ):
            crow.addWidget(QLabel(text), i // 2, 2 * (i % 2), Qt.AlignmentFlag.AlignRight)
            crow.addWidget(w, i // 2, 2 * (i % 2) + 1)
        crow.addWidget(self.compare_button, 1, 4)
        crow.setColumnStretch(5, 1)
        cl.addLayout(crow)
        self.classes_split = QSplitter(Qt.Orientation.Vertical)
        top = QSplitter(Qt.Orientation.Horizontal)
        heat_box = QWidget()
        hl = QVBoxLayout(heat_box)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(self.heat_pane, 3)
        hl.addWidget(self.heat_label)
        hl.addWidget(self.grids_pane, 2)
        top.addWidget(heat_box)
        top.addWidget(self.sep_table)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([800, 360])
        self.classes_split.addWidget(top)
        self.classes_split.addWidget(self.compare_pane)
        cl.addWidget(self.classes_split, 1)

        # ----- images page -----
        self.first_image = QSpinBox()
        self.first_image.setRange(0, 0)
        self.image_count = QSpinBox()
        self.image_count.setRange(1, 32)
        self.image_count.setValue(8)
        self.show_images_button = QPushButton("Show")
        self.images_pane = ImagePane()
        images = QWidget()
        il = QVBoxLayout(images)
        il.setContentsMargins(2, 2, 2, 2)
        irow = QHBoxLayout()
        irow.addWidget(QLabel("From image #"))
        irow.addWidget(self.first_image)
        irow.addWidget(QLabel("count"))
        irow.addWidget(self.image_count)
        irow.addWidget(self.show_images_button)
        irow.addStretch(1)
        il.addLayout(irow)
        hint = QLabel("Each image beside the map of the channel that fired most on it.")
        hint.setWordWrap(True)
        il.addWidget(hint)
        il.addWidget(self.images_pane, 1)

        self.pages = QTabWidget()
        self.pages.addTab(self.units_split, "Units")
        self.pages.addTab(classes, "Classes")
        self.pages.addTab(images, "Images")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.info)
        layout.addWidget(self.pages, 1)

        self.units_renderer = RenderWorker(self)
        self.units_renderer.done.connect(self._on_units_rendered)
        self.units_renderer.failed.connect(lambda m: self.units_pane.clear_image(m.splitlines()[0]))
        self.detail_renderer = RenderWorker(self)
        self.detail_renderer.done.connect(self._on_detail_rendered)
        self.detail_renderer.failed.connect(lambda m: self.detail_pane.clear_image(m.splitlines()[0]))

        self.folder_button.clicked.connect(self._choose_folder)
        self.run_button.clicked.connect(self.run_scan)
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.layer_box.activated.connect(lambda _i: self.lookup())
        self.source_box.activated.connect(lambda _i: self.lookup())
        self.k_box.editingFinished.connect(self.lookup)
        self.cell_box.valueChanged.connect(lambda _v: self._render_units())
        self.units_pane.clicked.connect(self._on_units_clicked)
        self._relayout_timer = QTimer(self)  # the unit grid takes the columns that fit the pane best
        self._relayout_timer.setSingleShot(True)
        self._relayout_timer.setInterval(150)
        self._relayout_timer.timeout.connect(self._relayout_units)
        self.units_pane.resized.connect(self._relayout_timer.start)
        self.heat_pane.clicked.connect(self._on_heat_clicked)
        self.heat_mode.currentIndexChanged.connect(lambda _i: self._show_classes())
        self.stat_box.currentIndexChanged.connect(lambda _i: self._show_classes())
        self.compare_button.clicked.connect(self.compare)
        self.sep_table.cellClicked.connect(self._on_sep_clicked)
        self.show_images_button.clicked.connect(self.show_images)
        self.max_button.clicked.connect(self.maximize_unit)
        self.open_max_button.clicked.connect(self.open_in_maximize_tab)
        self.units_pane.clear_image("choose a source and a layer, then Run scan")

    # ----- choices ---------------------------------------------------------------------
    @property
    def source(self) -> str:
        return self.source_box.currentText().strip()

    def set_source(self, spec: str) -> None:
        if self.source_box.findText(spec) < 0:
            self.source_box.addItem(spec)
        self.source_box.setCurrentText(spec)

    @property
    def layer(self) -> str | None:
        return self.layer_box.currentData()

    def set_layer(self, path: str) -> None:
        index = self.layer_box.findData(path)
        if index < 0:
            raise EngineError(f"layer {path!r} cannot be scanned (needs a conv or dense output)")
        self.layer_box.setCurrentIndex(index)

    @property
    def k(self) -> int:
        return int(self.k_box.value())

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder (one sub-folder per class)")
        if folder:
            self.set_source(folder)
            self.lookup()

    def _fill_layers(self) -> None:
        current = self.layer
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        for info in self.state.all_layers():
            if scannable(info):
                shape = "×".join(str(d) for d in info.output_shape)
                self.layer_box.addItem(f"{info.path}  ({shape})", info.path)
        preferred = self.state.layer if self.layer_box.findData(self.state.layer) >= 0 else current
        if preferred is not None and self.layer_box.findData(preferred) >= 0:
            self.layer_box.setCurrentIndex(self.layer_box.findData(preferred))
        self.layer_box.blockSignals(False)

    # ----- requests ----------------------------------------------------------------------
    def refresh(self) -> None:
        """Model or layer changed: list the layers and show the cached scan of the choice, if any."""
        if self.state.model is None:
            self._clear("loading engine…" if not self.client.is_ready else "no model")
            return
        spec = self.state.model.get("spec")
        if spec != self._sourced_for:
            self._sourced_for = spec
            self._fit_source()
        self._fill_layers()
        self.lookup()

    def _fit_source(self) -> None:
        """On a new model, swap a built-in source for the one that matches its input channels."""
        if self.source not in SOURCES:
            return  # the user's own folder or list stays
        shape = tuple(self.state.model.get("input_shape") or ()) if self.state.model else ()
        channels = int(shape[-1] or 3) if shape else 3
        fitting = SOURCES[0] if channels == 1 else SOURCES[1]
        if self.source != fitting:
            self.set_source(fitting)

    def _params(self) -> dict[str, Any]:
        return {"source": self.source, "layer": self.layer, "k": self.k}

    def lookup(self) -> None:
        """Ask for the cached result of the current choices (instant; nothing is scanned)."""
        if self.state.model is None or not self.layer or not self.source:
            return
        if (
            self.result is not None
            and (self.result.layer, self.result.k) == (self.layer, self.k)
            and (self.result.source == self.source)
        ):
            return
        self.submit("scan", {**self._params(), "cache_only": True}, tag="lookup")

    def run(self) -> None:
        """Run (F5, Run → Run): scan, as the Run scan button does."""
        self.run_scan()

    def run_scan(self) -> None:
        """Scan the source through the layer (resuming a cancelled scan of the same choices)."""
        if self.state.model is None:
            self.status.emit("no model loaded")
            return
        if not self.layer:
            self.status.emit("choose a layer to scan")
            return
        self.cancel("lookup")
        self.submit("scan", self._params())
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setFormat("starting…")
        self.info.setText(f"scanning {self.source} through {self.layer}…")

    def cancel_scan(self) -> None:
        self.cancel()
        self._scan_stopped()
        self.progress_bar.setFormat("cancelled: Run again resumes")

    def _scan_stopped(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)

    def _clear(self, message: str) -> None:
        self.cancel()
        self.cancel("lookup")
        self.result = None
        self.layout_units = None
        self.selected = None
        self.units_pane.clear_image(message)
        self.detail_pane.clear_image("")
        self.heat_pane.clear_image("")
        self.grids_pane.clear_image("")
        self.compare_pane.clear_image("")
        self.images_pane.clear_image("")
        self.max_pane.clear_image("")
        self.info.setText("")
        self._scan_stopped()

    # ----- events ------------------------------------------------------------------------
    def job_progress(self, tag: str, event: Progress) -> None:
        if tag != "":
            return
        total = max(int(event.total), 1)
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(int(event.step))
        self.progress_bar.setFormat(event.message or f"{event.step}/{event.total}")

    def job_finished(self, tag: str, event: Finished) -> None:
        if tag in ("", "lookup"):
            if tag == "":
                self._scan_stopped()
            if event.reason != "done":
                return
            if isinstance(event.result, ScanResult):
                self.set_result(event.result)
            elif tag == "lookup":
                self.result = None
                self.units_pane.clear_image(f"Run scan to scan {self.source} through {self.layer}")
                self.info.setText("")
        elif tag == "compare" and event.reason == "done":
            self._show_compare(event.result)
        elif tag == "maps" and event.reason == "done":
            self._show_maps(event.result)
        elif tag == "max" and event.reason == "done":
            self._show_max_result(event.result)

    def job_failed(self, tag: str, event: Failed) -> None:
        message = event.message.splitlines()[0] if event.message else "failed"
        if tag == "":
            self._scan_stopped()
            self.progress_bar.setFormat("failed")
            self.info.setText(message)
            self.units_pane.clear_image(message)
        elif tag == "lookup":
            self.units_pane.clear_image(message)
        elif tag == "compare":
            self.compare_pane.clear_image(message)
        elif tag == "maps":
            self.images_pane.clear_image(message)
        elif tag == "max":
            self.max_pane.clear_image("")
            self.max_label.setText(f"maximization: {message}")
        self.status.emit(message)

    def job_frame(self, tag: str, event: Frame) -> None:
        if tag == "max":
            self._show_max_images(event.images)

    # ----- the result ----------------------------------------------------------------------
    def set_result(self, result: ScanResult) -> None:
        """Show a scan result on every page."""
        self.result = result
        self.selected = None
        self.compare_result = None
        self.maps_result = None
        scanned = result.done - len(result.skipped)
        how = (
            "from cache"
            if result.from_cache
            else f"{result.elapsed:.1f} s, {result.images_per_s:,.0f} images/s"
        )
        text = f"{result.layer}: {result.units} units, top {result.k} of {scanned:,} images ({how})"
        if result.skipped:
            text += f"; {len(result.skipped)} skipped"
        self.info.setText(text)  # its tooltip: the whole line, then why images were skipped
        if result.skipped:
            self.info.setToolTip("\n".join([text, *(m for _, m in result.skipped[:20])]))
        self.progress_bar.setRange(0, max(result.total, 1))
        self.progress_bar.setValue(result.done)
        self.progress_bar.setFormat(f"{result.done:,}/{result.total:,} images")
        self.first_image.setRange(0, max(result.total - 1, 0))
        self.sep_table.setRowCount(0)
        self.figures = {}
        self._fill_classes()
        self._render_units()
        self._close_detail()
        self._open_strongest_unit()
        self._show_classes()
        self.images_pane.clear_image("Show: images beside their strongest maps")
        self.compare_pane.clear_image("pick two classes and Compare")

    def _render_units(self) -> None:
        if self.result is None:
            return
        self.units_renderer.render(
            _render_units, self.result, int(self.cell_box.value()), self.units_pane.fit_size()
        )

    def _relayout_units(self) -> None:
        """The pane changed size (debounced): draw the unit grid again with the columns that fit it."""
        if self.result is not None:
            self._render_units()

    def _on_units_rendered(self, out: tuple) -> None:
        image, layout, result = out
        if result is not self.result:
            return
        self.layout_units = layout
        self.figures["units"] = image
        self.units_pane.set_image(image)

    def units_image(self) -> np.ndarray | None:
        return self.figures.get("units") if self.result is not None else None

    # ----- units page --------------------------------------------------------------------
    def _on_units_clicked(self, row: int, col: int) -> None:
        if self.layout_units is None:
            return
        unit = self.layout_units.item_at(row, col)
        if unit is not None:
            self.open_unit(int(unit))

    def _open_strongest_unit(self) -> None:
        """A fresh result opens its strongest unit, so the detail pane shows top images at once."""
        r = self.result
        if r is None or r.units == 0 or not (r.top_ids[:, 0] >= 0).any():
            return
        best = np.where(r.top_ids[:, 0] >= 0, np.nan_to_num(r.top_values[:, 0], nan=-np.inf), -np.inf)
        self.open_unit(int(np.argmax(best)))

    def open_unit(self, unit: int) -> None:
        """Show unit `unit`'s top-k large with names and values, and enable its maximization."""
        if self.result is None or not 0 <= unit < self.result.units:
            return
        self.selected = unit
        self.pages.setCurrentIndex(0)
        hits = self.result.hits(unit)
        top = hits[0] if hits else None
        desc = f"<b>{self.result.layer}</b> unit {unit}"
        if top is not None:
            desc += f": max {top.value:.3g} in {top.name}"
            if self.result.rf:
                desc += f" at cell ({top.y}, {top.x}); field {self.result.rf[0][0]}×{self.result.rf[0][1]} px"
        self.detail_title.setText(desc)
        self.detail_renderer.render(_render_detail, self.result, unit)
        self.max_button.setEnabled(True)
        self.open_max_button.setEnabled(self._maximize_view() is not None)
        self.max_pane.clear_image("Maximize this unit to see what excites it")
        self.max_label.setText("")

    def _on_detail_rendered(self, out: tuple) -> None:
        image, unit, result = out
        if result is not self.result or unit != self.selected:
            return
        self.figures["detail"] = image
        self.detail_pane.set_image(image)

    def _close_detail(self) -> None:
        self.selected = None
        self.detail_title.setText("Click a unit")
        self.detail_pane.clear_image("")
        self.max_pane.clear_image("")
        self.max_label.setText("")
        self.max_button.setEnabled(False)
        self.open_max_button.setEnabled(False)

    def objective(self) -> str | None:
        """The objective string of the selected unit ("layer:unit")."""
        if self.result is None or self.selected is None:
            return None
        return f"{self.result.layer}:{self.selected}"

    def maximize_unit(self) -> None:
        """Run an activation maximization of the selected unit, streamed into the pane beside its crops."""
        objective = self.objective()
        if objective is None:
            return
        self.max_label.setText(f"maximizing {objective}…")
        self.max_pane.clear_image("starting…")
        self.submit("maximize", {"objective": objective, "steps": MAX_STEPS, "every": 8}, tag="max")
        self.maximize_requested.emit(objective)

    def _maximize_view(self) -> Any:
        window = self.window()
        finder = getattr(window, "view", None)
        if finder is None:
            return None
        try:
            view = finder("maximize")
        except (KeyError, LookupError, EngineError, AttributeError):
            return None
        if hasattr(view, "set_objective") or (hasattr(view, "set_mode") and hasattr(view, "channel_spin")):
            return view
        return None

    def open_in_maximize_tab(self) -> None:
        """Hand the selected unit to the Maximize tab and show it there.

        Uses the tab's set_objective(str) when it has one; otherwise selects the layer and sets
        the tab's channel mode and channel.
        """
        objective = self.objective()
        view = self._maximize_view()
        if objective is None or view is None or self.result is None or self.selected is None:
            return
        if hasattr(view, "set_objective"):
            view.set_objective(objective)
        else:
            self.state.set_layer(self.result.layer)
            view.set_mode("channel")
            view.channel_spin.setValue(int(self.selected))
        tabs = getattr(self.window(), "tabs", None)
        if tabs is not None:
            tabs.setCurrentWidget(view)

    def _show_max_images(self, images: Any) -> None:
        arr = images
        if isinstance(arr, dict):
            arr = next(iter(arr.values()), None)
        if arr is None:
            return
        a = np.asarray(arr, np.float32)
        if a.ndim == 4:
            a = a[0]
        if a.ndim == 3 and a.shape[-1] in (1, 3):
            self.max_pane.set_image(np.ascontiguousarray(np.clip(a, 0.0, 1.0)), levels=(0.0, 1.0))

    def _show_max_result(self, result: Any) -> None:
        images = getattr(result, "images", None)
        if images is None and isinstance(result, dict):
            images = result.get("images")
        if images is None and isinstance(result, list | tuple) and result:
            images = getattr(result[-1], "images", None)
        if images is None and isinstance(result, np.ndarray):
            images = result
        if images is not None:
            self._show_max_images(images)
        self.max_label.setText(f"maximization of {self.objective()}" if self.objective() else "")

    # ----- classes page --------------------------------------------------------------------
    def _fill_classes(self) -> None:
        names = list(self.result.class_names) if self.result is not None else []
        for box, default in ((self.class_a, 0), (self.class_b, 1)):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            if current in names:
                box.setCurrentText(current)
            elif len(names) > default:
                box.setCurrentIndex(default)
            box.blockSignals(False)
        self.compare_button.setEnabled(len(names) >= 2)

    def _show_classes(self) -> None:
        result = self.result
        if result is None:
            return
        if not result.class_names:
            self.heat_pane.clear_image(
                "this dataset has no labels (use a folder with one sub-folder per class)"
            )
            self.grids_pane.clear_image("")
            self.figures.pop("classes", None)
            return
        stat = str(self.stat_box.currentData())
        heat, self.heat_layout = class_heatmap(result, str(self.heat_mode.currentData()), stat)
        self.figures["classes"] = heat
        self.heat_pane.set_image(heat)
        counts = result.class_stats(stat).count
        self.heat_label.setText(
            f"rows: {len(result.class_names)} classes ({', '.join(f'{n}: {c}' for n, c in zip(result.class_names[:12], counts))}"
            f"{' …' if len(counts) > 12 else ''}); columns: {result.units} units"
        )
        if result.kind == "dense":
            self.grids_pane.set_image(class_grid_figure(result, stat))
            self.grids_pane.show()
        else:
            self.grids_pane.clear_image("")
            self.grids_pane.hide()

    def _on_heat_clicked(self, row: int, col: int) -> None:
        if self.result is None or self.heat_layout is None:
            return
        cell = self.heat_layout.cell_at(row, col)
        if cell is not None:
            self.open_unit(cell[1])

    def compare(self) -> None:
        """The units that separate class A from class B, and a few images of each with their maps."""
        if self.result is None:
            return
        a, b = self.class_a.currentText(), self.class_b.currentText()
        if a == b:
            self.compare_pane.clear_image("choose two different classes")
            return
        stat = str(self.stat_box.currentData())
        try:
            sep = self.result.separating(a, b, n=32, stat=stat)
        except EngineError as exc:
            self.compare_pane.clear_image(str(exc))
            return
        self._fill_table(sep)
        self.compare_pane.clear_image("computing maps…")
        self.submit(
            "scan_compare",
            {"result": self.result, "a": a, "b": b, "stat": stat, "n": 8, "per_class": 4, "map_channels": 3},
            tag="compare",
        )

    def _fill_table(self, sep: Any) -> None:
        self.sep_table.setRowCount(len(sep.channels))
        self.sep_table.setHorizontalHeaderLabels(["unit", "d", f"mean {sep.a}", f"mean {sep.b}"])
        for r, (c, d, ma, mb) in enumerate(zip(sep.channels, sep.d, sep.mean_a, sep.mean_b)):
            for col, text in enumerate((str(int(c)), f"{d:+.2f}", f"{ma:.3g}", f"{mb:.3g}")):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, int(c))
                self.sep_table.setItem(r, col, item)

    def _on_sep_clicked(self, row: int, _col: int) -> None:
        item = self.sep_table.item(row, 0)
        if item is not None:
            self.open_unit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _show_compare(self, out: dict[str, Any]) -> None:
        if self.result is None:
            return
        self.compare_result = out
        try:
            fig = compare_figure(out, self.result.class_names)
        except EngineError as exc:
            self.compare_pane.clear_image(str(exc))
            return
        self.figures["compare"] = fig
        self.compare_pane.set_image(fig)

    # ----- images page ---------------------------------------------------------------------
    def show_images(self) -> None:
        """Images side by side, each with the channel that fired most and its map."""
        if self.result is None:
            return
        start = int(self.first_image.value())
        skipped = {i for i, _ in self.result.skipped}
        ids = [
            i
            for i in range(start, min(self.result.total, start + int(self.image_count.value())))
            if i not in skipped
        ]
        self.images_pane.clear_image("computing maps…")
        self.submit("scan_maps", {"result": self.result, "ids": ids}, tag="maps")

    def _show_maps(self, out: dict[str, Any]) -> None:
        self.maps_result = out
        try:
            fig = maps_figure(out)
        except EngineError as exc:
            self.images_pane.clear_image(str(exc))
            return
        self.figures["images"] = fig
        self.images_pane.set_image(fig)

    # ----- export and settings ----------------------------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self.result is None:
            raise EngineError("no scan to export yet: Run scan first")
        page = PAGES[self.pages.currentIndex()] if self.pages.currentIndex() < len(PAGES) else "units"
        r = self.result
        meta = {
            **self.base_settings(),
            "view": "dataset",
            "page": page,
            "source": r.source,
            "layer": r.layer,
            "k": r.k,
            "images": r.total,
            "skipped": len(r.skipped),
        }
        if page == "units":
            from engine.dataset.topk import render_units

            cell = int(self.cell_box.value())
            image = render_units(r, None, None, cell)
            meta.update(
                kind="topk",
                cell=cell,
                command=(
                    f"python main.py export topk --model {r.model} --source {r.source} --layer {r.layer} "
                    f"--k {r.k} --cell {cell} --out FILE.png"
                ),
            )
            return image, meta
        image = self.figures.get(page)
        if image is None:
            raise EngineError(f"nothing shown on the {page} page yet")
        meta["stat"] = str(self.stat_box.currentData())
        if page == "classes":
            meta["heatmap"] = str(self.heat_mode.currentData())
        return image, meta

    def save_settings(self, s: QSettings) -> None:
        s.setValue("source", self.source)
        s.setValue("k", self.k)
        s.setValue("cell", int(self.cell_box.value()))
        s.setValue("split", self.units_split.saveState())

    def restore_settings(self, s: QSettings) -> None:
        source = cfg.read(s, "source", self.source, str)
        if source:
            self.set_source(source)
        self.k_box.setValue(cfg.read(s, "k", 9, int))
        self.cell_box.setValue(cfg.read(s, "cell", 32, int))
        split = s.value("split")
        if split is not None:
            self.units_split.restoreState(split)
