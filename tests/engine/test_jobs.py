"""The job runner: events, cancel, failure isolation, request immutability."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine import jobs
from engine.jobs import CancelToken, Failed, Finished, Progress, Request, run, run_sync


def test_ids_increase_and_requests_are_frozen():
    a, b = Request("sleep"), Request("sleep")
    assert b.job_id > a.job_id
    with pytest.raises(AttributeError):
        a.kind = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.params["x"] = 1  # type: ignore[index]


def test_progress_then_finished():
    events = list(run(Request("sleep", {"steps": 3, "seconds": 0})))
    assert [type(e) for e in events] == [Progress, Progress, Progress, Finished]
    assert all(e.job_id == events[0].job_id for e in events)
    assert events[-1].reason == "done" and events[-1].result == 3


def test_cancel_midway_stops_within_one_step():
    token = CancelToken()
    seen = []
    for event in run(Request("sleep", {"steps": 100, "seconds": 0.01}), token):
        seen.append(event)
        if isinstance(event, Progress) and event.step == 2:
            token.cancel()
    assert isinstance(seen[-1], Finished) and seen[-1].reason == "cancelled"
    assert sum(isinstance(e, Progress) for e in seen) == 2


def test_cancel_from_another_thread():
    token = CancelToken()
    timer = threading.Timer(0.05, token.cancel)
    timer.start()
    events = list(run(Request("sleep", {"steps": 1000, "seconds": 0.005}), token))
    assert events[-1].reason == "cancelled" and len(events) < 1000


def test_errors_become_failed_and_runner_lives_on(tiny_cnn_path):
    failed = list(
        run(
            Request(
                "feature_maps",
                {"model": str(tiny_cnn_path), "image": np.zeros((8, 8, 3), np.float32), "layers": ["nope"]},
            )
        )
    )
    assert isinstance(failed[-1], Failed) and "no layer 'nope'" in failed[-1].message
    assert "Traceback" in failed[-1].detail
    assert failed[-1].kind == "layer_not_found"
    unknown = list(run(Request("no_such_kind")))
    assert isinstance(unknown[-1], Failed) and "unknown job kind" in unknown[-1].message
    ok = run_sync(
        Request(
            "feature_maps",
            {"model": str(tiny_cnn_path), "image": np.zeros((8, 8, 3), np.float32), "layers": ["conv1"]},
        )
    )
    assert ok["conv1"].shape == (14, 14, 4)


def test_unexpected_exception_is_contained():
    @jobs.handler("boom_test")
    def _boom(params, token):
        raise ZeroDivisionError("divided by zero")

    events = list(run(Request("boom_test")))
    assert isinstance(events[-1], Failed) and events[-1].message == "ZeroDivisionError: divided by zero"
    assert events[-1].kind == "internal"


def test_failed_carries_the_kind_of_error(tmp_path):
    """A program picks a remedy by Failed.kind, never by matching message text."""

    from engine.errors import OptimizationDiverged

    @jobs.handler("diverge_test")
    def _diverge(params, token):
        raise OptimizationDiverged("optimization diverged at step 3")

    @jobs.handler("memory_test")
    def _memory(params, token):
        raise MemoryError

    assert list(run(Request("diverge_test")))[-1].kind == "diverged"
    assert list(run(Request("memory_test")))[-1].kind == "out_of_memory"
    assert list(run(Request("no_such_kind")))[-1].kind == "invalid_request"
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"plain text, not a PNG")
    failed = list(run(Request("predict", {"model": "builtin:digits", "image": str(bad)})))[-1]
    assert isinstance(failed, Failed) and failed.kind == "not_an_image"
    missing = list(run(Request("load_model", {"spec": str(tmp_path / "nothing.keras")})))[-1]
    assert missing.kind == "model_load"


def test_generator_handler_events_are_restamped():
    @jobs.handler("gen_test")
    def _gen(params, token):
        yield Progress(0, 1, 2)
        yield jobs.Frame(0, 1, np.zeros((1, 2, 2, 1), np.float32))
        return "ok"

    req = Request("gen_test")
    events = list(run(req))
    assert [e.job_id for e in events] == [req.job_id] * 3 and events[-1].result == "ok"


def test_load_model_sets_current_model(tiny_cnn_path):
    summary = run_sync(Request("load_model", {"spec": str(tiny_cnn_path)}))
    assert summary.name == "tiny" and summary.device in ("CPU",) or summary.device.startswith("GPU")
    assert [i.path for i in summary.layers][:2] == ["conv1", "pool1"]
    probs = run_sync(Request("predict", {"image": np.zeros((16, 16, 3), np.float32)}))
    assert probs.shape == (3,) and abs(float(probs.sum()) - 1) < 1e-5
    weights = run_sync(Request("filters", {"layer": "conv1"}))
    assert weights.shape == (3, 3, 3, 4)
    field = run_sync(Request("receptive_field", {"layer": "conv2"}))
    assert field.size == (8, 8) and field.stride == (2, 2)
