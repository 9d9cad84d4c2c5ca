"""The Attribution tab's Compare methods dialog on the real engine thread and the tiny fixture model.

The tab is built standalone on its own AppState and EngineClient (conftest.py's attribution_tab,
shared with test_sanity_dialog.py) with the tiny 28x28 grey model. Three fast methods (Grad-CAM,
Eigen-CAM, gradient) with the sanity check on keep each run to a few seconds. Waits are
QEventLoop-based (fake_engine.wait_until), never QTest.qWait.
"""

from __future__ import annotations

import json
import math
import shlex

import numpy as np
import pytest
from fake_engine import check_export_refuses_overwrite_and_reproduces, wait_until
from PySide6.QtCore import Qt

from engine.errors import EngineError
from gui.views.compare_dialog import COLUMNS, OWNER, box_arg, compare_command

TIMEOUT = 60_000
FAST = ("gradcam", "eigencam", "gradient")


@pytest.fixture
def view(attribution_tab):
    """The standalone Attribution tab of tests/gui/conftest.py on the tiny model, its first map drawn."""
    return attribution_tab


def _opened(view):
    """Press the tab's Compare methods button, then run the three fast methods; wait for the figure."""
    view.compare_methods_button.click()
    dialog = view.compare_dialog
    dialog.set_methods(FAST)
    dialog.run_button.click()  # supersedes the all-methods run the button started
    wait_until(lambda: dialog.figure is not None and not dialog.running, TIMEOUT)
    return dialog


def test_button_runs_the_comparison_with_table_and_figure(view):
    assert view.compare_methods_button.text() == "Compare methods"
    view.user_boxes.set_boxes([(4, 5, 20, 22)])  # x0, y0, x1, y1: sent as the compare box
    dialog = _opened(view)
    assert dialog.isVisible() and not dialog.isModal()
    assert dialog.sanity_box.isChecked()
    assert view.client.owner_of(dialog.job_id) == OWNER  # its own owner: the tab's map stays
    res = dialog.output.result
    assert res.methods == FAST and res.sanity
    assert res.box == (5, 4, 22, 20) and res.layer == "block/inner_conv"
    assert dialog.table.rowCount() == 3
    rows = dialog.table_rows()
    assert [r["Method"] for r in rows] == ["Grad-CAM", "Eigen-CAM", "Gradient"]
    for r, shown in zip(res.rows, rows):
        for value in (r.deletion.auc, r.insertion.auc, r.energy, r.sanity_rho):
            assert math.isfinite(value)
        assert r.pointing is not None and r.sanity_passed is not None and r.sanity_verdict
        assert shown["Sanity"] == ("passes" if r.sanity_passed else "fails")
        assert float(shown["Deletion ↓"].replace("−", "-")) == pytest.approx(r.deletion.auc, abs=1e-3)
        assert shown["Pointing"] in ("hit", "miss") and shown["Energy"].endswith("%")
    # sortable: by insertion AUC, highest first
    dialog.table.sortItems(COLUMNS.index("Insertion ↑"), Qt.SortOrder.DescendingOrder)
    shown = [float(r["Insertion ↑"].replace("−", "-")) for r in dialog.table_rows()]
    assert shown == sorted(shown, reverse=True)
    # the figure: the photo, then one panel per method
    assert [p.label for p in dialog.spec.panels] == ["photo", "Grad-CAM", "Eigen-CAM", "Gradient"]
    assert dialog.figure.ndim == 3 and dialog.figure.dtype == np.uint8
    assert dialog.pane.image_shape == dialog.figure.shape[:2]
    assert dialog.stack.currentWidget() is dialog.pane
    assert "3 methods" in dialog.subject.text() and "1 box" in dialog.subject.text()
    assert dialog.export_button.isEnabled() and not dialog.progress_row.isVisible()
    assert view.result is not None and view.overlay_image() is not None


def test_cancel_stops_a_run(view):
    view.compare_methods_button.click()  # all eight methods with the sanity check: slow
    dialog = view.compare_dialog
    from engine.attribution.compare import ALL_METHODS

    assert dialog.methods == ALL_METHODS  # all eight, in the figure's order
    assert dialog.running and dialog.cancel_button.isEnabled() and dialog.progress_row.isVisible()
    job = dialog.job_id
    ended: list = []
    dialog.client.finished.connect(lambda e: ended.append(e) if e.job_id == job else None)
    wait_until(lambda: dialog.progress.maximum() > 0, TIMEOUT)  # a Progress has come
    assert "Grad-CAM" in dialog.step_label.text() or "Grad-CAM++" in dialog.step_label.text()
    dialog.cancel_button.click()
    wait_until(lambda: not dialog.running, TIMEOUT)
    assert [e.reason for e in ended] == ["cancelled"]
    assert dialog.output is None and dialog.figure is None and dialog.table.rowCount() == 0
    assert "cancelled" in dialog.note.text()
    assert not dialog.export_button.isEnabled()


def test_export_writes_png_and_sidecar_with_the_command(view, tmp_path, monkeypatch):

    view.set_target(3)
    wait_until(lambda: view.result is not None and view.result.target == 3, TIMEOUT)
    view.user_boxes.set_boxes([(2, 3, 15, 18)])
    dialog = _opened(view)
    assert dialog.output.result.target == 3
    out = tmp_path / "compare.png"
    assert dialog.export_to(out)
    wait_until(lambda: bool(dialog.written), TIMEOUT)
    sidecar = tmp_path / "compare.png.json"
    assert dialog.written == [out, sidecar]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(sidecar.read_text())
    meta = doc["settings"]
    res = dialog.output.result
    assert meta["kind"] == "compare" and meta["figure"] == "compare"
    assert meta["methods"] == list(FAST) and meta["target"] == 3 and meta["sanity"] is True
    assert meta["boxes"] == [[2, 3, 15, 18]] and meta["box"] == [3, 2, 18, 15]
    assert [s["sanity_verdict"] for s in meta["scores"]] == [r.sanity_verdict for r in res.rows]
    command = doc["command"]
    assert command == meta["command"]
    argv = shlex.split(command)
    assert argv[:4] == ["python", "main.py", "export", "compare"]
    assert argv[argv.index("--methods") + 1] == "gradcam,eigencam,gradient"
    assert argv[argv.index("--target") + 1] == "3" and argv[argv.index("--box") + 1] == "2,3,15,18"
    assert argv[argv.index("--image") + 1] == view.state.image_spec
    assert argv[argv.index("--out") + 1] == str(out)

    # declining the overwrite keeps the file; the sidecar's command writes the same figure
    check_export_refuses_overwrite_and_reproduces(dialog, out, argv, monkeypatch)


def test_box_argument_and_command():
    assert box_arg([], (10, 10)) is None
    assert box_arg([(1, 2, 5, 7)], (10, 10)) == (2, 1, 7, 5)
    mask = box_arg([(0, 0, 2, 2), (5, 5, 7, 8)], (10, 10))
    assert mask.dtype == bool and mask.sum() == 4 + 6
    settings = {
        "model": "m.keras",
        "image": "builtin:shape_star",
        "methods": ["gradcam", "gradient"],
        "layer": None,
        "mapping": "gaussian",
        "box": [2, 1, 7, 5],
        "baseline": "blur",
        "steps": 16,
        "sanity": False,
        "seed": 0,
    }
    assert compare_command(settings, out="a b.png") == (
        "python main.py export compare --model m.keras --image builtin:shape_star --methods gradcam,gradient "
        "--mapping gaussian --box 1,2,5,7 --baseline blur --steps 16 --no-sanity --seed 0 --out 'a b.png'"
    )
    saliency = compare_command({**settings, "methods": ["smoothgrad"], "layer": "conv1", "box": None})
    assert "--layer" not in saliency and "--mapping" not in saliency and "--box" not in saliency
    with pytest.raises(EngineError, match="one box"):
        compare_command({**settings, "boxes": [[0, 0, 2, 2], [5, 5, 7, 8]]})
