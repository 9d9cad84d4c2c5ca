"""Dataset: what each unit of a layer responds to across a whole set of images.

Choose a source (a folder with one sub-folder per class, builtin:digits, builtin:shapes)
and a layer, then Run: the engine thread scans the set (a "scan" job, progress with
images/s, Cancel keeps a checkpoint and the next Run resumes; a finished scan is
cached on disk, and reopening the same source and layer shows it at once through a
cache-only lookup). "Run on" scans on this computer or spreads the same scan over a Ray
cluster (gui/views/dataset_runner.py). Then browse three pages:

- Units: a grid of units, each with its top-k crops (the input under the receptive
  field of the cell where the unit peaked), drawn by engine.dataset.figures.render_units, the
  function `python main.py export topk` uses. Click a unit for its hits large, with
  names and values, beside its maximization (a "maximize" job streamed into the pane;
  "Open in Maximize tab" hands the objective to that tab when it offers set_objective).
- Classes: each unit's mean activation per class as a heatmap of classes × units
  (z-scored per unit, or raw); for dense layers also each class's activation grid.
  Pick two classes to list the units that separate them most (standardized mean
  difference) with a few images of each side and their maps side by side.
- Images: images of the set side by side, each with the channel that fired most and
  its map.

Every figure is drawn by engine.dataset.figures (TensorFlow-free), the functions
`python main.py export topk --page units|classes|images` uses, and each export's sidecar
names that command; unit crops too large to keep are read from disk off the main thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QTableWidgetItem, QWidget

from engine.dataset.contract import (
    CompareOutput,
    ScanCompareParams,
    ScanMapsParams,
    ScanParams,
    StrongestMaps,
)
from engine.dataset.figures import (
    FigureLayout,
    HeatLayout,
    class_grid_figure,
    class_heatmap,
    compare_figure,
    maps_figure,
    page_image_ids,
    render_units,
    render_units_layout,
    unit_detail,
)
from engine.dataset.result import ScanResult
from engine.errors import EngineError
from engine.jobs import Failed, Finished, Frame, Progress
from engine.plot.spec import FigureSpec
from gui.views import dataset_figure, dataset_widgets
from gui.views.base import View
from gui.views.dataset_maximize import UnitMaximize
from gui.views.dataset_widgets import SOURCES
from gui.widgets.controls import single_shot_timer
from gui.widgets.render_worker import RenderWorker

SCANNABLE_KINDS = ("conv", "dense", "pool", "norm", "activation", "merge", "other")
PAGES = ("units", "classes", "images")


def scannable(info: Any) -> bool:
    """A layer a scan accepts: spatial (h, w, c) or flat (units,) output, not a nested model."""
    return info.kind not in ("model", "input") and len(info.output_shape) in (1, 3)


def _render_units(
    result: ScanResult, cell: int, fit: tuple[int, int] | None = None
) -> tuple[np.ndarray, FigureLayout, ScanResult]:
    image, layout = render_units_layout(result, None, None, cell, fit=fit)
    return image, layout, result


def _render_detail(result: ScanResult, unit: int) -> tuple[np.ndarray, int, ScanResult]:
    return unit_detail(result, unit), unit, result


class DatasetView(UnitMaximize, View):
    """Scan a dataset through a layer; browse top-k crops per unit, class patterns and per-image maps."""

    title = "Dataset"
    owner = "dataset"
    maximize_requested = Signal(str)  # an objective string such as "conv3:5", for the Maximize tab

    def __init__(self, state, client, parent: QWidget | None = None) -> None:
        super().__init__(state, client, parent)
        self.result: ScanResult | None = None
        self.layout_units: FigureLayout | None = None
        self.selected: int | None = None
        self.compare_result: CompareOutput | None = None
        self.maps_result: StrongestMaps | None = None
        self.figures: dict[str, np.ndarray] = {}
        self.heat_layout: HeatLayout | None = None
        self._images_page = (0, 8)  # (first, count) of the images shown on the Images page
        self._sourced_for: str | None = None  # the model spec the source was last fitted to

        dataset_widgets.build(self)

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
        # the unit grid takes the columns that fit the pane best
        self._relayout_timer = single_shot_timer(self, 150, self._relayout_units)
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
        spec = self.state.model_spec
        if spec != self._sourced_for:
            self._sourced_for = spec
            self._fit_source()
        self._fill_layers()
        self.lookup()

    def _fit_source(self) -> None:
        """On a new model, swap a built-in source for the one that matches its input channels."""
        if self.source not in SOURCES:
            return  # the user's own folder or list stays
        shape = self.state.model.input_shape if self.state.model else ()
        channels = int(shape[-1] or 3) if shape else 3
        fitting = SOURCES[0] if channels == 1 else SOURCES[1]
        if self.source != fitting:
            self.set_source(fitting)

    def _params(self, cache_only: bool = False) -> ScanParams:
        """The scan of the choices; a cache-only lookup stays local (where it runs cannot matter)."""
        where = {} if cache_only else self.run_on.scan_fields()
        return ScanParams(
            source=self.source, layer=self.layer or "", k=self.k, cache_only=cache_only, **where
        )

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
        self.submit(self._params(cache_only=True), tag="lookup")

    def run(self) -> None:
        """Run (F5, Run → Run): scan, as the Run scan button does."""
        self.run_scan()

    def run_scan(self) -> None:
        """Scan the source through the layer (resuming a cancelled scan of the same choices)."""
        if self.state.model is None:
            self.status.emit("no model loaded")
            return
        problem = self.run_on.problem() if self.layer else "choose a layer to scan"
        if problem:  # e.g. a Ray address without a port: said here and in the status bar
            self.info.setText(problem)
            self.status.emit(problem)
            return
        self.cancel("lookup")
        self.submit(self._params())
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        ray = self.run_on.runner == "ray"  # a cluster takes seconds to start: say so, not a busy bar
        self.progress_bar.setRange(0, 1 if ray else 0)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting Ray workers…" if ray else "starting…")
        self.info.setText(f"scanning {self.source} through {self.layer}{self.run_on.describe()}…")

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
        self.submit(ScanCompareParams(result=self.result, a=a, b=b, stat=stat), tag="compare")

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

    def _show_compare(self, out: CompareOutput) -> None:
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
        self._images_page = (int(self.first_image.value()), int(self.image_count.value()))
        ids = page_image_ids(self.result, *self._images_page)
        self.images_pane.clear_image("computing maps…")
        self.submit(ScanMapsParams(result=self.result, ids=tuple(ids)), tag="maps")

    def _show_maps(self, out: StrongestMaps) -> None:
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
        """The current page's image and its sidecar, whose "command" (with --raw) reproduces it on the
        command line; File → Export View swaps --raw for the figure options it writes."""
        from engine.dataset.cli import topk_command

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
            cell = int(self.cell_box.value())
            image = render_units(r, None, None, cell)
            meta.update(
                kind="topk",
                cell=cell,
                command=topk_command(r.model, r.source, r.layer, r.k, cell=cell, raw=True),
            )
            return image, meta
        image = self.figures.get(page)
        if image is None:
            raise EngineError(f"nothing shown on the {page} page yet")
        if page == "classes":
            heatmap, stat = str(self.heat_mode.currentData()), str(self.stat_box.currentData())
            meta.update(heatmap=heatmap, stat=stat)
            meta["command"] = topk_command(
                r.model, r.source, r.layer, r.k, "classes", heatmap=heatmap, stat=stat, raw=True
            )
        else:
            first, count = self._images_page
            meta.update(first=first, count=count)
            meta["command"] = topk_command(
                r.model, r.source, r.layer, r.k, "images", first=first, count=count, raw=True
            )
        return image, meta

    def figure_spec(self) -> FigureSpec:
        """The page's figure, as `export topk --page ...` draws it (gui/views/dataset_figure.py)."""
        return dataset_figure.page_figure(self)

    def export_values(self) -> np.ndarray | None:
        return dataset_figure.page_values(self)

    def save_settings(self, s: QSettings) -> None:
        dataset_widgets.save_settings(self, s)

    def restore_settings(self, s: QSettings) -> None:
        dataset_widgets.restore_settings(self, s)
