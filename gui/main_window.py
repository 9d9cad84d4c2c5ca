"""The main window: docks (layers, images, predictions), tabbed views, model loading, export.

It owns the AppState (model, layer, image) and the EngineClient. The engine thread
starts after the window is first shown, so the window is on screen while TensorFlow
is still importing ("loading engine…" in the status bar). Model loads and
predictions are jobs like any other; a failed job shows its message in the message
bar above the tabs and the window carries on. Its parts live beside it: the menus and
dialogs in gui.menus, the image choice and opening of paths in gui.image_opening, the
device/model/job status bar in gui.status_bar.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.contract import ImageParams, LoadModelParams, ModelSummary
from engine.errors import EngineError
from engine.jobs import Failed, Finished
from gui import settings as cfg
from gui.engine_thread import EngineClient
from gui.image_browser import ImageBrowser
from gui.image_opening import ImageOpeningMixin
from gui.layer_tree import LayerTree
from gui.menus import MenusMixin
from gui.predictions import PredictionsPanel
from gui.state import AppState
from gui.status_bar import StatusBar
from gui.views import VIEWS
from gui.views.base import View
from gui.widgets.message_bar import MessageBar


class MainWindow(ImageOpeningMixin, MenusMixin, QMainWindow):
    """Convscope's window. `ask(question) -> bool` may be replaced (tests answer for the user)."""

    model_loaded = Signal(str)  # model name, after a successful load
    first_shown = Signal(float)  # time.perf_counter() when the window was first shown

    def __init__(
        self,
        model_spec: str | None = "builtin:digits",
        images: Iterable[str] = (),
        *,
        start_engine: bool = True,
        restore: bool = True,
        client: EngineClient | None = None,  # a stand-in with its API (tests: FakeEngineClient)
    ) -> None:
        super().__init__()
        self.setWindowTitle("Convscope")
        self.setObjectName("ConvscopeMainWindow")
        self.setAcceptDrops(True)
        self.resize(1280, 820)
        self.state = AppState(self)
        self.client = client if client is not None else EngineClient(self)
        self.ask: Callable[[str], bool] = self._ask_user
        self._start_engine = start_engine
        self._shown_once = False
        self._closed = False
        self._loading_spec: str | None = None
        self._model_job: int | None = None
        self._pending_layer: str | None = None
        self._init_images()
        self.settings = cfg.settings()

        self._build_central()
        self._build_docks()
        self.status_bar = StatusBar(self.client)
        self.setStatusBar(self.status_bar)
        self._build_menus()
        self._connect()
        if restore:
            self._restore_settings()
        self._refresh_recent_menu()

        images = [str(i) for i in images]
        # images named on the command line take precedence over the model's start image
        self._keep_image_once = bool(images)
        if model_spec:
            self.open_model(model_spec)
        if images:
            self.open_images(images)
        else:
            self._select_start_image(model_spec)

    # ----- construction -------------------------------------------------------
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.message_bar = MessageBar()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.views: list[View] = []
        for view_cls in VIEWS:
            view = view_cls(self.state, self.client)
            view.setObjectName(f"view_{view.owner}")
            self.views.append(view)
            # a scroll area per tab: a view with a wide form must not force a wide window
            scroller = QScrollArea()
            scroller.setWidgetResizable(True)
            scroller.setFrameShape(QFrame.Shape.NoFrame)
            scroller.setWidget(view)
            self.tabs.addTab(scroller, view.title)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.layer_tree = LayerTree()
        self.layer_tree.setMinimumWidth(160)
        self.layers_dock = self._dock(
            "Layers", "dock_layers", self.layer_tree, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.image_browser = ImageBrowser()
        self.images_dock = self._dock(
            "Images", "dock_images", self.image_browser, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.predictions = PredictionsPanel()
        self.predictions.setMinimumWidth(150)
        self.predictions_dock = self._dock(
            "Predictions", "dock_predictions", self.predictions, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.resizeDocks([self.layers_dock], [330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.predictions_dock], [260], Qt.Orientation.Horizontal)
        self.resizeDocks([self.layers_dock, self.images_dock], [420, 300], Qt.Orientation.Vertical)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        self.client.ready.connect(self._on_engine_ready)
        self.client.finished.connect(self._on_job_done)
        self.client.failed.connect(self._on_job_done)
        self.layer_tree.layer_selected.connect(self.state.set_layer)
        self.state.layer_changed.connect(lambda: self.layer_tree.select(self.state.layer))
        self.image_browser.image_selected.connect(self.select_image)
        self.image_browser.folder_listed.connect(self._on_folder_listed)
        self.state.image_changed.connect(self.update_predictions)
        self.state.model_changed.connect(self.update_predictions)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        for view in self.views:
            view.status.connect(lambda text: self.statusBar().showMessage(text, 4000))

    # ----- lifecycle ----------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.first_shown.emit(time.perf_counter())
            self._on_tab_changed(self.tabs.currentIndex())
            if self._start_engine:
                # after this first paint: TensorFlow's import must not delay the window
                QTimer.singleShot(30, self.client.start)

    def start_engine(self) -> None:
        """Start the engine thread now (normally it starts once the window is shown)."""
        self.client.start()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self._closed:
            self._closed = True
            self._save_settings()
            self.hide()  # gone from the screen at once, even if a job step must finish first
            self.status_bar.stop()
            self.client.shutdown()
            self._shutdown_images()
        super().closeEvent(event)

    # ----- model --------------------------------------------------------------
    def open_model(self, spec: str, trust: bool = False) -> int:
        """Load a model (path, builtin:NAME, keras:NAME) on the engine thread; returns the job id."""
        spec = str(spec)
        self._loading_spec = spec
        self.state.loading = spec
        self.status_bar.show_loading(spec)
        self._model_job = self.client.submit(LoadModelParams(spec, trust=trust).request("model"))
        return self._model_job

    def _on_model_loaded(self, result: ModelSummary) -> None:
        spec = result.spec
        layer = self._pending_layer
        self._pending_layer = None
        self.layer_tree.set_layers(result.layers)
        self.state.model = result
        paths = {info.path for info in self.state.all_layers()}
        if layer not in paths:
            layer = self.state.default_layer()
        self.state.layer = layer
        self.layer_tree.select(layer)
        self.state.model_changed.emit()
        self.status_bar.show_model(result)
        if result.device:
            self.status_bar.show_device(result.device)
        self.settings.setValue("last/model", spec)
        self._fit_image_to_model(result)
        if not spec.startswith("builtin:"):
            cfg.add_recent(self.settings, "recent/models", spec)
            self._refresh_recent_menu()
        self.model_loaded.emit(self.state.model_name)

    def _on_model_failed(self, event: Failed) -> None:
        self.status_bar.show_model(self.state.model)
        if self.state.model is None:
            for view in self.views:
                view.invalidate()  # "loading …" becomes "no model"
        spec = self._loading_spec
        action = None
        if spec and event.kind == "unsafe_model":
            action = ("Trust and load", lambda s=spec: self.open_model(s, trust=True))
        elif spec and spec.startswith("keras:") and "?" not in spec and "weights=none" in event.message:
            action = ("Use random weights", lambda s=spec: self.open_model(f"{s}?weights=none"))
        self.show_error(event.message, event.detail, action)

    # ----- predictions ----------------------------------------------------------
    def update_predictions(self) -> None:
        self.predictions.show_image(self.state.display_image)
        if self.state.model is None or self.state.image is None:
            self.predictions.clear("no image" if self.state.model else "")
            return
        self._predict_job = self.client.submit(ImageParams(image=self.state.image).request("predictions"))

    # ----- jobs ---------------------------------------------------------------------
    def _on_engine_ready(self, device: str) -> None:
        self.status_bar.show_device(device)
        if device.startswith("engine failed"):
            self.show_error(device)

    def _on_job_done(self, event: Finished | Failed) -> None:
        self.status_bar.job_done()
        if event.job_id == self._model_job:
            self._model_job = None
            self.state.loading = None
            if isinstance(event, Finished) and event.reason == "done":
                self._on_model_loaded(event.result)
            elif isinstance(event, Failed):
                self._on_model_failed(event)
            else:
                self.status_bar.show_model(self.state.model)
            return
        owner = self.client.owner_of(event.job_id)
        if isinstance(event, Finished):
            if event.reason == "done" and owner and self.message_bar.owner == owner:
                self.message_bar.dismiss()  # the error it showed is out of date now
            if event.reason == "done" and event.job_id == self.client.current("predictions"):
                self.predictions.show_probabilities(event.result, self.state.class_names or None)
            return
        if self.client.is_current(event.job_id):
            self.show_error(event.message, event.detail)
            self.message_bar.owner = owner

    def stop_all(self) -> None:
        """Cancel the running job and everything queued (Esc)."""
        self.client.cancel_all()

    def run_current(self) -> None:
        """Run (F5): start whatever the current tab computes (maps, filters, maximization, CAM, scan)."""
        view = self.current_view()
        if view is not None:
            view.run()

    def current_view(self) -> View | None:
        index = self.tabs.currentIndex()
        return self.views[index] if 0 <= index < len(self.views) else None

    def view(self, owner: str) -> View:
        for view in self.views:
            if view.owner == owner:
                return view
        raise KeyError(owner)

    def _on_tab_changed(self, index: int) -> None:
        for i, view in enumerate(self.views):
            view.set_active(i == index and self._shown_once)

    # ----- messages -----------------------------------------------------------------
    def show_error(
        self,
        message: str,
        detail: str = "",
        action: tuple[str, Callable[[], None]] | None = None,
        kind: str = "error",
    ) -> None:
        self.message_bar.show_message(message, kind=kind, detail=detail, action=action)
        if kind == "error":
            self.statusBar().showMessage(message.splitlines()[0][:200], 8000)

    def _ask_user(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Convscope", question)
        return answer == QMessageBox.StandardButton.Yes

    # ----- export ---------------------------------------------------------------------
    def export_view(self, path: str | os.PathLike, overwrite: bool = False) -> Path | None:
        """Write what the current tab shows (image + JSON sidecar); ask before overwriting.

        Returns the written path, or None when nothing was written (declined or failed;
        a failure is shown in the message bar and leaves no partial file).
        """
        from engine import export

        view = self.current_view()
        if view is None:
            return None
        try:
            image, settings = view.export_image()
            try:
                written, _sidecar = export.write_image(path, image, settings, overwrite=overwrite)
            except export.ExportExists as exc:
                if not self.ask(f"{exc}\n\nOverwrite it?"):
                    return None
                written, _sidecar = export.write_image(path, image, settings, overwrite=True)
        except EngineError as exc:
            self.show_error(str(exc))
            return None
        except OSError as exc:
            self.show_error(f"cannot export to {path}: {exc.strerror or exc}")
            return None
        self.settings.setValue("last/export_dir", str(Path(written).parent))
        self.statusBar().showMessage(f"exported {written}", 5000)
        return Path(written)

    # ----- settings ---------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        self.random_weights_action.setChecked(cfg.read(s, "keras/random_weights", False, bool))
        for view in self.views:
            s.beginGroup(f"views/{view.owner}")
            view.restore_settings(s)
            s.endGroup()
        tab = cfg.read(s, "window/tab", 0, int)
        if 0 <= tab < self.tabs.count():
            self.tabs.setCurrentIndex(tab)

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/tab", self.tabs.currentIndex())
        s.setValue("keras/random_weights", self.random_weights_action.isChecked())
        for view in self.views:
            s.beginGroup(f"views/{view.owner}")
            view.save_settings(s)
            s.endGroup()
        s.sync()


def active_windows() -> list[MainWindow]:
    app = QApplication.instance()
    return [w for w in (app.topLevelWidgets() if app else []) if isinstance(w, MainWindow)]
