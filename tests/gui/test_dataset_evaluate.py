"""The Dataset tab's "Evaluate CAM methods…" dialog on the real engine thread and the tiny model.

The tab is built standalone on its own AppState and EngineClient (as in test_dataset_view.py).
Its built-in source has no boxes, so the dialog generates builtin:shapes images with VOC boxes
(engine.dataset.boxes.write_shapes_folder) and evaluates them; a tab whose source is such a
folder opens the dialog on it. Waits are QEventLoop-based (fake_engine.wait_until).
"""

from __future__ import annotations

import csv
import json
import shlex

import pytest
from fake_engine import wait_until
from PySide6.QtCore import Qt

from engine.contract import LoadModelParams
from engine.dataset.boxes import write_shapes_folder
from engine.jobs import Finished

TIMEOUT = 60_000


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """60 shapes images with VOC boxes (the evaluation runs on the first 6, the cancel on all)."""
    folder = tmp_path_factory.mktemp("eval-shapes")
    write_shapes_folder(folder, 60)
    return folder


@pytest.fixture
def view(qapp, qtbot, assets, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    from gui.engine_thread import EngineClient
    from gui.state import AppState
    from gui.views.dataset import DatasetView

    state = AppState()
    client = EngineClient()
    client.start()
    wait_until(lambda: client.is_ready, TIMEOUT)
    got: list[Finished] = []
    client.finished.connect(lambda e: got.append(e))
    client.submit(LoadModelParams(str(assets["model"])).request("test"))
    wait_until(lambda: bool(got), TIMEOUT)
    v = DatasetView(state, client)
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    v.set_active(True)
    state.set_model(got[0].result)
    yield v
    dialog = getattr(v, "evaluate_dialog", None)
    if dialog is not None:
        dialog.close()
    wait_until(lambda: not client.busy(), 30_000)
    client.shutdown()


def _evaluated(dialog):
    dialog.run_button.click()
    wait_until(lambda: dialog.running, 5_000)
    wait_until(lambda: not dialog.running and dialog.chart is not None, TIMEOUT)


def test_builtin_source_generates_shapes_then_scores_two_methods(view, tmp_path) -> None:
    view.evaluate_button.click()
    dialog = view.evaluate_dialog
    assert dialog.isVisible() and not dialog.isModal()
    assert dialog.folder is None and not dialog.run_button.isEnabled()
    assert "VOC" in dialog.subject.text() and dialog.generate_button.isVisible()

    dialog.generate_shapes(tmp_path / "shapes", 6)
    wait_until(lambda: dialog.folder is not None, TIMEOUT)
    assert len(list((tmp_path / "shapes").glob("*.xml"))) == 6
    assert dialog.run_button.isEnabled()

    dialog.set_choices(("gradcam", "layercam"), ("gaussian",))
    dialog.steps_box.setValue(4)
    _evaluated(dialog)
    result = dialog.result
    assert result.evaluated == 6 and [r.method for r in result.rows] == ["gradcam", "layercam"]
    rows = dialog.table_rows()
    assert len(rows) == 2 and {r[0] for r in rows} == {"Grad-CAM", "Layer-CAM"}
    for cells in rows:
        assert cells[1] == "gaussian" and cells[2] == "6"
        pointing, energy, deletion, insertion = (float(c) for c in cells[3:7])
        assert 0 <= pointing <= 100 and 0 <= energy <= 100
        assert 0 <= deletion <= 1 and 0 <= insertion <= 1
    # sortable: by pointing %, descending
    dialog.table.sortItems(3, Qt.SortOrder.DescendingOrder)
    values = [float(r[3]) for r in dialog.table_rows()]
    assert values == sorted(values, reverse=True)
    # the shapes' class names are not the tiny model's: one problem line, in the collapsible list
    assert result.problems and dialog.problems_toggle.isEnabled()
    assert not dialog.problems_list.isVisible()
    dialog.problems_toggle.click()
    assert dialog.problems_list.isVisible()
    assert dialog.problems_list.toPlainText().splitlines() == list(result.problems)
    assert dialog.chart.ndim == 3 and dialog.chart.shape[1] > 400


def test_cancel_stops_a_run(view, shapes) -> None:
    view.set_source(str(shapes))
    view.evaluate_button.click()
    dialog = view.evaluate_dialog
    assert dialog.folder == shapes and not dialog.generate_button.isVisible()
    dialog.set_choices(("gradcam", "scorecam"), ("gaussian", "roi"))
    dialog.run_button.click()
    wait_until(lambda: dialog.progress.maximum() == 60, TIMEOUT)
    dialog.cancel_button.click()
    wait_until(lambda: not dialog.running, TIMEOUT)
    assert dialog.result is None and dialog.table.rowCount() == 0
    assert dialog.progress.value() < 60
    assert "cancelled" in dialog.note.text() and not dialog.save_button.isEnabled()


def test_save_csv_writes_csv_png_and_sidecars_with_the_command(view, shapes, tmp_path, monkeypatch) -> None:
    view.set_source(str(shapes))
    view.evaluate_button.click()
    dialog = view.evaluate_dialog
    dialog.set_choices(("gradcam", "eigencam"), ("gaussian",))
    dialog.limit_box.setValue(6)
    dialog.steps_box.setValue(4)
    _evaluated(dialog)
    assert dialog.save_button.isEnabled()

    out = tmp_path / "scores.csv"
    assert dialog.save_to(out)
    wait_until(lambda: bool(dialog.written), TIMEOUT)
    png = out.with_suffix(".png")
    for path in (out, png, out.with_name("scores.csv.json"), png.with_name("scores.png.json")):
        assert path.exists(), path
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["mapping"], r["images"]) for r in rows] == [
        ("gradcam", "gaussian", "6"),
        ("eigencam", "gaussian", "6"),
    ]
    side = json.loads(out.with_name("scores.csv.json").read_text())
    argv = shlex.split(side["command"])
    assert argv[:4] == ["python", "main.py", "evaluate", "cam"]
    assert argv[argv.index("--source") + 1] == str(shapes)
    assert argv[argv.index("--methods") + 1] == "gradcam,eigencam"
    assert argv[argv.index("--limit") + 1] == "6" and argv[argv.index("--out") + 1] == str(out)
    settings = side["settings"]
    assert settings["problems"] == list(dialog.result.problems) and settings["evaluated"] == 6
    assert json.loads(png.with_name("scores.png.json").read_text())["command"] == side["command"]

    # the sidecar's command writes the same CSV
    from engine.cli import main

    monkeypatch.setenv("CONVSCOPE_DEBUG", "1")  # leave fd 2 alone inside the test process
    again = tmp_path / "again.csv"
    assert main(shlex.split(side["command"].replace(str(out), str(again)))[2:]) == 0
    assert again.read_bytes() == out.read_bytes()

    # an existing file: asked first, nothing written on "no"
    dialog.ask = lambda question: False
    assert not dialog.save_to(out)
