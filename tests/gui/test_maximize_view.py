"""The Maximize and DeepDream tabs: a short job runs on the real engine thread and the panes get frames.

The views are built standalone on their own AppState and EngineClient (no main window), with the
tiny 28x28 grey fixture model loaded through the "load_model" job as the window would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, QEventLoop, QSettings, QTimer

from engine.jobs import Finished, Request
from engine.maximize.objective_terms import channel, class_logit, neuron


def _pump(ms: int) -> None:
    """Run the Qt event loop for ms milliseconds (QTest.qWait would hold the GIL from the engine thread)."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def _process_until(predicate, timeout_ms: int = 60_000) -> None:
    timer = QElapsedTimer()
    timer.start()
    while not predicate():
        _pump(20)
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
    request = Request("load_model", {"spec": state.model.spec}, owner="test")
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
    assert str(view.objective()) == "conv1:3"
    view.panel.run_button.click()
    assert view.panel.stop_button.isEnabled()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert view.frames_seen >= 2
    assert view.pane.image_shape == (28, 28)
    assert len(view.curve.steps) == 40 and view.curve.losses[-1] > view.curve.losses[0]
    assert not view.panel.stop_button.isEnabled() and view.panel.gif_button.isEnabled()
    assert view.analytic.isVisibleTo(view)  # conv1 reads the input: the analytic maximizer is shown
    assert "objective" in view.report.text() and "silent" not in view.report.text()
    # auto read point (None): conv1 reads the input, so the engine read it after its ReLU
    assert view.run_settings["pre_activation"] is None and not view.remedy.isVisibleTo(view)
    assert view.result.settings["pre_activation"] is False
    image, settings = view.export_image()
    assert image.dtype == np.uint8 and image.shape == (28, 28, 3)
    assert settings["objective"] == "conv1:3" and settings["kind"] == "maximize"
    written = view.export_gif(tmp_path / "run.gif")
    assert written[0].exists() and json.loads(written[1].read_text())["settings"]["frames"] >= 2
    with pytest.raises(Exception, match="exists"):
        view.export_gif(tmp_path / "run.gif")


def _handle(state):
    import engine

    return engine.load_model(state.model.spec)


def _wait_units(view) -> None:
    _process_until(lambda: view.activity is not None and view.scan is not None)


def test_the_tab_opens_on_the_most_active_channel_and_reports_dead_units(maximize_view):
    """On a layer change the tab picks the channel with the largest mean activation over the sample
    images that fit the model (not channel 0) and names dead units with the evidence of its scan."""
    import engine
    from engine.maximize.units import sample_batch

    view = maximize_view
    h = _handle(view.state)
    images, specs = sample_batch(h)
    assert "builtin:digit_7" in specs and "builtin:astronaut" not in specs  # grey samples fit a grey model
    expected = {layer: engine.unit_activity(h, layer, images) for layer in ("conv1", "block/inner_conv")}
    assert any(a.best != 0 for a in expected.values()), "the check needs a layer whose best channel is not 0"
    for layer, act in expected.items():
        view.state.set_layer(layer)
        _wait_units(view)
        assert view.activity.layer == layer
        assert view.channel_spin.value() == act.best
        assert view.objective() == channel(layer, act.best)
        note = view.unit_note.text()
        assert f"most selective on the shipped samples that fit the model: channel {act.best}" in note
        if act.dead:
            assert act.dead_note().replace("(", "").split(" of ")[0] in note and "scanned images" in note
        else:
            assert f"no dead channels: each fires on some of the {len(specs)} scanned images" in note
    # a channel the user picked stays when the same layer is shown again
    view.channel_spin.setValue(1 if view.channel_spin.value() != 1 else 2)
    chosen = view.channel_spin.value()
    view.refresh()
    assert view.channel_spin.value() == chosen


def test_after_the_activation_is_an_unchecked_option_saved_under_a_new_key(maximize_view, tmp_path):
    view = maximize_view
    assert view.post_check.text() == "After the activation" and not view.post_check.isChecked()
    assert view.params().pre_activation is None  # auto: before the activation, except a first-layer conv
    view.post_check.setChecked(True)
    assert view.params().pre_activation is False
    old = QSettings(str(tmp_path / "old.ini"), QSettings.Format.IniFormat)
    old.setValue("pre_activation", False)  # saved by the old "Before the ReLU" checkbox, unchecked
    view.restore_settings(old)
    assert not view.post_check.isChecked() and view.params().pre_activation is None
    view.post_check.setChecked(True)
    new = QSettings(str(tmp_path / "new.ini"), QSettings.Format.IniFormat)
    view.save_settings(new)
    view.post_check.setChecked(False)
    view.restore_settings(new)
    assert view.post_check.isChecked()
    view.post_check.setChecked(False)


def test_a_silent_unit_stops_early_and_the_remedy_reruns(maximize_view, monkeypatch):
    """After the activation, from a flat grey start some conv1 units never fire: the run stops after its
    first steps, says so, and one click reads the unit before its activation and runs again."""
    import engine

    monkeypatch.setenv("CONVSCOPE_MAX_STEPS", "20")
    view = maximize_view
    _wait_units(view)
    h = _handle(view.state)
    probe = list(engine.maximize(h, "conv1:*", steps=3, init="grey", pre_activation=False))[-1]
    silent = probe.info["silent"]
    assert silent, "a flat grey start leaves some conv1 unit of the fixture silent after its ReLU"
    view.set_mode("channel")
    view.channel_spin.setValue(silent[0])
    view.start_box.setCurrentIndex(view.start_box.findData("grey"))
    view.post_check.setChecked(True)
    view.start()
    _process_until(lambda: view.result is not None)
    assert view.result.stopped == "silent" and len(view.result.losses) < 20
    assert "unit is silent from this start" in view.report.text()
    assert view.panel.status.text().startswith("stopped early")
    assert view.remedy.isVisibleTo(view) and view.pre_button.isVisibleTo(view)
    assert view.photo_button.isVisibleTo(view)
    view.pre_button.click()
    assert view.result is None and not view.post_check.isChecked()
    _process_until(lambda: view.result is not None)
    assert view.run_settings["pre_activation"] is True and view.result.settings["pre_activation"] is True
    assert view.result.stopped == "" and len(view.result.losses) == 20
    assert view.result.objective[0] > view.result.start_objective[0]
    assert "silent" not in view.report.text() and not view.remedy.isVisibleTo(view)
    # the other remedy starts from the photo
    view.post_check.setChecked(True)
    view.start()
    _process_until(lambda: view.result is not None)
    view.photo_button.click()
    assert view.start_box.currentData() == "photo"
    _process_until(lambda: view.result is not None)
    assert view.result.settings["init"] == "photo"
    view.post_check.setChecked(False)
    view.start_box.setCurrentIndex(view.start_box.findData("noise"))


def test_the_curve_shows_real_values_and_no_range_while_empty(maximize_view):
    curve = maximize_view.curve
    curve.reset()
    left = curve.getPlotItem().getAxis("left")
    assert curve.placeholder.isVisible() and not left.style["showValues"]
    for step, value in enumerate((0.0001, 0.0002, 0.0004), start=1):
        curve.add(step, value)
    curve.getPlotItem().vb.autoRange()
    assert not curve.placeholder.isVisible() and left.style["showValues"]
    assert left.autoSIPrefixScale == 1.0 and "(x" not in left.labelString()
    assert curve.getPlotItem().getAxis("bottom").autoSIPrefixScale == 1.0
    curve.reset()
    assert curve.placeholder.isVisible() and curve.empty


def test_the_image_gets_most_of_the_room(maximize_view):
    view = maximize_view
    view.resize(1200, 800)
    _pump(50)
    assert view.pane.height() >= 0.6 * view.height()
    assert view.curve.height() <= 0.25 * view.height()
    assert view.pane.width() >= 2 * view.analytic.maximumWidth()


def test_all_channels_fill_the_grid_chunk_by_chunk(maximize_view, qtbot, monkeypatch):
    import gui.views.maximize as mview

    monkeypatch.setattr(mview, "CHUNK", 3)
    view = maximize_view
    offsets: list[int] = []
    original = view.job_frame
    monkeypatch.setattr(view, "job_frame", lambda tag, e: (offsets.append(e.info.offset), original(tag, e)))
    view.set_mode("all")
    assert view.objective() == channel("conv1", "*") and view.params().chunk == 3
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
    assert view.objective() == class_logit(7)
    view.start()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60_000)
    assert "the network calls this" in view.report.text()
    assert view.curve.prob_curve.isVisible()


def test_stop_ends_the_job_within_a_step(maximize_view, qtbot, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_MAX_STEPS", "1000000")
    view = maximize_view
    view.set_mode("layer")
    view.steps_spin.setValue(100_000)
    calls: list[tuple] = []
    pause, set_lr_scale = view.client.pause, view.client.set_lr_scale
    monkeypatch.setattr(view.client, "pause", lambda *a: (calls.append(("pause", *a)), pause(*a)))
    monkeypatch.setattr(view.client, "set_lr_scale", lambda *a: (calls.append(("lr", *a)), set_lr_scale(*a)))
    view.start()
    job_id = view.jobs[""]
    qtbot.waitUntil(lambda: view.frames_seen >= 2, timeout=60_000)
    view.panel.lr.setValue(2 * view.run_lr)  # the step size acts on the running job's handle
    view.panel.pause_button.click()  # pause, then stop while paused: the job must still end
    assert calls == [("lr", job_id, 2.0), ("pause", job_id, True)]
    paused_at = view.frames_seen
    _pump(300)
    # at most the frames already on their way: one in the client's mailbox, one from the step that
    # was running when the pause arrived (the loop checks it between steps)
    assert view.frames_seen <= paused_at + 2
    held = view.frames_seen
    _pump(300)
    assert view.frames_seen == held  # paused: nothing more comes
    view.panel.stop_button.click()
    qtbot.waitUntil(lambda: not view.client.busy(), timeout=10_000)
    seen = view.frames_seen
    _pump(100)
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


def test_a_unit_handed_in_from_another_tab_is_kept(maximize_view):
    """The Dataset tab hands a unit over with set_objective: the tab's own pick must not replace it."""
    import engine
    from engine.maximize.units import sample_batch

    view = maximize_view
    _wait_units(view)
    h = _handle(view.state)
    best = engine.unit_activity(h, "block/inner_conv", sample_batch(h)[0]).best
    unit = (best + 1) % 12
    view.set_objective(f"block/inner_conv:{unit}")
    assert view.state.layer == "block/inner_conv" and view.mode == "channel"
    _process_until(lambda: view.activity is not None and view.activity.layer == "block/inner_conv")
    _process_until(lambda: view.scan is not None)
    assert view.channel_spin.value() == unit and view.objective() == channel("block/inner_conv", unit)
    view.set_objective("conv1:2@5,6")
    assert view.objective() == neuron("conv1", 2, 5, 6) and view.mode == "neuron"
    view.set_objective(channel("conv1", 3))  # an objective object is handed in the same way
    assert view.mode == "channel" and view.objective() == channel("conv1", 3)
    view.set_objective("0.5*conv1:1 - class:2")
    assert view.mode == "expression" and str(view.objective()) == "0.5*conv1:1 - class:2"
    assert view.objective() == 0.5 * channel("conv1", 1) - class_logit(2)
