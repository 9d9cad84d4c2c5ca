"""The Attribution tab's Sanity check dialog on the real engine thread and the tiny fixture model.

The tab is built standalone on its own AppState and EngineClient (conftest.py's attribution_tab,
shared with test_compare_dialog.py) with the tiny 28x28 grey model (conv1, pool1, block/inner_conv,
dense1, probs): four layers with weights, so a check has five maps ("original", then probs, dense1,
block/inner_conv, conv1 re-initialized). Waits are QEventLoop-based (fake_engine.wait_until), never QTest.qWait.
"""

from __future__ import annotations

import json
import shlex

import pytest
from fake_engine import check_export_refuses_overwrite_and_reproduces, wait_until

from engine.attribution.contract import CamParams, SaliencyParams
from gui.views.sanity_dialog import OWNER, sanity_command, sanity_params

TIMEOUT = 60_000
STEPS = ("original", "probs", "dense1", "block/inner_conv", "conv1")


@pytest.fixture
def view(attribution_tab):
    """The standalone Attribution tab of tests/gui/conftest.py on the tiny model, its first map drawn."""
    return attribution_tab


def _checked(view):
    """Press the tab's Sanity check button and wait for the dialog's figure."""
    view.sanity_button.click()
    dialog = view.sanity_dialog
    wait_until(lambda: dialog.figure is not None and not dialog.running, TIMEOUT)
    return dialog


def test_button_shows_the_figure_and_the_verdict(view):
    assert view.sanity_button.text() == "Sanity check"
    dialog = _checked(view)
    assert dialog.isVisible() and not dialog.isModal()
    res = dialog.output.result
    assert res.steps == STEPS
    assert res.method == "gradcam" and res.order == "cascade"
    assert res.layer == "block/inner_conv"  # the tab's layer: the engine's default here
    # the figure: the photo, then one panel per step, labelled with the layer re-initialized
    labels = [p.label for p in dialog.spec.panels]
    assert labels == ["photo", "original", "probs", "dense1", "inner_conv", "conv1"]
    assert len(dialog.spec.panels) == len(res.steps) + 1
    assert dialog.figure.ndim == 3 and dialog.figure.dtype.name == "uint8"
    assert dialog.pane.image_shape == dialog.figure.shape[:2]
    assert res.verdict in dialog.verdict_text()
    assert dialog.verdict_text().startswith("Passed" if res.passed else "Failed")
    assert dialog.verdict.isVisible() and res.verdict.split(":")[0] in dialog.verdict.text()
    assert "Grad-CAM" in dialog.subject.text() and "block/inner_conv" in dialog.subject.text()
    assert view.client.owner_of(dialog.job_id) == OWNER  # its own owner: the tab's map stays
    assert view.result is not None and view.overlay_image() is not None
    assert dialog.export_button.isEnabled() and not dialog.progress_row.isVisible()

    dialog.set_order("independent")  # the order choice runs the check again
    assert dialog.running and dialog.progress_row.isVisible()
    wait_until(lambda: dialog.figure is not None and dialog.output.result.order == "independent", TIMEOUT)
    wait_until(lambda: not dialog.running, TIMEOUT)
    assert dialog.output.result.steps == STEPS
    assert "independent" in dialog.spec.title


def test_cancel_stops_a_run(view):
    view.sanity_button.click()
    dialog = view.sanity_dialog
    assert dialog.running and dialog.cancel_button.isEnabled()
    job = dialog.job_id
    ended: list = []
    dialog.client.finished.connect(lambda e: ended.append(e) if e.job_id == job else None)
    dialog.cancel_button.click()
    wait_until(lambda: not dialog.running, TIMEOUT)
    assert [e.reason for e in ended] == ["cancelled"]
    assert dialog.output is None and dialog.figure is None
    assert "cancelled" in dialog.note.text()
    assert not dialog.export_button.isEnabled()
    dialog.again_button.click()  # and it runs again
    wait_until(lambda: dialog.figure is not None and not dialog.running, TIMEOUT)
    assert dialog.output.result.steps == STEPS


def test_export_writes_png_and_sidecar_with_the_command(view, tmp_path, monkeypatch):

    view.set_target(3)
    wait_until(lambda: view.result is not None and view.result.target == 3, TIMEOUT)
    dialog = _checked(view)
    assert dialog.output.result.target == 3
    out = tmp_path / "sanity.png"
    assert dialog.export_to(out)
    wait_until(lambda: bool(dialog.written), TIMEOUT)
    sidecar = tmp_path / "sanity.png.json"
    assert dialog.written == [out, sidecar]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(sidecar.read_text())
    meta = doc["settings"]
    res = dialog.output.result
    assert meta["kind"] == "sanity" and meta["figure"] == "sanity"
    assert meta["steps"] == list(STEPS) and meta["passed"] == res.passed and meta["verdict"] == res.verdict
    assert meta["order"] == "cascade" and meta["mapping"] == view.mapping
    command = doc["command"]
    assert command == meta["command"]
    argv = shlex.split(command)
    assert argv[:4] == ["python", "main.py", "export", "sanity"]
    assert argv[argv.index("--target") + 1] == "3" and argv[argv.index("--out") + 1] == str(out)
    assert argv[argv.index("--image") + 1] == view.state.image_spec

    # declining the overwrite keeps the file; the sidecar's command writes the same figure
    check_export_refuses_overwrite_and_reproduces(dialog, out, argv, monkeypatch)


def test_params_and_command_follow_the_tab():
    cam = sanity_params(CamParams(image="x.png", method="layercam", target=2, mapping="roi"), "independent")
    assert (cam.method, cam.target, cam.order, cam.layer) == ("layercam", 2, "independent", None)
    assert cam.method_kwargs() == {"mapping": "roi"}
    sal = sanity_params(SaliencyParams(image="x.png", method="smoothgrad"), "cascade")
    assert sal.method == "smoothgrad" and sal.method_kwargs() == {}
    line = sanity_command(
        {
            "model": "m.keras",
            "image": "builtin:shape_star",
            "method": "gradcam",
            "order": "cascade",
            "seed": 0,
        },
        out="a b.png",
    )
    assert line == (
        "python main.py export sanity --model m.keras --image builtin:shape_star --method gradcam "
        "--order cascade --seed 0 --out 'a b.png'"
    )
