"""The Dataset tab's "Evaluate CAM methods…" dialog: the `evaluate` job over a folder with boxes.

`python main.py evaluate cam` from the GUI. The dialog (non-modal, one per tab, reused) scores
the checked CAM methods x mappings over the tab's source folder against the Pascal VOC / COCO
boxes beside its images (engine.dataset.boxes.boxes_for_source): it submits
engine.attribution.evaluate_jobs.EvaluateParams under its own owner name, so the tab's scans keep
running, shows one Progress per image with a Cancel button (the job stops between images), and
when done fills a sortable table (a row per method x mapping: pointing %, energy %, deletion and
insertion AUC, sanity %), a collapsible list of the problems found, and the bar chart the CLI
writes (evaluate_cli.chart_bytes, rendered off the main thread). Save CSV… writes the CSV, the PNG
and their sidecars through evaluate_cli.write_results, with the `evaluate cam` command that
reproduces them. A built-in source has no boxes: the dialog offers to generate builtin:shapes
images with VOC boxes into a folder (engine.dataset.boxes.write_shapes_folder). This module never
imports TensorFlow.
"""

from __future__ import annotations

import argparse
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.attribution.evaluate import TARGETS, EvaluationResult
from engine.attribution.evaluate_cli import chart_bytes, chart_title, command_line, write_results
from engine.attribution.evaluate_jobs import EvaluateParams
from engine.attribution.methods import CAM_METHODS
from engine.attribution.projection import DEFAULT_MAPPING, MAPPINGS
from engine.errors import EngineError
from gui.views.job_dialog import JobDialog
from gui.widgets.fields import info_line
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import row
from gui.widgets.render_worker import RenderWorker

__all__ = ["COLUMNS", "OWNER", "EvaluateDialog", "open_evaluate_dialog"]

OWNER = "evaluate"  # the dialog's jobs: apart from the tab's own scans
COLUMNS = ("method", "mapping", "images", "pointing %", "energy %", "deletion AUC ↓", "insertion AUC ↑")
SANITY_COLUMN = "sanity %"
DEFAULT_METHODS = ("gradcam", "gradcam++")
SHAPES_COUNT = 100


def folder_of(source: str) -> Path | None:
    """The folder a Dataset source names, None for a built-in source or a missing folder."""
    if not source or source.startswith("builtin:"):
        return None
    path = Path(source).expanduser()
    return path if path.is_dir() else None


def _chart(result: EvaluationResult, title: str) -> tuple[np.ndarray, EvaluationResult]:
    """Off the main thread: the bar chart the CLI writes, as RGB pixels."""
    from PIL import Image

    with Image.open(io.BytesIO(chart_bytes(result, title))) as im:
        return np.asarray(im.convert("RGB")), result


def _generate(folder: Path, n: int) -> Path:
    from engine.dataset.boxes import write_shapes_folder

    write_shapes_folder(folder, n)
    return folder


def _number_item(value: float | None, scale: float, digits: int) -> QTableWidgetItem:
    """A cell that sorts by its number (n/a sorts first)."""
    item = QTableWidgetItem()
    if value is None or not math.isfinite(value):
        item.setData(Qt.ItemDataRole.DisplayRole, "n/a")
    else:
        item.setData(Qt.ItemDataRole.DisplayRole, round(float(value) * scale, digits))
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class EvaluateDialog(JobDialog):
    """CAM methods scored over the Dataset tab's folder against its boxes (see the module docstring)."""

    OWNER = OWNER
    SAVE_TITLE = "Save evaluation"

    def __init__(self, view: Any, parent: QWidget | None = None) -> None:
        super().__init__(view, parent, "Evaluate CAM methods against the folder's boxes")
        self.folder: Path | None = None  # the folder evaluated
        self.params: EvaluateParams | None = None  # the running / shown evaluation's request
        self.result: EvaluationResult | None = None
        self.chart: np.ndarray | None = None  # the shown result's bar chart pixels
        self._asked: dict[str, Any] = {}  # the model the running evaluation was asked on
        # self._shown: the shown one's, with its params; self.written: the last Save CSV's files

        self.subject = QLabel("")
        self.subject.setWordWrap(True)
        self.subject.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.generate_button = QPushButton("Generate shapes…")
        self.generate_button.setToolTip(
            "Write N builtin:shapes images, each with a Pascal VOC .xml box, into a folder and evaluate it"
        )
        self.method_boxes: dict[str, QCheckBox] = {}
        for name, cls in CAM_METHODS.items():
            box = QCheckBox(cls.label)
            box.setChecked(name in DEFAULT_METHODS)
            self.method_boxes[name] = box
        self.mapping_boxes: dict[str, QCheckBox] = {}
        for name in MAPPINGS:
            box = QCheckBox(name)
            box.setChecked(name == DEFAULT_MAPPING)
            box.setToolTip("how the CAM grid is brought to the image's pixels")
            self.mapping_boxes[name] = box
        self.target_box = QComboBox()
        for key in TARGETS:
            self.target_box.addItem({"label": "the boxes' class", "top1": "the model's top-1"}[key], key)
        self.limit_box = QSpinBox()
        self.limit_box.setRange(0, 1_000_000)
        self.limit_box.setSpecialValueText("all")
        self.limit_box.setToolTip("Score at most this many images (those with boxes, in folder order)")
        self.sanity_box = QSpinBox()
        self.sanity_box.setRange(0, 100_000)
        self.sanity_box.setSpecialValueText("never")
        self.sanity_box.setToolTip(
            "Run the model-randomization sanity check (Adebayo et al. 2018) on every N-th image"
        )
        self.steps_box = QSpinBox()
        self.steps_box.setRange(1, 256)
        self.steps_box.setValue(16)
        self.steps_box.setToolTip("Deletion / insertion steps")
        self.run_button = QPushButton("Evaluate")
        self._make_progress("%v of %m images", "Stop the evaluation (between two images)")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.setToolTip("A row per method x mapping; click a header to sort")
        self.pane = ImagePane()
        self.pane.setMinimumSize(360, 180)
        self.pane.setBackground("w")  # the chart's own paper white around it
        self._message_stack(self.pane, wrap=False)  # self.message instead of the chart until one is drawn
        self.problems_toggle = QToolButton()
        self.problems_toggle.setCheckable(True)
        self.problems_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.problems_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.problems_toggle.setStyleSheet("QToolButton { border: none; }")
        self.problems_list = QPlainTextEdit()
        self.problems_list.setReadOnly(True)
        self.problems_list.setVisible(False)
        self.note = info_line("")
        self.save_button = QPushButton("Save CSV…")
        self.save_button.setToolTip(
            "Write the table as .csv and the bar chart as .png beside it, each with a sidecar holding "
            "the settings, the problems and the `python main.py evaluate cam` command"
        )
        self.close_button = QPushButton("Close")
        self._lay_out()

        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_chart)
        self.renderer.failed.connect(lambda message: self._say(message.splitlines()[0], error=True))
        self.worker = RenderWorker(self)  # shapes folders and saved files, off the main thread
        self.worker.done.connect(self._on_worked)
        self.worker.failed.connect(self._on_work_failed)
        self.generate_button.clicked.connect(self.choose_shapes_folder)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.problems_toggle.toggled.connect(self._toggle_problems)
        self.save_button.clicked.connect(self.save)
        self.close_button.clicked.connect(self.close)
        self._set_running(False)
        self._show_problems(())

    def _lay_out(self) -> None:
        options = QGridLayout()
        options.setHorizontalSpacing(8)
        options.addWidget(QLabel("Methods"), 0, 0, Qt.AlignmentFlag.AlignRight)
        for i, box in enumerate(self.method_boxes.values()):
            options.addWidget(box, 0, 1 + i)
        options.addWidget(QLabel("Mappings"), 1, 0, Qt.AlignmentFlag.AlignRight)
        for i, box in enumerate(self.mapping_boxes.values()):
            options.addWidget(box, 1, 1 + i)
        numbers = row(
            QLabel("Target"), self.target_box, QLabel("Limit"), self.limit_box, QLabel("Sanity check every"),
            self.sanity_box, QLabel("Steps"), self.steps_box,
        )  # fmt: skip
        numbers.addStretch(1)
        numbers.addWidget(self.run_button)
        self._progress_row((self.progress, 1), self.cancel_button)
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(self.table)
        self.split.addWidget(self.stack)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(row((self.subject, 1), self.generate_button))
        layout.addLayout(options)
        layout.addLayout(numbers)
        layout.addWidget(self.progress_row)
        layout.addWidget(self.split, 1)
        layout.addWidget(self.problems_toggle)
        layout.addWidget(self.problems_list)
        layout.addLayout(row((self.note, 1), self.save_button, self.close_button))
        self.resize(940, 860)

    # ----- the folder -----------------------------------------------------------------
    def set_folder(self, folder: str | os.PathLike | None) -> None:
        """Evaluate `folder` (None: ask for one or offer to generate shapes)."""
        self.folder = Path(folder) if folder is not None else None
        model = self.state.model.name if self.state.model is not None else "no model"
        if self.folder is None:
            self.subject.setText(
                f"{self.view.source or 'no source'} has no boxes: evaluation needs a folder whose images have "
                "Pascal VOC .xml files beside them or a COCO .json. Choose one in the tab, or generate shapes."
            )
        else:
            self.subject.setText(f"{self.folder} · {model}")
        self._set_running(self.running)
        if self.result is None and not self.running:
            self._blank("no evaluation yet" if self.folder is None else "Evaluate to score the methods")

    def choose_shapes_folder(self) -> None:
        """Ask how many shapes images and where, then write them with VOC boxes."""
        n, ok = QInputDialog.getInt(
            self, "Generate shapes", "builtin:shapes images with VOC boxes:", SHAPES_COUNT, 1, 100_000
        )
        if not ok:
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder for the shapes images", str(Path.home()))
        if folder:
            self.generate_shapes(folder, n)

    def generate_shapes(self, folder: str | os.PathLike, n: int) -> None:
        """Write n builtin:shapes images with VOC boxes into `folder` (off the main thread), then
        make it the folder evaluated."""
        self._say(f"writing {n} shapes images with boxes into {folder}…")
        self.generate_button.setEnabled(False)
        self.worker.render(_generate, Path(folder), int(n))

    # ----- choices --------------------------------------------------------------------
    def methods(self) -> tuple[str, ...]:
        return tuple(name for name, box in self.method_boxes.items() if box.isChecked())

    def mappings(self) -> tuple[str, ...]:
        return tuple(name for name, box in self.mapping_boxes.items() if box.isChecked())

    def set_choices(self, methods: tuple[str, ...], mappings: tuple[str, ...] = (DEFAULT_MAPPING,)) -> None:
        """Check exactly these methods and mappings (as the user does)."""
        for name, box in self.method_boxes.items():
            box.setChecked(name in methods)
        for name, box in self.mapping_boxes.items():
            box.setChecked(name in mappings)

    def job_params(self) -> EvaluateParams:
        """The request for the current choices; EngineError when something is missing."""
        if self.state.model is None:
            raise EngineError("open a model first")
        if self.folder is None:
            raise EngineError("no folder with boxes: choose one in the Dataset tab or generate shapes")
        if not self.methods():
            raise EngineError("check at least one method")
        if not self.mappings():
            raise EngineError("check at least one mapping")
        return EvaluateParams(
            source=str(self.folder),
            methods=self.methods(),
            mappings=self.mappings(),
            target=str(self.target_box.currentData()),
            steps=self.steps_box.value(),
            limit=self.limit_box.value() or None,
            sanity_every=self.sanity_box.value(),
        )

    # ----- the job --------------------------------------------------------------------
    def start(self) -> None:
        """Score the checked methods x mappings over the folder."""
        try:
            params = self.job_params()
        except EngineError as exc:
            self._say(str(exc), error=True)
            return
        if self.running and self.job_id is not None:
            self.client.cancel(self.job_id)
        self.params = params
        model = self.state.model
        self._asked = {"model": model.spec, "model_name": model.name, "scaling": model.scaling}
        self._submit(params)
        self.result, self.chart = None, None  # a new evaluation: the old one goes
        self.renderer.cancel()
        self.table.setRowCount(0)
        self._show_problems(())
        self._blank("scoring the images…")
        self.progress.setRange(0, 0)  # busy until the first Progress says how many images
        self._set_running(True)
        self._say(f"scoring {', '.join(params.methods)} × {', '.join(params.mappings)}…")

    def _on_failed(self, message: str) -> None:
        self._say(message.splitlines()[0] if message else "failed", error=True)

    def _on_done(self, result: EvaluationResult) -> None:
        self._show(result)

    def _on_cancelled(self) -> None:
        self._say("cancelled: Evaluate to run it again")
        self._blank("cancelled")

    def _show(self, result: EvaluationResult) -> None:
        self.result, self.chart = result, None
        self._shown = {**self._asked, "params": self.params}
        self._fill_table(result)
        self._show_problems(result.problems)
        self._blank("drawing the chart…")
        title = chart_title(self._shown["model_name"], str(self.params.source), result)
        self.renderer.render(_chart, result, title)
        self._set_running(False)
        self._say(f"{result.evaluated} images scored, {result.skipped} not scored")

    def _fill_table(self, result: EvaluationResult) -> None:
        sanity = result.has_sanity
        columns = (*COLUMNS, SANITY_COLUMN) if sanity else COLUMNS
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(result.rows))
        for i, r in enumerate(result.rows):
            label = CAM_METHODS[r.method].label if r.method in CAM_METHODS else r.method
            cells = [QTableWidgetItem(label), QTableWidgetItem(r.mapping), _number_item(r.images, 1, 0)]
            cells += [_number_item(r.pointing, 100, 1), _number_item(r.energy, 100, 1)]
            cells += [_number_item(r.deletion, 1, 3), _number_item(r.insertion, 1, 3)]
            if sanity:
                cells.append(_number_item(r.sanity, 100, 1))
            for j, item in enumerate(cells):
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        header = self.table.horizontalHeader().height() + 2 * self.table.frameWidth() + 2
        shown = header + sum(self.table.rowHeight(i) for i in range(min(len(result.rows), 10)))
        self.split.setSizes([shown, max(self.split.height() - shown, 200)])

    def table_rows(self) -> list[list[str]]:
        """The table's cells as shown (in the current sort order)."""
        return [
            [self.table.item(i, j).text() for j in range(self.table.columnCount())]
            for i in range(self.table.rowCount())
        ]

    def _show_problems(self, problems: tuple[str, ...] | list[str]) -> None:
        self.problems_list.setPlainText("\n".join(problems))
        lines = max(1, min(len(problems), 6))  # as tall as its lines, up to six
        self.problems_list.setFixedHeight(self.problems_list.fontMetrics().lineSpacing() * lines + 14)
        self.problems_toggle.setText(f"Problems ({len(problems)})" if problems else "No problems")
        self.problems_toggle.setEnabled(bool(problems))
        if not problems:
            self.problems_toggle.setChecked(False)

    def _toggle_problems(self, shown: bool) -> None:
        self.problems_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.problems_list.setVisible(shown)

    def _on_chart(self, out: tuple[np.ndarray, EvaluationResult]) -> None:
        pixels, source = out
        if source is not self.result:
            return  # an older result's chart
        self.chart = pixels
        self.pane.set_image(pixels)
        self.stack.setCurrentWidget(self.pane)

    def _on_worked(self, out: Any) -> None:
        if isinstance(out, Path):  # a shapes folder
            self.generate_button.setEnabled(True)
            self.set_folder(out)
            self._say(f"wrote shapes images with VOC boxes into {out}")
        else:
            self.written = list(out)
            self._say("wrote " + ", ".join(str(p) for p in self.written))

    def _on_work_failed(self, message: str) -> None:
        self.generate_button.setEnabled(True)
        self._say(message.splitlines()[0] if message else "failed", error=True)

    # ----- saving ---------------------------------------------------------------------
    def command(self, out: str | os.PathLike) -> str:
        """The `python main.py evaluate cam ...` line that writes the shown result at `out` again."""
        if self.result is None:
            raise EngineError("no evaluation to save yet")
        p: EvaluateParams = self._shown["params"]
        a = self._shown
        args = argparse.Namespace(
            model=a["model"],
            scaling=a["scaling"],
            source=p.source,
            methods=",".join(p.methods),
            mappings=",".join(p.mappings),
            layer=p.layer,
            target=p.target,
            baseline=p.baseline,
            steps=p.steps,
            limit=p.limit,
            sanity_every=p.sanity_every,
            out=str(out),
        )
        return command_line(args)

    def save(self) -> None:
        """Ask for a .csv file, then write it, the chart and their sidecars."""
        if self.result is None:
            return
        path = self._ask_save_path("evaluate_cam.csv", "CSV (*.csv)")
        if path:
            self.save_to(path)

    def save_to(self, path: str | os.PathLike) -> bool:
        """Write the shown result at `path` (.csv added when missing) and the chart beside it, off the
        main thread, asking before replacing a file. True when the write started."""
        if self.result is None:
            self._say("no evaluation to save yet", error=True)
            return False
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        files = [path, path.with_suffix(".png")]
        files += [f.with_name(f.name + ".json") for f in files]
        overwrite = self._may_replace(files)
        if overwrite is None:
            return False
        title = chart_title(self._shown["model_name"], str(self._shown["params"].source), self.result)
        self.written = []
        self._say(f"writing {path.name}…")
        self.worker.render(write_results, path, self.result, self.command(path), title, overwrite)
        return True

    # ----- state ----------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        self.running = running
        self.progress_row.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.run_button.setEnabled(self.folder is not None and self.state.model is not None)
        self.save_button.setEnabled(not running and self.result is not None)
        self.generate_button.setVisible(self.folder is None or folder_of(self.view.source) is None)


def open_evaluate_dialog(view: Any) -> EvaluateDialog:
    """Show the Dataset tab's evaluation dialog (made once, kept as view.evaluate_dialog) for the
    tab's source folder (a built-in source keeps a folder generated before, else offers shapes)."""
    dialog = getattr(view, "evaluate_dialog", None)
    if dialog is None:
        dialog = EvaluateDialog(view)
        view.evaluate_dialog = dialog
    folder = folder_of(view.source)
    if folder is not None or dialog.folder is None:
        dialog.set_folder(folder)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
