"""The Attribution tab's "Compare methods" dialog: every attribution method on the tab's image.

Issue 13 point 3. The dialog (non-modal, one per tab, reused) submits the "compare_methods" job
(engine.attribution.contract.CompareMethodsParams -> CompareMethodsOutput) under its own owner
name, so the tab's map keeps running, for the tab's current image, target, CAM layer, mapping
and deletion baseline, and the user's boxes (gui/views/attribution_boxes.py: one box goes as the
compare `box`, several as their union mask). The methods are checkboxes (all eight by default);
"Sanity check each" (on by default) adds the model-randomization check per method, the slow
part. Each pass sends a Progress named by engine.attribution.compare.describe_step, shown with
a Cancel button. The answer is drawn as engine.plot.compare.compare_figure (the figure
`python main.py export compare` writes), rendered off the main thread and shown in an
ImagePane, with a sortable table of the scores under it. Export… writes that figure with
engine.plot.write_figure (asking before replacing a file) and a sidecar holding every number
and the command that writes it again (compare_command). This module never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
from html import escape
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.attribution.commands import compare_command
from engine.attribution.compare import ALL_METHODS, LABELS, CompareResult, check_methods, describe_step
from engine.attribution.contract import CompareMethodsOutput, CompareMethodsParams
from engine.errors import EngineError
from engine.jobs import Progress
from engine.plot.attribution import source_name
from engine.plot.spec import FigureSpec
from gui.views.attribution_boxes import Box, union_mask
from gui.views.job_dialog import FAILED_COLOR, PASSED_COLOR, FigureJobDialog
from gui.widgets.fields import info_line
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import row

__all__ = ["COLUMNS", "OWNER", "CompareDialog", "box_arg", "compare_command", "open_compare_dialog"]

OWNER = "compare"  # the dialog's jobs: apart from the tab's own ("attribution")
COLUMNS = ("Method", "Deletion ↓", "Insertion ↑", "Pointing", "Energy", "Sanity", "ρ")


def box_arg(boxes: list[Box], shape: tuple[int, int]) -> Any:
    """The compare `box` for the user's boxes ([x0, y0, x1, y1] in photo pixels): None for none,
    (top, left, bottom, right) for one (what `export compare --box` writes), their union as a
    bool mask of `shape` for several."""
    if not boxes:
        return None
    if len(boxes) == 1:
        x0, y0, x1, y1 = (int(v) for v in boxes[0])
        return (y0, x0, y1, x1)
    return union_mask(boxes, shape)


def _draw(
    output: CompareMethodsOutput, image_name: str
) -> tuple[FigureSpec, np.ndarray, CompareMethodsOutput]:
    """Off the main thread: the figure `export compare` writes, and its pixels (paper style)."""
    from engine.plot import figure_rgb
    from engine.plot.compare import compare_figure

    spec = compare_figure(output.photo, output.result, output.model_name, image_name)
    return spec, figure_rgb(spec), output


class _Cell(QTableWidgetItem):
    """A read-only table cell that sorts by a key (numbers as numbers; no value last)."""

    def __init__(self, text: str, key: Any = None) -> None:
        super().__init__(text)
        self.key = key
        self.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        if not isinstance(key, str):
            self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.key, getattr(other, "key", None)
        if mine is None or theirs is None:
            return mine is not None and theirs is None
        return mine < theirs


def _cells(row_: Any) -> list[_Cell]:
    """The table row of one CompareRow."""

    def num(value: float | None, digits: int = 3) -> _Cell:
        if value is None:
            return _Cell("—")
        return _Cell(f"{float(value):.{digits}f}".replace("-", "−"), float(value))

    pointing = (
        _Cell("—") if row_.pointing is None else _Cell("hit" if row_.pointing else "miss", int(row_.pointing))
    )
    if row_.sanity_passed is None:
        sanity = _Cell("not checked" if row_.sanity_verdict else "—", "~" if row_.sanity_verdict else None)
    else:
        sanity = _Cell("passes" if row_.sanity_passed else "fails", "pass" if row_.sanity_passed else "fail")
        sanity.setForeground(Qt.GlobalColor.darkGreen if row_.sanity_passed else Qt.GlobalColor.red)
    if row_.sanity_verdict:
        sanity.setToolTip(row_.sanity_verdict)
    energy = None if row_.energy is None else 100 * float(row_.energy)
    cells = [
        _Cell(row_.label, row_.label.lower()),
        num(row_.deletion.auc),
        num(row_.insertion.auc),
        pointing,
        _Cell("—") if energy is None else _Cell(f"{energy:.1f}%", energy),
        sanity,
        num(row_.sanity_rho, 2),
    ]
    cells[0].setData(Qt.ItemDataRole.UserRole, row_.method)
    return cells


class CompareDialog(FigureJobDialog):
    """Attribution methods compared on the Attribution tab's image (see the module docstring)."""

    OWNER = OWNER
    SAVE_TITLE = "Export method comparison"
    draw = staticmethod(_draw)
    output: CompareMethodsOutput | None  # the shown comparison's answer (self.asked: what it was asked with)

    def __init__(self, view: Any, parent: QWidget | None = None) -> None:
        super().__init__(view, parent, "Compare attribution methods")
        self.params: CompareMethodsParams | None = None

        self.subject = info_line("")
        self.method_boxes: dict[str, QCheckBox] = {}
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        for i, name in enumerate(ALL_METHODS):
            box = QCheckBox(LABELS.get(name, name))
            box.setChecked(True)
            self.method_boxes[name] = box
            grid.addWidget(box, i // 4, i % 4)
        self.sanity_box = QCheckBox("Sanity check each")
        self.sanity_box.setChecked(True)
        self.sanity_box.setToolTip(
            "Re-initialize the model's layers from the top down and recompute each method's map "
            "(Adebayo et al. 2018): the slow part, one map per layer with weights"
        )
        self.run_button = QPushButton("Compare")
        self.run_button.setToolTip("Compare the checked methods on the tab's image, target, layer and boxes")
        self.pane = ImagePane()
        self.pane.setMinimumSize(360, 260)
        self.pane.setBackground("w")  # the figure's own paper white around it
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.table.setToolTip(
            "Click a column to sort. Deletion AUC: lower is better; insertion AUC: higher is better; "
            "pointing and energy against your boxes; sanity: the randomization check's verdict and "
            "its rank correlation ρ with every layer random (passes below 0.5)"
        )
        self.detail = QLabel("Select a method to read its sanity-check verdict.")  # under the table
        self.detail.setWordWrap(True)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._make_progress("%v of %m", "Stop the comparison (between two passes)")
        self.step_label = QLabel("")
        self.note = info_line("")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Write this figure (.png .tif .svg .pdf) with a sidecar holding every score and the "
            "`python main.py export compare` command that writes it again"
        )
        self.close_button = QPushButton("Close")

        self._progress_row((self.step_label, 1), (self.progress, 2), self.cancel_button)
        options = row(self.sanity_box)
        options.addStretch(1)
        options.addWidget(self.run_button)
        self.split = QSplitter(Qt.Orientation.Horizontal)  # the figure is tall: the table beside it
        self.split.addWidget(self._message_stack(self.pane))
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.table, 3)
        side_layout.addWidget(self.detail, 1)
        self.split.addWidget(side)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 0)
        self.split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.subject)
        layout.addLayout(grid)
        layout.addLayout(options)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.progress_row)
        layout.addLayout(row((self.note, 1), self.export_button, self.close_button))
        self.resize(1180, 860)
        self.split.setSizes([560, 620])

        self._make_workers()
        for box in self.method_boxes.values():
            box.toggled.connect(self._update_run)
        self.run_button.clicked.connect(self.start)
        self.table.itemSelectionChanged.connect(self._show_detail)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.export)
        self.close_button.clicked.connect(self.close)
        self._set_running(False)
        self._blank("no comparison yet")

    # ----- choices --------------------------------------------------------------------
    @property
    def methods(self) -> tuple[str, ...]:
        """The checked methods, in the figure's order."""
        return tuple(name for name, box in self.method_boxes.items() if box.isChecked())

    def set_methods(self, methods: list[str] | tuple[str, ...]) -> None:
        """Check exactly `methods` (registered names, e.g. "gradcam", "gradient")."""
        unknown = [m for m in methods if m not in self.method_boxes]
        if unknown:
            raise EngineError(f"unknown method {unknown[0]!r}; choose from: {', '.join(self.method_boxes)}")
        for name, box in self.method_boxes.items():
            box.setChecked(name in methods)

    def _update_run(self) -> None:
        self.run_button.setEnabled(bool(self.methods))

    # ----- the job --------------------------------------------------------------------
    def start(self) -> None:
        """Compare the checked methods on the tab's image, target, layer, mapping, baseline and boxes."""
        state, view = self.state, self.view
        if state.model is None or state.image is None:
            self._clear("open a model and an image first" if state.model is None else "no image: open one")
            return
        if not self.methods:
            self._clear("check at least one method")
            return
        boxes = [tuple(int(v) for v in b) for b in view.user_boxes.boxes]
        params = CompareMethodsParams(
            image=state.image,
            methods=self.methods,
            target=view.target_box.currentData(),
            layer=view.layer_for_cam(),
            mapping=view.mapping,
            box=box_arg(boxes, np.shape(state.image)[:2]),
            baseline=view.baseline,
            sanity=self.sanity_box.isChecked(),
        )
        self.asked = {
            "model": state.model.spec,
            "model_name": state.model.name,
            "scaling": state.model.scaling,
            "image": state.image_spec,
            "target": params.target,
            "boxes": [list(b) for b in boxes],
        }
        self.params = params
        self.subject.setText(self._subject_text(params))
        self.detail.setText("")
        self.step_label.setText(describe_step(params.methods, params.sanity, 0))
        self._begin(
            params, "computing each method's map and scores…", f"comparing {len(params.methods)} methods…"
        )

    def _on_progress(self, event: Progress) -> None:
        super()._on_progress(event)
        if event.message:
            self.step_label.setText(str(event.message))

    def _on_cancelled(self) -> None:
        self._say("cancelled")
        self._blank("cancelled: press Compare to run it again")

    def _show_result(self, output: CompareMethodsOutput) -> None:
        self._fill_table(output.result)

    def _rendered_text(self, output: CompareMethodsOutput) -> str:
        res = output.result
        passed = sum(1 for r in res.rows if r.sanity_passed)
        checked = sum(1 for r in res.rows if r.sanity_passed is not None)
        sanity = f"; {passed} of {checked} pass the sanity check" if res.sanity else ""
        return f"{len(res.rows)} methods explaining {self._class_text(res)}{sanity}"

    def _fill_table(self, result: CompareResult) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(result.rows))
        for i, r in enumerate(result.rows):
            for j, cell in enumerate(_cells(r)):
                self.table.setItem(i, j, cell)
        # the figure's order until the user clicks a column (sorting by no column keeps it)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)

    def _show_detail(self) -> None:
        """The selected method's scores and sanity verdict in words, under the table."""
        items = self.table.selectedItems()
        if self.output is None or not items:
            return
        method = self.table.item(items[0].row(), 0).data(Qt.ItemDataRole.UserRole)
        r = self.output.result.row(method)
        lines = [
            f"<b>{escape(r.label)}</b>: deletion AUC {r.deletion.auc:.3f} (lower is better), "
            f"insertion AUC {r.insertion.auc:.3f} (higher is better), {r.deletion.baseline} baseline."
        ]
        if r.pointing is not None:
            lines.append(
                f"Against your boxes: pointing game {'hit' if r.pointing else 'miss'}, "
                f"{100 * float(r.energy or 0):.1f}% of the map's energy inside."
            )
        if r.sanity_verdict:
            word = {True: "Passes", False: "Fails", None: "Sanity"}[r.sanity_passed]
            color = {True: PASSED_COLOR, False: FAILED_COLOR, None: "gray"}[r.sanity_passed]
            lines.append(f"<b style='color:{color}'>{word}:</b> {escape(r.sanity_verdict)}")
        self.detail.setText(re.sub(r"(?<![\w.])-(?=\d)", "−", "<br>".join(lines)))  # true minus signs

    def table_rows(self) -> list[dict[str, str]]:
        """The table as shown (in its current sort order): {column title: text} per row."""
        return [
            {COLUMNS[j]: self.table.item(i, j).text() for j in range(len(COLUMNS))}
            for i in range(self.table.rowCount())
        ]

    # ----- text -----------------------------------------------------------------------
    def _class_text(self, result: CompareResult) -> str:
        name = result.target_name or self.state.class_name(result.target)
        return f"{name} ({result.target})"

    def _subject_text(self, p: CompareMethodsParams) -> str:
        target = p.target
        if target is None:
            what = "top-1 class"
        elif isinstance(target, int):
            what = f"{self.state.class_name(target)} ({target})"
        else:
            what = str(target)
        where = ""
        if any(kind == "cam" for _, kind in check_methods(p.methods)):
            layer = p.layer or f"{self.state.cam_layer() or 'the last spatial layer'} (auto)"
            where = f" · CAM layer {layer}, {p.mapping} mapping"
        n = len(self.asked.get("boxes") or [])
        boxes = f" · {n} box{'es' if n > 1 else ''}" if n else ""
        image = source_name(self.asked.get("image")) or "the current image"
        return (
            f"{len(p.methods)} methods · {what}{where} · {p.baseline} baseline{boxes} · {image} · "
            f"{self.asked.get('model_name')}"
        )

    def _forget(self) -> None:
        self.table.setRowCount(0)

    # ----- export ---------------------------------------------------------------------
    def export_settings(self, path: str | os.PathLike) -> dict[str, Any]:
        """The sidecar of the shown comparison written at `path`: what `export compare` records, the
        user's boxes, and the command that writes this file again (absent when it cannot be named:
        an image without a path, or several boxes, which the command line's one --box cannot hold)."""
        if self.output is None:
            raise EngineError("no comparison to export yet")
        a = self._shown
        settings: dict[str, Any] = {
            "view": "compare",
            "kind": "compare",
            "model": a.get("model"),
            "model_name": a.get("model_name"),
            "image": a.get("image"),
            "scaling": a.get("scaling"),
            **self.output.settings(),  # "target": the class index every map explains
        }
        if a.get("boxes"):
            settings["boxes"] = a["boxes"]
        try:  # the target as asked (None: top-1), as the tab's own commands give it
            settings["command"] = compare_command({**settings, "target": a.get("target")}, out=str(path))
        except EngineError as exc:
            settings["command_note"] = str(exc)
        return settings

    def _export_name(self) -> str:
        return "compare_methods.png"


def open_compare_dialog(view: Any) -> CompareDialog:
    """Show the tab's Compare methods dialog (made once, kept as view.compare_dialog) and run the
    comparison on what the tab shows now."""
    dialog = getattr(view, "compare_dialog", None)
    if dialog is None:
        dialog = CompareDialog(view)
        view.compare_dialog = dialog
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    dialog.start()
    return dialog
