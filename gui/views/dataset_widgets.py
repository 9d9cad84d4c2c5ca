"""The Dataset tab's widgets: the scan controls and its three pages, built onto the view.

Each function creates one part's widgets as attributes of the DatasetView `v` (the view's
methods and the tests reach them as v.units_pane, v.class_a, ...) and returns the part to lay
out; gui/views/dataset.py connects the signals and holds the behaviour (build() connects the
"Evaluate CAM methods…" button itself: it opens gui/views/dataset_evaluate.py's dialog).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui import settings as cfg
from gui.views.dataset_runner import RunOn
from gui.widgets.fields import ClippedLabel, info_line
from gui.widgets.image_pane import ImagePane
from gui.widgets.layouts import column, row, splitter

SOURCES = ("builtin:digits", "builtin:shapes?n=1000&seed=1234")


def build(v: Any) -> None:
    """All of the tab's widgets: the controls in two rows above the Units, Classes and Images pages."""
    bar = controls(v)
    v.pages = QTabWidget()
    v.pages.addTab(units_page(v), "Units")
    v.pages.addTab(classes_page(v), "Classes")
    v.pages.addTab(images_page(v), "Images")
    layout = QVBoxLayout(v)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addLayout(bar)
    layout.addWidget(v.info)
    layout.addWidget(v.pages, 1)
    v.evaluate_button.clicked.connect(lambda: _open_evaluate(v))


def _open_evaluate(v: Any) -> None:
    from gui.views.dataset_evaluate import open_evaluate_dialog

    open_evaluate_dialog(v)


def controls(v: Any) -> QGridLayout:
    """Source, layer, k and crop size, Run and Cancel, the progress bar, where the scan runs
    (v.run_on: gui/views/dataset_runner.py) and the info line."""
    v.source_box = QComboBox()
    v.source_box.setEditable(True)
    v.source_box.addItems(SOURCES)
    v.source_box.setMinimumWidth(160)
    v.source_box.setToolTip(
        "A folder (labels from sub-folder names), builtin:digits or builtin:shapes?n=N&seed=S"
    )
    v.folder_button = QPushButton("Folder…")
    v.layer_box = QComboBox()
    v.layer_box.setMinimumWidth(120)
    v.layer_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    v.layer_box.setMinimumContentsLength(12)
    v.k_box = QSpinBox()
    v.k_box.setRange(1, 64)
    v.k_box.setValue(9)
    v.k_box.setToolTip("Top images kept per unit")
    v.cell_box = QSpinBox()
    v.cell_box.setRange(12, 128)
    v.cell_box.setValue(32)
    v.cell_box.setToolTip("Pixels per crop in the unit grid")
    v.run_button = QPushButton("Run scan")
    v.run_button.setToolTip("Scan the source through the layer (F5, Run → Run)")
    v.cancel_button = QPushButton("Cancel")
    v.cancel_button.setEnabled(False)
    v.evaluate_button = QPushButton("Evaluate CAM methods…")
    v.evaluate_button.setToolTip(
        "Score CAM methods over the source folder against its Pascal VOC / COCO boxes "
        "(python main.py evaluate cam)"
    )
    v.progress_bar = QProgressBar()
    v.progress_bar.setRange(0, 1)
    v.progress_bar.setValue(0)
    v.progress_bar.setTextVisible(True)
    v.progress_bar.setMinimumWidth(120)
    v.info = info_line()
    v.run_on = RunOn()
    # rows, so the Run button is in sight in a 1280 px window: what to scan, how, then where
    bar = QGridLayout()
    bar.setContentsMargins(4, 2, 4, 2)
    bar.setHorizontalSpacing(6)
    bar.setVerticalSpacing(2)
    bar.addWidget(QLabel("Source"), 0, 0, Qt.AlignmentFlag.AlignRight)
    bar.addWidget(v.source_box, 0, 1, 1, 4)
    bar.addWidget(v.folder_button, 0, 5)
    bar.addWidget(QLabel("Layer"), 0, 6, Qt.AlignmentFlag.AlignRight)
    bar.addWidget(v.layer_box, 0, 7)
    bar.addWidget(QLabel("k"), 1, 0, Qt.AlignmentFlag.AlignRight)
    bar.addWidget(v.k_box, 1, 1)
    bar.addWidget(QLabel("Crop px"), 1, 2, Qt.AlignmentFlag.AlignRight)
    bar.addWidget(v.cell_box, 1, 3)
    buttons = QHBoxLayout()
    buttons.addWidget(v.run_button)
    buttons.addWidget(v.cancel_button)
    buttons.addWidget(v.evaluate_button)
    bar.addLayout(buttons, 1, 4, 1, 2)
    bar.addWidget(v.progress_bar, 1, 6, 1, 2)
    bar.addWidget(QLabel("Run on"), 2, 0, Qt.AlignmentFlag.AlignRight)
    bar.addWidget(v.run_on, 2, 1, 1, 7)
    bar.setColumnStretch(4, 2)
    bar.setColumnStretch(7, 2)
    return bar


def save_settings(v: Any, s: QSettings) -> None:
    """The controls' choices (the view's settings group): source, k, crop size, splitter, Run on."""
    s.setValue("source", v.source)
    s.setValue("k", v.k)
    s.setValue("cell", int(v.cell_box.value()))
    s.setValue("split", v.units_split.saveState())
    v.run_on.save(s)


def restore_settings(v: Any, s: QSettings) -> None:
    """What save_settings stored."""
    source = cfg.read(s, "source", v.source, str)
    if source:
        v.set_source(source)
    v.k_box.setValue(cfg.read(s, "k", 9, int))
    v.cell_box.setValue(cfg.read(s, "cell", 32, int))
    split = s.value("split")
    if split is not None:
        v.units_split.restoreState(split)
    v.run_on.restore(s)


def units_page(v: Any) -> QSplitter:
    """The unit grid beside the clicked unit's top images and its maximization."""
    v.units_pane = ImagePane()
    v.units_pane.setToolTip("Click a unit to see its top images and its maximization")
    v.detail_title = QLabel("Click a unit")
    v.detail_title.setWordWrap(True)
    v.detail_pane = ImagePane()
    v.max_pane = ImagePane(pan_zoom=False)
    v.max_pane.setToolTip("The unit's activation maximization")
    v.max_button = QPushButton("Maximize this unit")
    v.max_button.setEnabled(False)
    v.open_max_button = QPushButton("Open in Maximize tab")
    v.open_max_button.setEnabled(False)
    v.max_label = QLabel("")
    detail = column(
        v.detail_title,
        (v.detail_pane, 3),
        row(v.max_button, v.open_max_button),
        (v.max_pane, 2),
        v.max_label,
    )
    v.units_split = splitter(Qt.Orientation.Horizontal, v.units_pane, detail, stretch=(3, 2))
    return v.units_split


def classes_page(v: Any) -> QWidget:
    """The class heatmap (and per-class grids), the separating units table and the comparison."""
    v.heat_mode = QComboBox()
    v.heat_mode.addItem("z-score per unit", "zscore")
    v.heat_mode.addItem("mean activation", "raw")
    v.stat_box = QComboBox()
    v.stat_box.addItem("spatial mean", "mean")
    v.stat_box.addItem("spatial max", "max")
    v.class_a = QComboBox()
    v.class_b = QComboBox()
    v.compare_button = QPushButton("Compare")
    v.heat_pane = ImagePane()
    v.heat_pane.setToolTip("Rows: classes; columns: units. Click a cell to open the unit")
    v.heat_label = ClippedLabel("")
    v.grids_pane = ImagePane()
    v.sep_table = QTableWidget(0, 4)
    v.sep_table.setHorizontalHeaderLabels(["unit", "d", "mean A", "mean B"])
    v.sep_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    v.sep_table.verticalHeader().setVisible(False)
    v.sep_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    v.compare_pane = ImagePane()
    crow = QGridLayout()  # two rows: the heatmap's look, then the pair of classes to compare
    crow.setHorizontalSpacing(6)
    for i, (text, w) in enumerate(
        (
            ("Heatmap", v.heat_mode),
            ("Statistic", v.stat_box),
            ("Class A", v.class_a),
            ("Class B", v.class_b),
        )
    ):
        crow.addWidget(QLabel(text), i // 2, 2 * (i % 2), Qt.AlignmentFlag.AlignRight)
        crow.addWidget(w, i // 2, 2 * (i % 2) + 1)
    crow.addWidget(v.compare_button, 1, 4)
    crow.setColumnStretch(5, 1)
    heat_box = column((v.heat_pane, 3), v.heat_label, (v.grids_pane, 2), margins=0)
    top = splitter(Qt.Orientation.Horizontal, heat_box, v.sep_table, stretch=(3, 2), sizes=(800, 360))
    v.classes_split = splitter(Qt.Orientation.Vertical, top, v.compare_pane)
    return column(crow, (v.classes_split, 1))


def images_page(v: Any) -> QWidget:
    """Images of the set beside the map of their strongest channel."""
    v.first_image = QSpinBox()
    v.first_image.setRange(0, 0)
    v.image_count = QSpinBox()
    v.image_count.setRange(1, 32)
    v.image_count.setValue(8)
    v.show_images_button = QPushButton("Show")
    v.images_pane = ImagePane()
    irow = row(QLabel("From image #"), v.first_image, QLabel("count"), v.image_count, v.show_images_button)
    irow.addStretch(1)
    hint = QLabel("Each image beside the map of the channel that fired most on it.")
    hint.setWordWrap(True)
    return column(irow, hint, (v.images_pane, 1))
