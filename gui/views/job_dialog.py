"""The plumbing the Attribution and Dataset tabs' job dialogs share (compare, sanity, evaluate).

Each dialog is non-modal, made once per tab and reused. It submits its job under its own owner
name (so the tab's own jobs keep running), tracks that job's id, shows its Progress with a Cancel
button, draws its answer off the main thread (gui.widgets.render_worker.RenderWorker) into an
ImagePane, and writes files asking before replacing one. JobDialog holds the job and the save
prompts; FigureJobDialog adds the figure drawn from the job's output and its Export… (the figure
through engine.plot.write_figure with a sidecar from the subclass's export_settings). A subclass
answers the hooks (_on_done, _rendered_text, _forget, ...). This module never imports TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QWidget,
)

from engine.jobs import Event, Failed, Finished, Progress
from engine.plot.attribution import source_name
from engine.plot.spec import FigureSpec
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import row
from gui.widgets.render_worker import RenderWorker

__all__ = ["FAILED_COLOR", "FIGURE_FILTER", "FIGURE_SUFFIXES", "PASSED_COLOR", "FigureJobDialog", "JobDialog"]

FIGURE_FILTER = "Figures (*.png *.tif *.tiff *.svg *.pdf)"
FIGURE_SUFFIXES = (".png", ".tif", ".tiff", ".svg", ".pdf")
PASSED_COLOR, FAILED_COLOR = "#3c9a4a", "#d9534f"


def _write(path: Path, spec: FigureSpec, settings: dict[str, Any], overwrite: bool) -> list[Path]:
    """Off the main thread: the figure and its sidecar."""
    from engine.plot import write_figure

    return list(write_figure(path, spec, settings, overwrite=overwrite))


class JobDialog(QDialog):
    """A non-modal dialog running one job at a time under OWNER, with progress, Cancel and saving."""

    OWNER: ClassVar[str] = ""  # the dialog's jobs: apart from the tab's own
    SAVE_TITLE: ClassVar[str] = ""  # the save dialog's and the overwrite question's title

    def __init__(self, view: Any, parent: QWidget | None, title: str) -> None:
        super().__init__(parent if parent is not None else view)
        self.setWindowTitle(title)
        self.setModal(False)
        self.view, self.client, self.state = view, view.client, view.state
        self.ask: Callable[[str], bool] = self._ask_user  # tests replace it
        self.job_id: int | None = None
        self.running = False
        self.written: list[Path] = []  # the last export's files
        self._shown: dict[str, Any] = {}  # what the shown answer was asked with
        for signal in (self.client.finished, self.client.failed, self.client.progress):
            signal.connect(self._on_event)

    # ----- widgets --------------------------------------------------------------------
    def _make_progress(self, fmt: str, cancel_tip: str) -> None:
        """self.progress (a bar showing `fmt`) and self.cancel_button."""
        self.progress = QProgressBar()
        self.progress.setFormat(fmt)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(cancel_tip)

    def _progress_row(self, *items: Any) -> QWidget:
        """self.progress_row: `items` (as gui.widgets.layouts.row takes them) in one borderless row."""
        self.progress_row = QWidget()
        layout = row(*items)
        layout.setContentsMargins(0, 0, 0, 0)
        self.progress_row.setLayout(layout)
        return self.progress_row

    def _message_stack(self, pane: ImagePane, wrap: bool = True) -> QStackedWidget:
        """self.stack: self.message (shown instead of `pane` until a picture is drawn), then `pane`."""
        self.message = QLabel("")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(wrap)
        self.message.setStyleSheet("color: #707070; background: white")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(pane)
        return self.stack

    # ----- the job --------------------------------------------------------------------
    def _submit(self, params: Any) -> None:
        self.job_id = self.client.submit(params.request(self.OWNER))

    def cancel(self) -> None:
        """Stop the running job."""
        if self.job_id is not None and self.running:
            self.client.cancel(self.job_id)
            self._say("cancelling…")

    def _on_event(self, event: Event) -> None:
        if self.job_id is None or event.job_id != self.job_id:
            return
        if isinstance(event, Progress):
            self._on_progress(event)
            return
        self._set_running(False)
        if isinstance(event, Failed):
            self._on_failed(event.message)
        elif isinstance(event, Finished) and event.reason == "done":
            self._on_done(event.result)
        elif isinstance(event, Finished):
            self._on_cancelled()

    def _on_progress(self, event: Progress) -> None:
        if event.total:
            self.progress.setRange(0, int(event.total))
            self.progress.setValue(int(event.step))

    def _on_failed(self, message: str) -> None:
        self._say(message, error=True)
        self._blank(message.splitlines()[0] if message else "failed")

    def _on_done(self, result: Any) -> None:
        raise NotImplementedError

    def _on_cancelled(self) -> None:
        raise NotImplementedError

    def _set_running(self, running: bool) -> None:
        raise NotImplementedError

    # ----- text -----------------------------------------------------------------------
    def _blank(self, message: str) -> None:
        """No picture: `message` in the middle of where it goes."""
        self.pane.clear_image("")
        self.message.setText(message)
        self.stack.setCurrentWidget(self.message)

    def _say(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet(f"color: {FAILED_COLOR}" if error else "")

    # ----- saving ---------------------------------------------------------------------
    def _ask_save_path(self, default_name: str, file_filter: str) -> str:
        """The file the user chooses ("" for none); replacing one is asked later (_may_replace)."""
        default = os.path.join(str(Path.home()), default_name)
        path, _ = QFileDialog.getSaveFileName(
            self, self.SAVE_TITLE, default, file_filter, options=QFileDialog.Option.DontConfirmOverwrite
        )
        return path

    def _may_replace(self, files: list[Path]) -> bool | None:
        """Whether to write over `files` (False: none exists), None when the user says no."""
        existing = [f for f in files if f.exists()]
        if not existing:
            return False
        if not self.ask(f"{existing[0]} exists.\n\nOverwrite it?"):
            return None
        return True

    def _ask_user(self, question: str) -> bool:
        ask = getattr(self.view.window(), "ask", None)
        if callable(ask):
            return bool(ask(question))
        return QMessageBox.question(self, self.SAVE_TITLE, question) == QMessageBox.StandardButton.Yes

    # ----- closing --------------------------------------------------------------------
    def done(self, result: int) -> None:  # noqa: D102 - QDialog's
        self.cancel()
        super().done(result)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.cancel()
        super().closeEvent(event)


class FigureJobDialog(JobDialog):
    """A JobDialog whose answer (self.output) is drawn as a figure (self.spec, its pixels self.figure)
    by `draw(output, image_name) -> (spec, pixels, output)` and exported with a sidecar."""

    draw: ClassVar[Callable[..., tuple[FigureSpec, np.ndarray, Any]]]

    def __init__(self, view: Any, parent: QWidget | None, title: str) -> None:
        super().__init__(view, parent, title)
        self.asked: dict[str, Any] = {}  # what the running / shown job was asked with
        self.output: Any = None  # the shown job's answer
        self.spec: FigureSpec | None = None  # ... its figure
        self.figure: np.ndarray | None = None  # ... and that figure's pixels

    def _make_workers(self) -> None:
        """self.renderer draws the figure, self.writer writes it (composed again), off the main thread."""
        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_rendered)
        self.renderer.failed.connect(self._on_render_failed)
        self.writer = RenderWorker(self)
        self.writer.done.connect(self._on_written)
        self.writer.failed.connect(lambda message: self._say(message.splitlines()[0], error=True))

    # ----- hooks ----------------------------------------------------------------------
    def _forget(self) -> None:
        """Drop what the subclass shows beside the figure (a new job, or none)."""

    def _show_result(self, output: Any) -> None:
        """Show the answer beside the figure, before it is drawn."""

    def _export_name(self) -> str:
        """The export's default file name."""
        return "figure.png"

    def _rendered_text(self, output: Any) -> str:
        return "done"

    def export_settings(self, path: str | os.PathLike) -> dict[str, Any]:
        raise NotImplementedError

    # ----- the job --------------------------------------------------------------------
    def _begin(self, params: Any, waiting: str, saying: str) -> None:
        """Submit `params`' job and drop the shown answer; `waiting` where the figure goes."""
        self._submit(params)
        self.output, self.spec, self.figure = None, None, None  # a new job: the old answer goes
        self.renderer.cancel()
        self._forget()
        self.progress.setRange(0, 0)  # busy until the first Progress says how many steps
        self._set_running(True)
        self._blank(waiting)
        self._say(saying)

    def _on_done(self, result: Any) -> None:
        self.output = result
        self._shown = dict(self.asked)
        self._show_result(result)
        self._say("drawing the figure…")
        self.renderer.render(type(self).draw, result, source_name(self._shown.get("image")))

    def _on_rendered(self, out: tuple[FigureSpec, np.ndarray, Any]) -> None:
        spec, pixels, source = out
        if source is not self.output:
            return  # a newer answer is being drawn
        self.spec, self.figure = spec, pixels
        self.pane.set_image(pixels)
        self.stack.setCurrentWidget(self.pane)
        self.export_button.setEnabled(True)
        self._say(self._rendered_text(source))

    def _on_render_failed(self, message: str) -> None:
        first = message.splitlines()[0] if message else "cannot draw the figure"
        self._blank(first)
        self._say(first, error=True)

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.progress_row.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running and self.spec is not None)

    def _clear(self, message: str) -> None:
        """Stop the running job and show no answer, `message` instead."""
        if self.running and self.job_id is not None:
            self.client.cancel(self.job_id)
        self.job_id, self.output, self.spec, self.figure = None, None, None, None
        self.renderer.cancel()
        self._set_running(False)
        self._forget()
        self._blank(message)
        self._say(message)

    # ----- export ---------------------------------------------------------------------
    def export(self) -> None:
        """Ask for a file, then write the figure and its sidecar."""
        if self.spec is None:
            return
        path = self._ask_save_path(self._export_name(), FIGURE_FILTER)
        if path:
            self.export_to(path)

    def export_to(self, path: str | os.PathLike) -> bool:
        """Write the shown figure at `path` (.png unless a figure suffix is given) off the main thread,
        asking before replacing a file. True when the write started (self.written when done)."""
        if self.spec is None:
            self._say("no figure to export yet", error=True)
            return False
        path = Path(path)
        if path.suffix.lower() not in FIGURE_SUFFIXES:
            path = path.with_name(path.name + ".png")
        overwrite = self._may_replace([path, path.with_name(path.name + ".json")])
        if overwrite is None:
            return False
        self.written = []
        self._say(f"writing {path.name}…")
        self.writer.render(_write, path, self.spec, self.export_settings(path), overwrite)
        return True

    def _on_written(self, written: list[Path]) -> None:
        self.written = list(written)
        self._say("wrote " + ", ".join(str(p) for p in written))
