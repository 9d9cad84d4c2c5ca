"""The Attribution tab's "Sanity check" dialog: the model-randomization check of the map it shows.

Adebayo et al. (NeurIPS 2018): a map that explains a model must change when the model's learned
weights are re-initialized. The dialog (non-modal, one per tab, reused) submits the "sanity" job
(engine.attribution.contract.SanityParams -> SanityOutput) for the tab's current image, method,
layer, target and mapping (read from the tab's own request, AttributionView.job_params()) under
its own owner name, so the tab's maps keep running; a newer check (another order, "Check again")
supersedes the older one. The job sends one Progress per recomputed map, shown with a Cancel
button. The answer is drawn as the paper's figure, engine.plot.sanity.sanity_figure (the one
`python main.py export sanity` writes), rendered off the main thread by a RenderWorker and shown
in an ImagePane, with the verdict in words under it. Export… writes that figure with
engine.plot.write_figure (asking before replacing a file) and a sidecar holding every number and
the command that writes it again (sanity_command). This module never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.attribution.commands import sanity_command
from engine.attribution.contract import CamParams, SaliencyParams, SanityOutput, SanityParams
from engine.errors import EngineError
from engine.jobs import Event, Failed, Finished, Progress
from engine.plot.attribution import source_name
from engine.plot.sanity import method_label
from engine.plot.spec import FigureSpec
from gui.widgets.fields import info_line
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import row
from gui.widgets.render_worker import RenderWorker

__all__ = ["OWNER", "ORDERS", "SanityDialog", "open_sanity_dialog", "sanity_command"]

OWNER = "sanity"  # the dialog's jobs: apart from the tab's own ("attribution")
ORDERS = (
    ("cascade: top layers first, cumulatively", "cascade"),
    ("independent: one layer at a time", "independent"),
)
FIGURE_FILTER = "Figures (*.png *.tif *.tiff *.svg *.pdf)"
FIGURE_SUFFIXES = (".png", ".tif", ".tiff", ".svg", ".pdf")
PASSED_COLOR, FAILED_COLOR = "#3c9a4a", "#d9534f"


def sanity_params(asked: CamParams | SaliencyParams, order: str, seed: int = 0) -> SanityParams:
    """The check of the map the tab asks for: its image, method, target, CAM layer and mapping."""
    if isinstance(asked, CamParams):
        return SanityParams(
            image=asked.image,
            method=asked.method,
            target=asked.target,
            order=order,
            seed=seed,
            layer=asked.layer,
            method_options={"mapping": asked.mapping},
        )
    return SanityParams(image=asked.image, method=asked.method, target=asked.target, order=order, seed=seed)


def _minus(text: str) -> str:
    """Negative numbers with a true minus sign, as the figure writes them."""
    return re.sub(r"(?<![\w.])-(?=\d)", "−", text)


def _draw(output: SanityOutput, image_name: str) -> tuple[FigureSpec, np.ndarray, SanityOutput]:
    """Off the main thread: the figure `export sanity` writes, and its pixels (paper style)."""
    from engine.plot import figure_rgb
    from engine.plot.sanity import sanity_figure

    spec = sanity_figure(output.photo, output.result, output.model_name, image_name)
    return spec, figure_rgb(spec), output


def _write(path: Path, spec: FigureSpec, settings: dict[str, Any], overwrite: bool) -> list[Path]:
    from engine.plot import write_figure

    return list(write_figure(path, spec, settings, overwrite=overwrite))


class SanityDialog(QDialog):
    """The model-randomization sanity check of the Attribution tab's map (see the module docstring)."""

    def __init__(self, view: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else view)
        self.setWindowTitle("Sanity check: does the map depend on the weights?")
        self.setModal(False)
        self.view, self.client, self.state = view, view.client, view.state
        self.ask: Callable[[str], bool] = self._ask_user  # tests replace it
        self.asked: dict[str, Any] = {}  # what the running / shown check was asked with
        self.job_id: int | None = None
        self.running = False
        self.output: SanityOutput | None = None  # the shown check's answer
        self.spec: FigureSpec | None = None  # ... its figure
        self.figure: np.ndarray | None = None  # ... and that figure's pixels
        self.written: list[Path] = []  # the last export's files
        self._shown: dict[str, Any] = {}  # self.asked of the shown check
        self._verdict_plain = ""

        self.subject = info_line("")
        self.order_box = QComboBox()
        for label, key in ORDERS:
            self.order_box.addItem(label, key)
        self.order_box.setToolTip(
            "cascade: re-initialize layers from the output down, each step keeping the ones above random; "
            "independent: re-initialize one layer at a time, the others trained"
        )
        self.again_button = QPushButton("Check again")
        self.again_button.setToolTip("Run the check on the tab's current image, method, layer and target")
        self.pane = ImagePane()
        self.pane.setMinimumSize(360, 300)
        self.pane.setBackground("w")  # the figure's own paper white around it
        self.pane.setToolTip(
            "One map per step, from the trained model to the fully random one, and the curves"
        )
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m maps done")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the check (between two maps)")
        self.note = info_line("")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Write this figure (.png .tif .svg .pdf) with a sidecar holding every number and the "
            "`python main.py export sanity` command that writes it again"
        )
        self.close_button = QPushButton("Close")
        self.progress_row = QWidget()
        progress_layout = row(self.progress, self.cancel_button)
        progress_layout.setContentsMargins(0, 0, 0, 0)
        self.progress_row.setLayout(progress_layout)
        options = row(QLabel("Order"), self.order_box)
        options.addStretch(1)
        options.addWidget(self.again_button)
        buttons = row((self.note, 1), self.export_button, self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.subject)
        layout.addLayout(options)
        self.message = QLabel("")  # shown instead of the pane until a figure is drawn
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #707070; background: white")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.pane)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.verdict)
        layout.addWidget(self.progress_row)
        layout.addLayout(buttons)
        self.resize(880, 780)

        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_rendered)
        self.renderer.failed.connect(self._on_render_failed)
        self.writer = RenderWorker(self)  # exports: the figure is composed again off the main thread
        self.writer.done.connect(self._on_written)
        self.writer.failed.connect(lambda message: self._say(message.splitlines()[0], error=True))
        self.order_box.currentIndexChanged.connect(self._order_changed)
        self.again_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.export)
        self.close_button.clicked.connect(self.close)
        for signal in (self.client.finished, self.client.failed, self.client.progress):
            signal.connect(self._on_event)
        self._set_running(False)
        self._blank("no check yet")

    # ----- choices --------------------------------------------------------------------
    @property
    def order(self) -> str:
        """cascade | independent."""
        return str(self.order_box.currentData())

    def set_order(self, order: str) -> None:
        """Choose the order as the user does (which runs the check again)."""
        index = self.order_box.findData(order)
        if index < 0:
            raise EngineError(f"unknown order {order!r}; choose from: {', '.join(k for _, k in ORDERS)}")
        self.order_box.setCurrentIndex(index)

    def _order_changed(self) -> None:
        if self.isVisible() or self.running or self.output is not None:
            self.start()

    # ----- the job --------------------------------------------------------------------
    def start(self) -> None:
        """Check the map the tab asks for now (its image, method, layer, target, mapping), in this order."""
        state = self.state
        if state.model is None or state.image is None:
            self._clear("open a model and an image first" if state.model is None else "no image: open one")
            return
        try:
            asked = self.view.job_params()
        except EngineError as exc:
            self._clear(str(exc))
            return
        params = sanity_params(asked, self.order)
        cam = isinstance(asked, CamParams)
        self.asked = {
            "model": state.model.spec,
            "model_name": state.model.name,
            "scaling": state.model.scaling,
            "image": state.image_spec,
            "method": params.method,
            "target": params.target,
            "layer": params.layer if cam else None,
            "mapping": asked.mapping if cam else None,
            "order": params.order,
            "seed": params.seed,
        }
        self.subject.setText(self._subject_text())
        self.job_id = self.client.submit(params.request(OWNER))
        self.output, self.spec, self.figure = None, None, None  # a new check: the old one goes
        self.renderer.cancel()
        self.verdict.setText("")
        self._verdict_plain = ""
        self.progress.setRange(0, 0)  # busy until the first Progress says how many maps
        self._set_running(True)
        self._blank("recomputing the map after each re-initialization…")
        self._say(f"checking {method_label(params.method)} ({params.order})…")

    def cancel(self) -> None:
        """Stop the running check."""
        if self.job_id is not None and self.running:
            self.client.cancel(self.job_id)
            self._say("cancelling…")

    def _on_event(self, event: Event) -> None:
        if self.job_id is None or event.job_id != self.job_id:
            return
        if isinstance(event, Progress):
            if event.total:
                self.progress.setRange(0, int(event.total))
                self.progress.setValue(int(event.step))
            return
        self._set_running(False)
        if isinstance(event, Failed):
            self._say(event.message, error=True)
            self._blank(event.message.splitlines()[0] if event.message else "failed")
            return
        if isinstance(event, Finished) and event.reason == "done":
            self.output = event.result
            self._shown = dict(self.asked)
            self._show_verdict(self.output)
            self._say("drawing the figure…")
            self.renderer.render(_draw, self.output, source_name(self._shown.get("image")))
        elif isinstance(event, Finished):
            self._say("cancelled")
            self._blank("cancelled: Check again to run it")

    def _on_rendered(self, out: tuple[FigureSpec, np.ndarray, SanityOutput]) -> None:
        spec, pixels, source = out
        if source is not self.output:
            return  # a newer check is being drawn
        self.spec, self.figure = spec, pixels
        self.pane.set_image(pixels)
        self.stack.setCurrentWidget(self.pane)
        self.export_button.setEnabled(True)
        self._say(f"{len(source.result.steps)} maps: the trained model's, then one per re-initialized layer")

    def _on_render_failed(self, message: str) -> None:
        first = message.splitlines()[0] if message else "cannot draw the figure"
        self._blank(first)
        self._say(first, error=True)

    # ----- text -----------------------------------------------------------------------
    def _subject_text(self) -> str:
        a = self.asked
        target = a["target"]
        if target is None:
            what = "top-1 class"
        elif isinstance(target, int):
            what = f"{self.state.class_name(target)} ({target})"
        else:
            what = str(target)
        where = ""
        if a["mapping"] is not None:  # a CAM method
            where = f" at {a['layer'] or (self.state.cam_layer() or 'the last spatial layer') + ' (auto)'}"
            where += f", {a['mapping']} mapping"
        image = source_name(a["image"]) or "the current image"
        return f"{method_label(a['method'])}{where} · {what} · {image} · {a['model_name']}"

    def _show_verdict(self, out: SanityOutput) -> None:
        res = out.result
        color, word = (PASSED_COLOR, "Passed") if res.passed else (FAILED_COLOR, "Failed")
        rest = list(res.spearman[1:])
        if res.order == "cascade" or not rest:
            i, where = len(res.steps) - 1, "the last step"
        else:  # independent: the step the verdict is read from, the lowest rank correlation
            i = 1 + int(np.argmin(rest))
            where = res.steps[i]
        numbers = f"SSIM {res.ssim[i]:.2f}, HOG {res.hog[i]:.2f} at {where}; {res.order}, seed {res.seed}"
        verdict = _minus(res.verdict)
        self._verdict_plain = f"{word}: {verdict}. ({_minus(numbers)})"
        self.verdict.setText(
            f"<b style='color:{color}'>{word}:</b> {escape(verdict)}. "
            f"<span style='color:gray'>({escape(_minus(numbers))})</span>"
        )

    def verdict_text(self) -> str:
        """The verdict as plain text ("" before the first check)."""
        return self._verdict_plain if self.output is not None else ""

    def _blank(self, message: str) -> None:
        """No figure: `message` in the middle of where it goes."""
        self.pane.clear_image("")
        self.message.setText(message)
        self.stack.setCurrentWidget(self.message)

    def _say(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet(f"color: {FAILED_COLOR}" if error else "")

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.progress_row.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running and self.spec is not None)

    def _clear(self, message: str) -> None:
        if self.running and self.job_id is not None:
            self.client.cancel(self.job_id)
        self.job_id, self.output, self.spec, self.figure = None, None, None, None
        self.renderer.cancel()
        self._set_running(False)
        self._blank(message)
        self.verdict.setText("")
        self._verdict_plain = ""
        self._say(message)

    # ----- export ---------------------------------------------------------------------
    def export_settings(self, path: str | os.PathLike) -> dict[str, Any]:
        """The sidecar of the shown check written at `path`: what `export sanity` records, plus the
        command that writes this file again (absent when the image has no spec to name)."""
        if self.output is None:
            raise EngineError("no sanity check to export yet")
        a = self._shown
        cam = a.get("mapping") is not None
        settings: dict[str, Any] = {
            "view": "sanity",
            "kind": "sanity",
            "model": a.get("model"),
            "model_name": a.get("model_name"),
            "image": a.get("image"),
            "scaling": a.get("scaling"),
            **({"mapping": a["mapping"]} if cam else {}),
            **self.output.settings(),
        }
        try:
            settings["command"] = sanity_command(a, out=str(path))
        except EngineError:
            pass  # e.g. an image without a path: nothing to name on a command line
        return settings

    def export(self) -> None:
        """Ask for a file, then write the figure and its sidecar."""
        if self.spec is None:
            return
        default = os.path.join(str(Path.home()), f"sanity_{self._shown.get('method', 'map')}.png")
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export sanity check",
            default,
            FIGURE_FILTER,
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
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
        sidecar = path.with_name(path.name + ".json")
        overwrite = False
        if path.exists() or sidecar.exists():
            if not self.ask(f"{path if path.exists() else sidecar} exists.\n\nOverwrite it?"):
                return False
            overwrite = True
        self.written = []
        self._say(f"writing {path.name}…")
        self.writer.render(_write, path, self.spec, self.export_settings(path), overwrite)
        return True

    def _on_written(self, written: list[Path]) -> None:
        self.written = list(written)
        self._say("wrote " + ", ".join(str(p) for p in written))

    def _ask_user(self, question: str) -> bool:
        window = self.view.window()
        ask = getattr(window, "ask", None)
        if callable(ask):
            return bool(ask(question))
        answer = QMessageBox.question(self, "Export sanity check", question)
        return answer == QMessageBox.StandardButton.Yes

    # ----- closing --------------------------------------------------------------------
    def done(self, result: int) -> None:  # noqa: D102 - QDialog's
        self.cancel()
        super().done(result)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.cancel()
        super().closeEvent(event)


def open_sanity_dialog(view: Any) -> SanityDialog:
    """Show the tab's sanity-check dialog (made once, kept as view.sanity_dialog) and run the check
    on what the tab shows now."""
    dialog = getattr(view, "sanity_dialog", None)
    if dialog is None:
        dialog = SanityDialog(view)
        view.sanity_dialog = dialog
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    dialog.start()
    return dialog
