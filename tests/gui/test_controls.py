"""The small builders in gui/widgets shared by the tabs and the window."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLabel, QSpinBox, QWidget

from engine.errors import EngineError
from gui.widgets.background import BackgroundTask
from gui.widgets.controls import control_row, select_data, single_shot_timer, tab_column
from gui.widgets.fields import combo, info_line
from gui.widgets.plots import static_plot


def test_select_data_picks_by_data_and_names_the_choices(qapp):
    box = combo((("Shared", True), ("Per filter", False)))
    select_data(box, False, "colour scale")
    assert box.currentText() == "Per filter"
    with pytest.raises(EngineError, match=r"unknown colour scale 'x'; choose from: True, False"):
        select_data(box, "x", "colour scale")
    assert box.currentText() == "Per filter"


def test_control_row_and_tab_column_lay_a_tab_out(qapp):
    view, spin, body = QWidget(), QSpinBox(), QWidget()
    row = control_row(("Columns", spin))
    labels = [row.itemAt(i).widget() for i in range(row.count()) if row.itemAt(i).widget()]
    assert isinstance(labels[0], QLabel) and labels[0].text() == "Columns" and labels[1] is spin
    info = info_line("a long note")
    column = tab_column(view, row, info, body)
    assert view.layout() is column and column.stretch(2) == 1
    assert info.toolTip() == "a long note"


def test_single_shot_timer_fires_once(qtbot):
    fired = []
    parent = QWidget()
    timer = single_shot_timer(parent, 10, lambda: fired.append(1))
    timer.start()
    qtbot.waitUntil(lambda: fired == [1], timeout=2_000)
    assert timer.isSingleShot() and timer.interval() == 10


def test_background_task_runs_its_function(qtbot):
    from PySide6.QtCore import QThreadPool

    done = []
    pool = QThreadPool()
    pool.start(BackgroundTask(done.append, 7))
    pool.waitForDone(5_000)
    assert done == [7]


def test_static_plot_is_not_interactive(qapp):
    plot = static_plot(bottom="activation")
    assert not plot.getViewBox().state["mouseEnabled"][0]
    assert plot.getAxis("bottom").labelText == "activation"
