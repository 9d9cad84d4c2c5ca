"""The engine thread on its own: ready signal, one job at a time, cancel-on-newer, failures, frames, shutdown."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine import jobs
from engine.jobs import Finished, Frame, Progress, Request
from gui.engine_thread import EngineClient

N_FRAMES = 400


@jobs.handler("gui_test_stream")
def _stream(params, token):
    """A fast Frame stream (far more frames than a screen shows)."""
    n = int(params.get("frames", N_FRAMES))
    for i in range(n):
        yield Frame(0, i, {"maps": np.full((4, 4, 2), i, np.float32)})
        yield Progress(0, i + 1, n)
        time.sleep(0.0005)
    return n


@jobs.handler("gui_test_raise")
def _raise(params, token):
    raise RuntimeError("boom in a job")


@pytest.fixture
def client(qtbot):
    c = EngineClient()
    events: list = []
    c.finished.connect(events.append)
    c.failed.connect(events.append)
    c.frame.connect(events.append)
    c.progress.connect(events.append)
    c.events = events
    c.start()
    qtbot.waitUntil(lambda: c.is_ready, timeout=60_000)
    yield c
    assert c.shutdown(timeout_s=30)
    assert not c._thread.isRunning()


def ended(c, job_id) -> list:
    return [e for e in c.events if e.job_id == job_id and not isinstance(e, Frame | Progress)]


def test_ready_reports_device(client):
    assert client.device == "CPU" or client.device.startswith("GPU")


def test_newer_request_of_same_owner_cancels_older(qtbot, client):
    first = client.submit(Request("sleep", {"steps": 200, "seconds": 0.02}, owner="v"))
    qtbot.waitUntil(
        lambda: any(isinstance(e, Progress) and e.job_id == first for e in client.events), timeout=10_000
    )
    second = client.submit(Request("sleep", {"steps": 2, "seconds": 0.01}, owner="v"))
    other = client.submit(Request("sleep", {"steps": 2, "seconds": 0.01}, owner="w"))
    qtbot.waitUntil(lambda: bool(ended(client, second) and ended(client, other)), timeout=10_000)
    assert ended(client, first)[0].reason == "cancelled"
    assert ended(client, second)[0].reason == "done"
    assert ended(client, other)[0].reason == "done"
    assert client.current("v") == second
    assert not client.is_current(first) and client.is_current(second)


def test_failed_job_then_next_request_works(qtbot, client):
    bad = client.submit(Request("gui_test_raise", owner="x"))
    unknown = client.submit(Request("no_such_kind", owner="y"))
    good = client.submit(Request("sleep", {"steps": 1, "seconds": 0.0}, owner="z"))
    qtbot.waitUntil(lambda: bool(ended(client, good)), timeout=10_000)
    assert "boom in a job" in ended(client, bad)[0].message
    assert "unknown job kind" in ended(client, unknown)[0].message
    assert ended(client, good)[0].reason == "done"


def test_frames_are_coalesced_and_the_last_arrives_before_finished(qtbot, client):
    job = client.submit(Request("gui_test_stream", {"frames": N_FRAMES}, owner="s"))
    qtbot.waitUntil(lambda: bool(ended(client, job)), timeout=30_000)
    mine = [e for e in client.events if e.job_id == job]
    frames = [e for e in mine if isinstance(e, Frame)]
    assert frames and len(frames) <= N_FRAMES
    assert frames[-1].step == N_FRAMES - 1  # the newest frame is never lost
    assert isinstance(mine[-1], Finished) and mine[-1].result == N_FRAMES
    steps = [e.step for e in frames]
    assert steps == sorted(steps)


def test_cancel_all_cancels_queued_jobs(qtbot, client):
    ids = [client.submit(Request("sleep", {"steps": 50, "seconds": 0.02}, owner=f"o{i}")) for i in range(3)]
    client.cancel_all()
    qtbot.waitUntil(lambda: all(ended(client, j) for j in ids), timeout=10_000)
    assert [ended(client, j)[0].reason for j in ids] == ["cancelled"] * 3
    assert not client.busy()


def test_shutdown_during_a_long_job_is_prompt(qtbot):
    c = EngineClient()
    c.start()
    qtbot.waitUntil(lambda: c.is_ready, timeout=60_000)
    c.submit(Request("sleep", {"steps": 10_000, "seconds": 0.05}, owner="long"))
    qtbot.waitUntil(lambda: c.running is not None, timeout=10_000)
    assert c.shutdown(timeout_s=10)
    assert not c._thread.isRunning()
    c.submit(Request("sleep", owner="after"))  # ignored after shutdown, no error
