"""Filters: the kernels of the selected conv (or dense) layer.

A first conv layer (3 input channels) shows each filter as an RGB patch, with its R,
G and B slices beside it; deeper layers show a grid with one row per filter and one
column per input channel. The colour scale is shared by the whole layer or set per
filter. The image comes from engine.render.filter_grid, the call export makes too.

On screen the layout fits the pane (engine.render.filter_layout: the RGB, R, G, B sections
side by side in a wide pane, stacked in a tall one, columns that show filters largest) and
follows its resizes; an export keeps the fixed layout and its sidecar records it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QWidget

from engine import render
from engine.contract import LayerParams
from engine.errors import EngineError
from engine.jobs import Failed, Finished
from engine.plot.spec import FigureSpec
from gui import settings as cfg
from gui.views.base import View
from gui.widgets.controls import control_row, single_shot_timer, tab_column
from gui.widgets.fields import combo, info_line, int_spin
from gui.widgets.image_pane import ImagePane
from gui.widgets.render_worker import RenderWorker
from gui.widgets.wiring import combo_choice

SCALES = (("Shared by the layer", True), ("Per filter", False))
RELAYOUT_MS = 150  # a resize re-lays the grid out once the pane has stopped changing size


def render_filters(
    weights: np.ndarray,
    shared_scale: bool,
    max_filters: int,
    fit: tuple[int, int] | None = None,
    cols: int | None = None,
    sections_per_row: int | None = None,
) -> Any:
    """The grid the view shows (fit = the pane's (height, width)) and export writes (fit None)."""
    return render.filter_grid(
        weights,
        shared_scale=shared_scale,
        max_out=max_filters,
        cols=cols,
        sections_per_row=sections_per_row,
        fit=fit,
    )


class FiltersView(View):
    """Kernel weights of the selected layer as an image grid."""

    title = "Filters"
    owner = "filters"

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.scale_box = combo(SCALES, tip="One colour scale for the whole layer, or one per filter")
        self.scale_box.setMinimumWidth(64)
        self.max_box = int_spin(64, 1, 4096)
        self.max_box.setToolTip("Show at most this many filters")
        self.info = info_line()
        self.pane = ImagePane()
        controls = control_row(("Scale", self.scale_box), ("Filters", self.max_box))
        tab_column(self, controls, self.info, self.pane)
        self.weights: np.ndarray | None = None
        self.weights_layer: str | None = None
        self.rendered: Any = None
        self.rendered_settings: dict[str, Any] = {}
        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_rendered)
        self.renderer.failed.connect(lambda message: self.pane.clear_image(message.splitlines()[0]))
        self.scale_box.currentIndexChanged.connect(self._render)
        self.max_box.valueChanged.connect(self._render)
        self._relayout_timer = single_shot_timer(self, RELAYOUT_MS, self._relayout)
        self.pane.resized.connect(self._relayout_timer.start)
        self.pane.clear_image("loading engine…")

    shared_scale, set_shared_scale = combo_choice("scale_box", "colour scale", bool)

    def render_settings(self) -> dict[str, Any]:
        return {"shared_scale": self.shared_scale, "max_filters": int(self.max_box.value())}

    def save_settings(self, s: QSettings) -> None:
        s.setValue("shared_scale", self.shared_scale)
        s.setValue("max_filters", int(self.max_box.value()))

    def restore_settings(self, s: QSettings) -> None:
        self.set_shared_scale(cfg.read(s, "shared_scale", True, bool))
        self.max_box.setValue(cfg.read(s, "max_filters", 64, int))

    def refresh(self) -> None:
        info = self.state.layer_info()
        if self.state.model is None:
            self._clear(self.state.placeholder(self.client.is_ready))
            return
        if info is None:
            self._clear("select a layer")
            return
        if info.kind not in ("conv", "dense"):
            self._clear(f"{info.name} ({info.type}) has no filters: select a conv or dense layer")
            return
        if info.path == self.weights_layer and self.weights is not None and self._model is self.state.model:
            return  # weights do not depend on the image
        self.submit(LayerParams(layer=info.path))
        self.info.setText(f"{info.path}: loading…")

    _model: Any = None

    def _clear(self, message: str) -> None:
        self.cancel()
        self.renderer.cancel()
        self.weights = None
        self.weights_layer = None
        self.rendered = None
        self.pane.clear_image(message)
        self.info.setText("")

    def job_finished(self, tag: str, event: Finished) -> None:
        if event.reason != "done":
            return
        self.weights = np.asarray(event.result, np.float32)
        self.weights_layer = self.state.layer
        self._model = self.state.model
        self._render()

    def job_failed(self, tag: str, event: Failed) -> None:
        self._clear(event.message)

    def _render(self) -> None:
        if self.weights is None:
            return
        settings = self.render_settings()
        self.renderer.render(_render_job, self.weights, self.weights_layer, settings, self.pane.fit_size())

    def screen_layout(self) -> dict[str, int] | None:
        """The layout that fits the pane now (None without weights)."""
        if self.weights is None:
            return None
        return render.filter_layout(self.weights.shape, self.pane.fit_size(), int(self.max_box.value()))

    def _relayout(self) -> None:
        """The pane changed size: render again if another layout now shows the filters larger."""
        if self.weights is None or self.rendered is None:
            return
        if self.screen_layout() != self.rendered.layout:
            self._render()

    def _on_rendered(self, out: tuple) -> None:
        grid, weights, layer, settings = out
        if weights is not self.weights or layer != self.weights_layer:
            return  # newer weights are on their way
        self.rendered = grid
        self.rendered_settings = settings
        self.pane.set_image(grid.image)
        kh, kw, cin, cout = weights.shape
        layout = (
            "RGB + R, G, B slices"
            if cin == 3
            else ("one map per filter" if cin == 1 else "rows: filters, columns: input channels")
        )
        self.info.setText(
            f"{layer}: {cout} filters {kh}×{kw}×{cin} ({layout}); "
            f"weights {float(weights.min()):.3g} … {float(weights.max()):.3g}"
            + (f"; {grid.caption}" if grid.caption else "")
        )

    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self.weights is None:
            raise EngineError("no filters to export: select a conv or dense layer")
        settings = self.render_settings()
        grid = render_filters(self.weights, **settings)  # the fixed layout, not the pane's
        image, meta = self.grid_export(grid, "filters", self.weights_layer, settings)
        meta.pop("image", None)  # the weights do not depend on the image
        return image, meta

    def figure_spec(self) -> FigureSpec:
        """The figure `export filters` draws (engine.plot.features)."""
        from engine.plot.features import filters_figure

        if self.weights is None or self.weights_layer is None:
            raise EngineError("no filters to export: select a conv or dense layer")
        model = self.state.model
        settings = self.render_settings()
        return filters_figure(
            self.weights,
            self.weights_layer,
            model.name if model else "",
            self.shared_scale,
            settings["max_filters"],
        )

    def export_values(self) -> np.ndarray | None:
        return None if self.weights is None else np.asarray(self.weights)


def _render_job(
    weights: np.ndarray, layer: str | None, settings: dict[str, Any], fit: tuple[int, int]
) -> tuple:
    return render_filters(weights, **settings, fit=fit), weights, layer, settings
