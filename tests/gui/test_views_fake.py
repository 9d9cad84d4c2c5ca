"""The window, Feature maps and Filters views against FakeEngineClient: no engine thread, no TensorFlow.

The fake answers with recorded typed results (tests/gui/fake_engine.py), so these tests check
what the views do with a ModelSummary, maps, kernels and receptive fields, and that they ask
with valid typed params; tests/gui/test_views.py and test_window.py keep the real engine thread
end to end. Run alone, this module must not import TensorFlow (checked after every test).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fake_engine import (
    TINY_SPEC,
    FakeEngineClient,
    failure,
    fake_window,
    layer_kernel,
    layer_output,
    pump,
    recorded_answers,
    tiny_summary,
    wait_until,
    write_digits,
)

from engine.contract import FeatureMapsParams, LayerParams, LoadModelParams, ReceptiveFieldParams
from engine.jobs import Failed, Finished, Progress, Request
from gui.views.feature_maps import render_maps

TINY_PATHS = ["conv1", "pool1", "block", "block/inner_conv", "flatten", "dense1", "probs"]


@pytest.fixture(autouse=True)
def no_tensorflow():
    """Nothing a test here does may import TensorFlow or Keras. Checked in the fresh process that
    test_views_fake.py's subprocess test starts (in a whole-suite run an earlier real-engine test's
    thread may still be importing it in the background)."""
    yield
    if os.environ.get("CONVSCOPE_FAKE_CHILD"):
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules


def test_the_fake_view_tests_run_without_tensorflow_in_seconds():
    """In a fresh process (as on its own), the fake-engine view tests pass and never load TensorFlow:
    the autouse check above then asserts it after every test."""
    if os.environ.get("CONVSCOPE_FAKE_CHILD"):
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        return
    env = {**os.environ, "CONVSCOPE_FAKE_CHILD": "1"}
    files = [str(Path(__file__)), str(Path(__file__).with_name("test_fake_attribution.py"))]
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout
    print(f"fake-engine view tests without TensorFlow: {seconds:.1f} s")


@pytest.fixture
def images(tmp_path):
    return write_digits(tmp_path)


@pytest.fixture
def fake(qapp):
    return FakeEngineClient(recorded_answers())


@pytest.fixture
def window(qapp, fake, images):
    with fake_window(fake, images) as w:
        yield w


def label(w, name):
    """A status-bar label (the window's own before its status bar became a StatusBar widget)."""
    return getattr(getattr(w, "status_bar", None), name, None) or getattr(w, name)


def info(w, path):
    return w.state.layer_info(path)


def maps_ready(view, layer) -> bool:
    return (
        view.maps_layer == layer
        and view.rendered is not None
        and not view.renderer.busy()
        and view.rendered.layout.get("cols") == view.screen_cols()
    )


def filters_ready(view, layer) -> bool:
    return view.weights_layer == layer and view.rendered is not None and not view.renderer.busy()


# ----- the window -----------------------------------------------------------------------------
def test_model_loads_into_the_layer_tree_status_bar_and_predictions(window, fake):
    w = window
    summary = w.state.model
    assert summary == tiny_summary()  # the typed result, as recorded
    assert label(w, "device_label").text() == "CPU (fake)"
    assert w.layer_tree.paths() == TINY_PATHS
    assert label(w, "model_label").text() == f"tiny  (28×28×1, {summary.params:,} params)"
    assert w.state.layer == w.layer_tree.current_path() == "conv1"
    wait_until(lambda: len(w.predictions.rows) == 5)
    assert [label for label, _ in w.predictions.rows] == ["0", "1", "2", "3", "4"]
    assert LoadModelParams.parse(fake.requests_of("load_model")[0].params) == LoadModelParams(TINY_SPEC)
    assert fake.unanswered == []
    assert w.message_bar.isHidden()


def test_unsafe_model_offers_trust_and_load_which_loads_it(window, fake):
    w = window
    other = "fake/lambda.keras"
    fake.answer("load_model", failure("unsafe_model", f"{other} holds code that runs on load"))
    w.open_model(other)
    wait_until(lambda: not fake.busy() and w.message_bar.isVisible())
    assert "holds code" in w.message_bar.label.text()
    assert w.message_bar.action_button.text() == "Trust and load"
    assert w.state.model_spec == TINY_SPEC  # the old model stays

    fake.answer("load_model", lambda p: tiny_summary(p.spec, name="lambda_model"))
    w.message_bar.action_button.click()
    wait_until(lambda: w.state.model_spec == other and not fake.busy())
    assert LoadModelParams.parse(fake.requests_of("load_model")[-1].params) == LoadModelParams(
        other, trust=True
    )
    assert "lambda_model" in label(w, "model_label").text()


def test_a_typed_params_mistake_fails_like_the_engine(window, fake):
    job = fake.submit(Request("filters", {"layer": "conv1", "bogus": 1}, owner="test"))
    wait_until(lambda: fake.ended(job) is not None)
    event = fake.ended(job)
    assert isinstance(event, Failed) and event.kind == "invalid_request"
    assert "unknown parameter(s) bogus" in event.message


# ----- Feature maps ------------------------------------------------------------------------------
def test_feature_maps_draw_the_recorded_maps_for_each_layer(window, fake):
    w = window
    view = w.view("feature_maps")
    assert w.current_view() is view
    for path in ("conv1", "pool1", "block/inner_conv", "dense1"):
        w.layer_tree.select(path)
        wait_until(lambda path=path: maps_ready(view, path))
        expected = layer_output(info(w, path))
        assert np.array_equal(view.maps, expected)
        image = view.grid_image()
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        exported, meta = view.export_image()
        assert np.array_equal(exported, render_maps(expected, **view.render_settings()).image)
        assert meta["layer"] == path
        params = FeatureMapsParams.parse(fake.requests_of("feature_maps")[-1].params)
        assert params.layers == (path,) and params.image is w.state.image
    count = len(fake.requests_of("feature_maps"))
    w.layer_tree.select("block")  # a nested model: nothing to ask the engine
    wait_until(lambda: view.maps is None and "nested model" in view.grid.text.toPlainText())
    assert len(fake.requests_of("feature_maps")) == count
    assert w.message_bar.isHidden() and fake.unanswered == []


def test_f5_runs_the_current_view_again(window, fake):
    w = window
    view = w.view("feature_maps")
    wait_until(lambda: maps_ready(view, "conv1"))
    count = len(fake.requests_of("feature_maps"))
    w.run_action.trigger()
    wait_until(lambda: len(fake.requests_of("feature_maps")) == count + 1 and not fake.busy())
    assert fake.ended(fake.requests_of("feature_maps")[-1].job_id).reason == "done"
    wait_until(lambda: maps_ready(view, "conv1"))


def test_clicking_a_map_asks_for_the_receptive_field_and_boxes_the_unit(window, fake):
    w = window
    view = w.view("feature_maps")
    w.layer_tree.select("pool1")
    wait_until(lambda: maps_ready(view, "pool1"))
    view.open_map(3)
    wait_until(lambda: view.rf is not None)
    assert ReceptiveFieldParams.parse(fake.requests_of("receptive_field")[-1].params).layer == "pool1"
    assert "map 3" in view.detail_title.text()
    assert view.receptive_box(2, 3) == (4.0, 6.0, 8.0, 10.0)  # size 4, stride 2 on a 28×28 input


def test_a_newer_request_of_the_same_view_cancels_the_older(window, fake):
    w = window
    view = w.view("feature_maps")
    wait_until(lambda: maps_ready(view, "conv1"))
    first = view.submit(FeatureMapsParams(image=w.state.image, layers=("conv1",)))
    second = view.submit(FeatureMapsParams(image=w.state.image, layers=("pool1",)))
    w.state.layer = "pool1"  # as selecting it in the tree would
    wait_until(lambda: fake.ended(first) is not None and fake.ended(second) is not None)
    assert fake.ended(first) == Finished(first, "cancelled", None)
    assert fake.ended(second).reason == "done"
    assert fake.current("feature_maps") == second and not fake.is_current(first)
    wait_until(lambda: maps_ready(view, "pool1"))


# ----- Filters -----------------------------------------------------------------------------------
def test_filters_view_shows_the_recorded_kernels(window, fake):
    w = window
    w.tabs.setCurrentIndex(1)
    view = w.view("filters")
    assert w.current_view() is view
    wait_until(lambda: filters_ready(view, "conv1"))
    assert np.array_equal(view.weights, layer_kernel(info(w, "conv1"), 1))
    assert view.info.text().startswith("conv1: 8 filters 3×3×1")
    assert LayerParams.parse(fake.requests_of("filters")[-1].params) == LayerParams(layer="conv1")

    w.layer_tree.select("block/inner_conv")
    wait_until(lambda: filters_ready(view, "block/inner_conv"))
    assert view.weights.shape == (3, 3, 8, 12)
    assert "rows: filters, columns: input channels" in view.info.text()

    count = len(fake.requests_of("filters"))
    w.layer_tree.select("pool1")  # no kernel: the view says so without asking
    wait_until(lambda: view.weights is None and "has no filters" in view.pane.text.toPlainText())
    assert len(fake.requests_of("filters")) == count

    w.layer_tree.select("dense1")
    wait_until(lambda: filters_ready(view, "dense1"))
    assert view.weights.shape == (1, 1, 1452, 16)
    assert w.message_bar.isHidden() and fake.unanswered == []


def test_filters_failure_shows_in_the_view(window, fake):
    w = window
    fake.answer("filters", failure("layer_not_found", "no layer 'conv1' in tiny"))
    w.tabs.setCurrentIndex(1)
    view = w.view("filters")
    wait_until(lambda: not fake.busy() and "no layer 'conv1'" in view.pane.text.toPlainText())
    assert view.weights is None


# ----- the fake client on its own ------------------------------------------------------------------
def test_fake_client_supersedes_pauses_and_streams_like_the_engine(qapp):
    steps = [Progress(0, i + 1, 30, float(i)) for i in range(30)]
    fake = FakeEngineClient({"sleep": [*steps, Finished(0, "done", 30)]})
    seen: list = []

    def on_progress(event):  # a user pressing Pause at steps 3 and 10 of the first job
        seen.append(event)
        if event.job_id == first and event.step in (3, 10):
            fake.pause(first)

    fake.progress.connect(on_progress)
    first = fake.submit(Request("sleep", owner="v"))
    fake.start()
    assert not fake.is_ready
    wait_until(lambda: len(seen) == 3)
    assert fake.is_ready and fake.running is not None and fake.running.job_id == first
    fake.set_lr_scale(first, 0.5)
    assert fake._tokens.get(first).lr_scale == 0.5
    pump(50)
    assert len(fake.events_of(first)) == 3 and fake.busy()  # paused: nothing comes
    fake.pause(first, paused=False)
    wait_until(lambda: len(seen) == 10)
    pump(20)
    assert len(seen) == 10

    second = fake.submit(Request("sleep", owner="v"))  # supersedes the paused first job
    other = fake.submit(Request("sleep", owner="w"))
    wait_until(lambda: not fake.busy())
    assert fake.ended(first) == Finished(first, "cancelled", None)
    assert fake.ended(second) == Finished(second, "done", 30)
    assert len(fake.events_of(second)) == 31  # every step of a job that ran to its end
    assert fake.ended(other).reason == "done"
    assert fake.running is None and fake.owner_of(other) == "w"

    queued = fake.submit(Request("missing", owner="v"))
    wait_until(lambda: fake.ended(queued) is not None)
    assert isinstance(fake.ended(queued), Failed) and fake.unanswered == ["missing"]
    assert fake.shutdown()
    late = fake.submit(Request("sleep", owner="v"))
    pump(20)
    assert fake.ended(late) is None
