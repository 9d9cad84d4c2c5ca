"""Feature maps: every channel of the selected layer as one tiled image with grid lines.

The grid is one uint8 image from engine.render.feature_grid (the call export makes
too, so an exported figure equals the view pixel for pixel) shown in one pg.ImageItem;
that stays smooth at 512 channels where 512 items would not. Rendering runs off the
main thread, newest request wins. Clicking a map opens it large with its histogram;
hovering a unit of the large map outlines its receptive field on the input image.
Dense layers show their units as a grid of square cells. Streamed Frame events
({path: maps} dicts or arrays) render the same way, throttled to the screen and to
the render thread's own pace (see _frame_interval). With Columns on auto the grid takes
the columns that show maps largest in the pane (engine.render.feature_layout) and follows
the pane's resizes; an export keeps the fixed near-square layout and records it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel, QToolButton, QWidget

from engine import render
from engine.contract import FeatureMapsParams, ReceptiveFieldParams
from engine.errors import EngineError
from engine.jobs import Failed, Finished, Frame
from engine.plot.spec import FigureSpec
from gui import settings as cfg
from gui.views.base import View
from gui.widgets.controls import control_row, single_shot_timer, tab_column
from gui.widgets.fields import combo, info_line, int_spin
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import column, row, splitter
from gui.widgets.plots import static_plot
from gui.widgets.render_worker import RenderWorker
from gui.widgets.wiring import combo_choice

NORMALIZATIONS = (
    ("Per-map max (×factor)", "per_map"),
    ("Global min–max", "global"),
    ("Standardize", "standardize"),
    ("Raw", "raw"),
)
FRAME_INTERVAL_MS = 33  # at most ~30 grid updates a second while streaming
RENDER_REST = 2.0  # while streaming, the render thread idles this many times its last render time
RELAYOUT_MS = 150  # a resize re-lays the grid out once the pane has stopped changing size


def as_maps(array: np.ndarray) -> np.ndarray:
    """Layer output as (h, w, c) maps; a dense (units,) output becomes c one-pixel maps."""
    a = np.asarray(array)
    if a.ndim == 1:
        return a.reshape(1, 1, -1)
    if a.ndim == 2:  # (steps, features) of a 1-D layer: one map per feature
        return a[:, None, :]
    return a


def render_maps(maps: np.ndarray, norm: str, cmap: str, cols: int, fit: tuple[int, int] | None = None) -> Any:
    """The grid the view shows and export writes: engine.render.feature_grid.

    cols 0 = auto: the columns that fit a pane of fit = (height, width) best (the screen),
    or the fixed near-square layout without fit (exports).
    """
    return render.feature_grid(maps, norm=norm, cmap=cmap, cols=cols or None, fit=fit)


def factor_text(factor: float) -> str:
    """An amplification factor as the grid labels show it ("×12")."""
    if factor < 10:
        return f"×{factor:.1f}"
    return f"×{factor:.0f}" if factor < 1000 else f"×{factor:.0e}"


class FeatureMapsView(View):
    """Every channel of the selected layer; click one for a large view, histogram and receptive field."""

    title = "Feature maps"
    owner = "feature_maps"

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.norm_box = combo(NORMALIZATIONS, tip="How each map's values become colours")
        self.cmap_box = combo(tuple(render.COLORMAPS))
        self.cmap_box.setCurrentText("viridis")
        for box in (self.norm_box, self.cmap_box):
            box.setMinimumWidth(64)  # shrinks on small screens, full width where there is room
        self.cols_box = int_spin(0, 0, 64)
        self.cols_box.setSpecialValueText("auto")
        self.cols_box.setToolTip("Columns of the grid (auto: the most that fit the pane best)")
        self.info = info_line()

        self.grid = ImagePane()
        self.grid.setToolTip("Click a map to open it large")
        self.detail_title = QLabel("")
        self.detail_title.setWordWrap(True)
        self.detail_close = QToolButton()
        self.detail_close.setText("✕")
        self.detail_close.setToolTip("Close the large view")
        self.detail_close.setAutoRaise(True)
        self.detail_close.clicked.connect(self._close_detail)
        self.large = ImagePane()
        self.large.setToolTip("Hover a unit to see its receptive field on the input")
        self.hist = static_plot(bottom="activation")
        self.hist.setMaximumHeight(150)
        self.hist.getAxis("bottom").enableAutoSIPrefix(False)
        self.hist_curve = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=(74, 144, 217, 160), pen="#4a90d9"
        )
        self.hist.addItem(self.hist_curve)
        self.hist_marker = pg.InfiniteLine(angle=90, pen=pg.mkPen("#e04040", width=2))
        self.hist_marker.hide()
        self.hist.addItem(self.hist_marker)
        self.input = ImagePane(pan_zoom=False)
        self.input.setToolTip("Input image with the receptive field of the hovered unit")
        self.rf_label = QLabel("")
        self.rf_label.setWordWrap(True)
        title_row = row((self.detail_title, 1), (self.detail_close, 0, Qt.AlignmentFlag.AlignTop))
        self.detail = column(title_row, (self.large, 3), (self.hist, 1), (self.input, 2), self.rf_label)
        self.detail.setMinimumWidth(160)
        self.detail.hide()
        self.split = splitter(
            Qt.Orientation.Horizontal, self.grid, self.detail, stretch=(3, 1), collapsible=False
        )
        controls = control_row(
            ("Normalize", self.norm_box), ("Colormap", self.cmap_box), ("Columns", self.cols_box)
        )
        tab_column(self, controls, self.info, self.split)

        self.maps: np.ndarray | None = None  # raw layer output shown now
        self.maps_layer: str | None = None
        self.rendered: Any = None  # RenderedGrid of the maps with the settings it was made with
        self.rendered_settings: dict[str, Any] = {}
        self.selected: int | None = None
        self.rf: Any = None
        self.rf_layer: str | None = None
        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_rendered)
        self.renderer.failed.connect(self._on_render_failed)
        self._frame_timer = single_shot_timer(self, FRAME_INTERVAL_MS, self._render_frame)
        self._render_cost_ms = 0.0  # how long the last grid took to render
        self.norm_box.currentIndexChanged.connect(self._settings_changed)
        self.cmap_box.currentIndexChanged.connect(self._settings_changed)
        self.cols_box.valueChanged.connect(self._settings_changed)
        self.grid.clicked.connect(self._on_grid_clicked)
        self._relayout_timer = single_shot_timer(self, RELAYOUT_MS, self._relayout)
        self.grid.resized.connect(self._relayout_timer.start)
        state.model_changed.connect(self._forget_model)
        self.large.hovered.connect(self._on_large_hovered)
        self.grid.clear_image("loading engine…")

    def _forget_model(self) -> None:
        """A new model: its layers may share names with the old one's, but nothing else."""
        self.rf = None
        self.rf_layer = None
        self.maps_layer = None
        self._close_detail()

    # ----- settings ------------------------------------------------------------
    norm, set_normalization = combo_choice("norm_box", "normalization")

    @property
    def cmap(self) -> str:
        return self.cmap_box.currentText()

    @property
    def cols(self) -> int:
        return int(self.cols_box.value())

    def render_settings(self) -> dict[str, Any]:
        return {"norm": self.norm, "cmap": self.cmap, "cols": self.cols}

    def save_settings(self, s: QSettings) -> None:
        s.setValue("norm", self.norm)
        s.setValue("cmap", self.cmap)
        s.setValue("cols", self.cols)

    def restore_settings(self, s: QSettings) -> None:
        index = self.norm_box.findData(cfg.read(s, "norm", self.norm, str))
        if index >= 0:
            self.norm_box.setCurrentIndex(index)
        cmap = cfg.read(s, "cmap", self.cmap, str)
        if self.cmap_box.findText(cmap) >= 0:
            self.cmap_box.setCurrentText(cmap)
        self.cols_box.setValue(cfg.read(s, "cols", 0, int))

    def _settings_changed(self) -> None:
        if self.maps is not None:
            self._render()  # the large map follows when the grid is done

    # ----- requests ------------------------------------------------------------
    def refresh(self) -> None:
        state = self.state
        info = state.layer_info()
        if state.model is None:
            self._clear(state.placeholder(self.client.is_ready))
            return
        if info is None:
            self._clear("select a layer")
            return
        if info.kind == "model":
            self._clear(f"{info.name} is a nested model: select a layer inside it")
            return
        if state.image is None:
            self._clear("no image: open one or pick a sample")
            return
        self.submit(FeatureMapsParams(image=state.image, layers=(info.path,)))
        self.info.setText(f"{info.path}: computing…")

    def _clear(self, message: str) -> None:
        self.cancel()
        self.maps = None
        self.maps_layer = None
        self.rendered = None
        self.renderer.cancel()
        self.grid.clear_image(message)
        self._close_detail()
        self.info.setText("")

    def job_finished(self, tag: str, event: Finished) -> None:
        if event.reason != "done":
            return
        if tag == "rf":
            self.rf = event.result
            return
        result = event.result
        path = self.state.layer
        if isinstance(result, dict):
            path, maps = next(iter(result.items())) if path not in result else (path, result[path])
        else:
            maps = result
        self.set_maps(np.asarray(maps), path, immediate=True)

    def job_failed(self, tag: str, event: Failed) -> None:
        if tag == "rf":
            self.rf = None
            self.rf_label.setText(f"no receptive field: {event.message}")
            return
        self.grid.clear_image(event.message)
        self.maps = None
        self.rendered = None
        self.info.setText("")

    def job_frame(self, tag: str, event: Frame) -> None:
        images = event.images
        if isinstance(images, dict):
            path = self.state.layer if self.state.layer in images else next(iter(images))
            maps = images[path]
        else:
            path, maps = self.state.layer, images
        self.set_maps(np.asarray(maps), path, immediate=False)

    def set_maps(self, maps: np.ndarray, path: str | None, immediate: bool = True) -> None:
        """Show a layer output (from a finished job or a streamed frame)."""
        new_layer = path != self.maps_layer
        self.maps = maps
        self.maps_layer = path
        if new_layer:
            self._close_detail()
            self.rf = None
            self.rf_layer = None
        if immediate:
            self._frame_timer.stop()
            self._render()
        elif not self._frame_timer.isActive():
            self._frame_timer.start(self._frame_interval())

    def _frame_interval(self) -> int:
        """Time between streamed renders: ~30 a second, but the render thread rests twice as
        long as it worked, so a 512-map grid never hogs the GIL the event loop needs."""
        return int(max(FRAME_INTERVAL_MS, RENDER_REST * self._render_cost_ms))

    def _render_frame(self) -> None:
        if self.renderer.busy():
            self._frame_timer.start(self._frame_interval())  # try again after a breather
        else:
            self._render()

    # ----- rendering --------------------------------------------------------------
    def _render(self) -> None:
        if self.maps is None:
            return
        settings = self.render_settings()
        self.renderer.render(_render_job, self.maps, self.maps_layer, settings, self.grid.fit_size())

    def screen_cols(self) -> int | None:
        """The columns the grid takes in the pane now (None without maps)."""
        if self.maps is None:
            return None
        if self.cols:
            return self.cols
        return render.feature_layout(np.shape(self.maps), self.grid.fit_size())

    def _relayout(self) -> None:
        """The pane changed size: render again if other columns now show the maps larger."""
        if self.maps is None or self.rendered is None or self.cols:
            return
        if self.screen_cols() != self.rendered.layout.get("cols"):
            self._render()

    def _on_rendered(self, out: tuple) -> None:
        grid, maps, layer, settings, cost_s = out
        self._render_cost_ms = cost_s * 1000.0
        if layer != self.maps_layer or self.maps is None:
            return  # rendered for a layer no longer shown
        if maps is not self.maps and not self._frame_timer.isActive() and not self.renderer.busy():
            self._frame_timer.start(self._frame_interval())  # newer maps came meanwhile: they are next
        self.rendered = grid
        self.rendered_settings = settings
        self.grid.set_image(grid.image)
        if self.selected is not None:
            self._show_detail(self.selected)
        a = np.asarray(maps)
        shape = "×".join(str(s) for s in a.shape)
        text = f"{layer}: {a.shape[-1]} {'units' if a.ndim == 1 else 'maps'} ({shape}), "
        text += f"range {float(a.min()):.3g} … {float(a.max()):.3g}"
        if settings["norm"] == "per_map" and a.ndim > 1:
            text += f"; weakest map shown {factor_text(float(np.max(grid.factors)))}"
        self.info.setText(text)

    def _on_render_failed(self, message: str) -> None:
        self.grid.clear_image(message.splitlines()[0])

    def grid_image(self) -> np.ndarray | None:
        """The uint8 image the grid shows now (None before the first render)."""
        return None if self.rendered is None else self.rendered.image

    # ----- detail: large map, histogram, receptive field -----------------------------------
    def _on_grid_clicked(self, row: int, col: int) -> None:
        if self.rendered is None or self.maps is None:
            return
        channel = render.cell_at(self.rendered.geometry, row, col)
        if channel is not None:
            self.open_map(int(channel))

    def open_map(self, channel: int) -> None:
        """Show map `channel` large with its histogram; ask for the layer's receptive field."""
        if self.maps is None:
            return
        self.selected = channel
        self._show_detail(channel)
        info = self.state.layer_info(self.maps_layer)
        if info is not None and info.spatial and self.rf_layer != info.path:
            self.rf_layer = info.path
            self.rf = None
            self.rf_label.setText("")
            self.submit(ReceptiveFieldParams(layer=info.path), tag="rf")

    def _show_detail(self, channel: int) -> None:
        maps = np.asarray(self.maps)
        n = maps.shape[-1] if maps.ndim else 0
        if channel >= n:
            self._close_detail()
            return
        if not self.detail.isVisible():
            self.detail.show()
            total = sum(self.split.sizes())
            self.split.setSizes([total * 2 // 3, total - total * 2 // 3])
        if maps.ndim == 1:  # a dense unit: its value among all units
            value = float(maps[channel])
            self.detail_title.setText(
                f"<b>{self.maps_layer}</b> unit {channel}: {value:.4g} "
                f"(layer range {float(maps.min()):.3g} … {float(maps.max()):.3g})"
            )
            self.large.clear_image(f"unit {channel} = {value:.4g}")
            self._show_histogram(maps, marker=value)
            self.input.hide()
            self.rf_label.setText("")
            return
        m = as_maps(maps)
        values, factors = render.normalize(m, self.norm)
        one = np.ascontiguousarray(values[..., channel])
        raw = m[..., channel]
        factor = ""
        if self.norm == "per_map" and round(float(factors[channel]), 1) != 1.0:
            factor = f", shown {factor_text(float(factors[channel]))}"
        self.detail_title.setText(
            f"<b>{self.maps_layer}</b> map {channel}: {raw.shape[0]}×{raw.shape[1]}, "
            f"min {float(raw.min()):.3g}, max {float(raw.max()):.3g}, mean {float(raw.mean()):.3g}{factor}"
        )
        self.large.set_image(render.apply_colormap(one, self.cmap))
        self._show_histogram(raw)
        self.input.show()
        self._show_input()

    def _show_histogram(self, values: np.ndarray, marker: float | None = None) -> None:
        v = np.asarray(values, np.float64).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size == 0:
            self.hist_curve.setData([], [])
            return
        counts, edges = np.histogram(v, bins=int(min(64, max(8, v.size // 4))))
        self.hist_curve.setData(edges, counts)
        self.hist_marker.setVisible(marker is not None)
        if marker is not None:
            self.hist_marker.setValue(marker)

    def _show_input(self) -> None:
        if self.state.image is None:
            self.input.clear_image("no image")
        else:
            self.input.set_image(self.state.display_image)
        self.input.hide_box()

    def _close_detail(self) -> None:
        self.selected = None
        self.large.clear_image("")
        self.hist_curve.setData([], [])
        self.hist_marker.hide()
        self.detail_title.setText("")
        self.rf_label.setText("")
        self.input.hide_box()
        self.detail.hide()

    def _on_large_hovered(self, row: int, col: int) -> None:
        if row >= 0:
            self.large.show_box(row, col, row + 1, col + 1)  # the unit under the pointer
        else:
            self.large.hide_box()
        if row < 0 or self.rf is None or self.state.model is None or self.state.image is None:
            self.input.hide_box()
            if row >= 0 and self.rf is None and self.selected is not None:
                self.rf_label.setText("receptive field: computing…")
            return
        box = self.receptive_box(row, col)
        if box is None:
            self.input.hide_box()
            return
        self.input.show_box(*box)
        ry, rx = self.rf.size
        note = f"unit ({row}, {col}): receptive field {ry}×{rx} px of the model input"
        if getattr(self.rf, "global_context", False):
            note += " plus global context"
        self.rf_label.setText(note)

    def receptive_box(self, row: int, col: int) -> tuple[float, float, float, float] | None:
        """Unit (row, col)'s receptive field in the shown image's pixels (top, left, bottom, right)."""
        if self.rf is None or self.state.image is None or self.state.model is None:
            return None
        height, width = self.state.model.input_shape[:2]
        top, left, bottom, right = self.rf.box_clipped(row, col, (height, width))
        if bottom <= top or right <= left:
            return None
        sy = self.state.image.shape[0] / height
        sx = self.state.image.shape[1] / width
        return top * sy, left * sx, bottom * sy, right * sx

    # ----- export ------------------------------------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self.maps is None:
            raise EngineError("no feature maps to export yet")
        settings = self.render_settings()
        grid = render_maps(self.maps, **settings)  # the fixed layout, not the pane's
        return self.grid_export(grid, "featuremaps", self.maps_layer, settings)

    def figure_spec(self) -> FigureSpec:
        """The figure `export featuremaps` draws (engine.plot.features), in the export's columns."""
        from engine.cli import display_name
        from engine.plot.features import featuremaps_figure

        if self.maps is None or self.maps_layer is None:
            raise EngineError("no feature maps to export yet")
        settings = self.render_settings()
        cols = render_maps(self.maps, **settings).layout["cols"]  # the export's fixed layout
        model = self.state.model
        image = display_name(self.state.image_spec) if self.state.image_spec else ""
        return featuremaps_figure(
            self.maps, self.maps_layer, model.name if model else "", image, self.norm, self.cmap, cols=cols
        )

    def export_values(self) -> np.ndarray | None:
        return None if self.maps is None else np.asarray(self.maps)


def _render_job(maps: np.ndarray, layer: str | None, settings: dict[str, Any], fit: tuple[int, int]) -> tuple:
    start = time.perf_counter()
    grid = render_maps(maps, **settings, fit=fit)
    return grid, maps, layer, settings, time.perf_counter() - start
