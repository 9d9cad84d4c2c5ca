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
from html import escape
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.attribution.commands import sanity_command
from engine.attribution.contract import CamParams, SaliencyParams, SanityOutput, SanityParams
from engine.errors import EngineError
from engine.plot.attribution import source_name
from engine.plot.sanity import method_label
from engine.plot.spec import FigureSpec
from gui.views.job_dialog import FAILED_COLOR, PASSED_COLOR, FigureJobDialog
from gui.widgets.fields import info_line
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import row

__all__ = ["OWNER", "ORDERS", "SanityDialog", "open_sanity_dialog", "sanity_command"]

OWNER = "sanity"  # the dialog's jobs: apart from the tab's own ("attribution")
ORDERS = (
    ("cascade: top layers first, cumulatively", "cascade"),
    ("independent: one layer at a time", "independent"),
)


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
            method_options={"mapping": asked.mapping}
            | ({"max_channels": asked.max_channels} if asked.max_channels is not None else {}),
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


class SanityDialog(FigureJobDialog):
    """The model-randomization sanity check of the Attribution tab's map (see the module docstring)."""

    OWNER = OWNER
    SAVE_TITLE = "Export sanity check"
    draw = staticmethod(_draw)
    output: SanityOutput | None  # the shown check's answer (self.asked: what it was asked with)

    def __init__(self, view: Any, parent: QWidget | None = None) -> None:
        super().__init__(view, parent, "Sanity check: does the map depend on the weights?")
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
        self._make_progress("%v of %m maps done", "Stop the check (between two maps)")
        self.note = info_line("")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Write this figure (.png .tif .svg .pdf) with a sidecar holding every number and the "
            "`python main.py export sanity` command that writes it again"
        )
        self.close_button = QPushButton("Close")
        self._progress_row(self.progress, self.cancel_button)
        options = row(QLabel("Order"), self.order_box)
        options.addStretch(1)
        options.addWidget(self.again_button)
        buttons = row((self.note, 1), self.export_button, self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.subject)
        layout.addLayout(options)
        layout.addWidget(self._message_stack(self.pane), 1)
        layout.addWidget(self.verdict)
        layout.addWidget(self.progress_row)
        layout.addLayout(buttons)
        self.resize(880, 780)

        self._make_workers()
        self.order_box.currentIndexChanged.connect(self._order_changed)
        self.again_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.export)
        self.close_button.clicked.connect(self.close)
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
        self._begin(
            params,
            "recomputing the map after each re-initialization…",
            f"checking {method_label(params.method)} ({params.order})…",
        )

    def _on_cancelled(self) -> None:
        self._say("cancelled")
        self._blank("cancelled: Check again to run it")

    def _show_result(self, output: SanityOutput) -> None:
        self._show_verdict(output)

    def _rendered_text(self, output: SanityOutput) -> str:
        return f"{len(output.result.steps)} maps: the trained model's, then one per re-initialized layer"

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

    def _forget(self) -> None:
        self.verdict.setText("")
        self._verdict_plain = ""

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

    def _export_name(self) -> str:
        return f"sanity_{self._shown.get('method', 'map')}.png"


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
