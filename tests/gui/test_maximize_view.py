"""The Maximize and DeepDream tabs: a short job runs on the real engine thread and the panes get frames.

The views are built standalone on their own AppState and EngineClient (no main window), with the
tiny 28x28 grey fixture model loaded through the "load_model" job as the window would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer
from PySide6.QtTest import QTest

from engine.jobs import Finished, Request


def _process_until(predicate, timeout_ms: int = 60_000) -> None:
    timer = QElapsedTimer()
    timer.start()
    while not predicate():
        QTest.qWait(20)  # an event loop, not a busy processEvents() loop
        if timer.elapsed() > timeout_ms:
            raise TimeoutError("timed out waiting for the engine")


@pytest.fixture(scope="module")
def setup(qapp, assets):
    """(state, client) with the engine thread ready, the tiny model loaded, layer conv1 and an image selected."""
    from engine.images import load_image
    from gui.engine_thread import EngineClient
    from gui.state import AppState

    client = EngineClient()
    client.start()
    _process_until(lambda: client.is_ready)
    done: list[Finished] = []
    client.finished.connect(lambda e: done.append(e) if isinstance(e, Finished) else None)
    request = Request("load_model", {"spec": str(assets["model"])}, owner="test")
    client.submit(request)
    _process_until(lambda: any(e.job_id == request.job_id for e in done))
    state = AppState()
    state.set_model(next(e for e in done if e.job_id == request.job_id).result)
    state.set_layer("conv1")
    path = str(assets["images"][0])
    state.set_image(path, load_image(path))
    yield state, client
    client.shutdown()


@pytest.fixture
def ready(setup, qtbot):
    """Reload the fixture model before each test (other GUI tests may have loaded another one)."""
    state, client = setup
    done: list[Finished] = []
    client.finished.connect(lambda e: done.append(e))
    request = Request("load_model", {"spec": state.model["spec"]}, owner="test")
    client.submit(request)
    qtbot.waitUntil(lambda: any(e.job_id == request.job_id for e in done), timeout=60_000)
    client.finished.disconnect()
    state.set_layer("conv1")
    return state, client


@pytest.fixture
def maximize_view(ready, qtbot):
    from gui.views.maximize import MaximizeView

    state, client = ready
    view = MaximizeView(state, client)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    view.set_active(True)
    yield view
    view.stop()
    qtbot.waitUntil(lambda: not client.busy(), timeout=30_000)


def test_maximize_tab_runs_a_job_and_the_pane_receives_frames(maximize_view, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("CONVSCOPE_MAX_STEPS", "40")
    view = maximize_view
    view.set_mode("channel")
    view.channel_spin.setValue(3)
    assert view.objective() == "conv1:3"
    view.panel.run_button.click()
    assert view.panel.stop_button.isEnabled()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert view.frames_seen >= 2
    assert view.pane.image_shape == (28, 28)
    assert len(view.curve.steps) == 40 and view.curve.losses[-1] > view.curve.losses[0]
    assert not view.panel.stop_button.isEnabled() and view.panel.gif_button.isEnabled()
    assert view.analytic.isVisibleTo(view)  # conv1 reads the input: the analytic maximizer is shown
    assert "objective" in view.report.text() and "did not move" not in view.report.text()
    image, settings = view.export_image()
    assert image.dtype == np.uint8 and image.shape == (28, 28, 3)
    assert settings["objective"] == "conv1:3" and settings["kind"] == "maximize"
    written = view.export_gif(tmp_path / "run.gif")
    assert written[0].exists() and json.loads(written[1].read_text())["settings"]["frames"] >= 2
    with pytest.raises(Exception, match="exists"):
        view.export_gif(tmp_path / "run.gif")


def test_a_silent_unit_gets_a_hint(maximize_view) -> None:
    """A run whose objective never moved (no gradient: a ReLU that never fires) says so and what to try."""
    maximize_view._show_extras({"start_objective": [4.9e-6], "objective": [4.9e-6], "losses": [4.9e-6] * 20})
    assert "did not move" in maximize_view.report.text() and "Before the ReLU" in maximize_view.report.text()
    maximize_view._show_extras({"start_objective": [0.1], "objective": [2.5], "losses": [0.1, 2.5]})
    assert "did not move" not in maximize_view.report.text()


def test_all_channels_fill_the_grid_chunk_by_chunk(maximize_view, qtbot, monkeypatch):
    import gui.views.maximize as mview

    monkeypatch.setattr(mview, "CHUNK", 3)
    view = maximize_view
    offsets: list[int] = []
    original = view.job_frame
    monkeypatch.setattr(
        view, "job_frame", lambda tag, e: (offsets.append(e.info.get("offset", 0)), original(tag, e))
    )
    view.set_mode("all")
    assert view.objective() == "conv1:*"
    view.start()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert view.images.shape == (8, 28, 28, 1)
    assert {0, 3, 6} <= set(offsets)
    grid_shape = view.pane.image_shape
    assert grid_shape is not None and grid_shape[0] > 28 and grid_shape[1] > 28


def test_class_mode_reports_the_prediction(maximize_view, qtbot):
    view = maximize_view
    view.set_mode("class")
    view.class_box.setCurrentIndex(7)
    assert view.objective() == "class:7"
    view.start()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert "the network calls this" in view.report.text()
    assert view.curve.prob_curve.isVisible()


def test_stop_ends_the_job_within_a_step(maximize_view, qtbot, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_MAX_STEPS", "1000000")
    view = maximize_view
    view.set_mode("layer")
    view.steps_spin.setValue(100_000)
    view.start()
    qtbot.waitUntil(lambda: view.frames_seen >= 2, timeout=60_000)
    view.panel.pause_button.click()  # pause, then stop while paused: the job must still end
    view.panel.stop_button.click()
    qtbot.waitUntil(lambda: not view.client.busy(), timeout=10_000)
    seen = view.frames_seen
    qtbot.wait(100)
    assert view.frames_seen == seen and view.result is None
    assert view.panel.status.text() == "stopped"


def test_bad_expression_shows_the_engine_error(maximize_view, qtbot):
    view = maximize_view
    view.set_mode("expression")
    view.expr_edit.setText("nope:1")
    view.start()
    qtbot.waitUntil(lambda: "no layer 'nope'" in view.panel.status.text(), timeout=30_000)
    assert not view.panel.stop_button.isEnabled()


def test_dream_tab_runs_a_job_and_the_pane_receives_frames(ready, qtbot, monkeypatch, tmp_path):
    from gui.views.dream import DreamView

    monkeypatch.setenv("CONVSCOPE_MAX_STEPS", "6")
    state, client = ready
    view = DreamView(state, client)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    view.set_active(True)
    state.set_layer("block/inner_conv")
    assert view.layers_edit.text() == "block/inner_conv"
    view.channel_spin.setValue(2)
    assert view.layers_edit.text() == "block/inner_conv:2"
    view.size_spin.setValue(20)  # the 28x28 image is shrunk to 20x20 (a smaller one would keep its size)
    view.octaves_spin.setValue(2)
    view.start()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert view.frames_seen >= 1
    assert view.pane.image_shape == (20, 20)
    assert len(view.curve.losses) == 12
    image, settings = view.export_image()
    assert image.shape == (20, 20, 3) and settings["layers"] == "block/inner_conv:2"
    assert view.export_gif(tmp_path / "dream.gif")[0].exists()
    view.stop()
