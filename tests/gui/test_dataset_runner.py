"""The Dataset tab's "Run on" choice against FakeEngineClient (no engine thread, no TensorFlow):
Ray enables the address and workers, a scan carries runner/address/workers in its ScanParams
while the cache lookups stay local, a bad address is refused before anything is submitted, the
engine's first Progress message ("starting Ray workers…") shows, and the choice survives settings.
"""

from __future__ import annotations

import pytest
from fake_engine import FakeEngineClient, tiny_summary, wait_until
from PySide6.QtCore import QSettings

from engine.dataset.contract import ScanParams
from engine.jobs import Progress
from gui.views.dataset_runner import address_problem

RAY_START = "starting Ray workers…"


def scan_answer(params: ScanParams):
    """A lookup finds nothing cached; a scan says it is starting, moves once, and ends without a result."""
    if params.cache_only:
        return None
    if params.runner == "ray":
        yield Progress(0, 0, 0, None, RAY_START)
    yield Progress(0, 5, 10, None, "5/10 images · 3 images/s")
    return None


@pytest.fixture
def fake(qapp):
    client = FakeEngineClient({"scan": scan_answer})
    client.start()
    wait_until(lambda: client.is_ready)
    yield client
    client.shutdown()


def open_view(qtbot, fake):
    from gui.state import AppState
    from gui.views.dataset import DatasetView

    state = AppState()
    v = DatasetView(state, fake)
    qtbot.addWidget(v)
    v.show()
    v.set_active(True)
    state.set_model(tiny_summary())
    v.set_layer("conv1")
    wait_until(lambda: not fake.busy())
    return v


@pytest.fixture
def view(qtbot, fake):
    return open_view(qtbot, fake)


def scans(fake) -> list[ScanParams]:
    """The params of every scan request so far (lookups included), in order."""
    return [ScanParams.parse(r.params) for r in fake.requests_of("scan")]


def choose_ray(v, address: str = "", workers: int = 0) -> None:
    v.run_on.runner_box.setCurrentIndex(v.run_on.runner_box.findData("ray"))
    v.run_on.address_edit.setText(address)
    v.run_on.workers_box.setValue(workers)


def test_choosing_ray_enables_the_address_and_workers(view):
    r = view.run_on
    fields = (r.address_edit, r.workers_box)
    assert r.runner == "local" and r.runner_box.currentText() == "this computer"
    assert not any(w.isEnabled() for w in fields)
    assert r.address_edit.placeholderText() == "local (start one here)"
    assert r.workers_box.text() == "auto" and r.workers is None
    assert "pip install" in r.runner_box.toolTip() and "same" in r.runner_box.toolTip()
    choose_ray(view)
    assert r.runner == "ray" and r.runner_box.currentText() == "Ray cluster"
    assert all(w.isEnabled() for w in fields)
    r.set_runner("local")
    assert not any(w.isEnabled() for w in fields)


def test_a_ray_scan_carries_runner_address_and_workers_and_lookups_stay_local(view, fake):
    v = view
    choose_ray(v, " ray://head.lan:10001 ", 4)
    shown = []
    fake.progress.connect(lambda e: shown.append(v.progress_bar.text()))
    v.run_scan()
    assert v.progress_bar.text() == RAY_START  # before the cluster answers
    assert "on ray://head.lan:10001 with 4 workers" in v.info.text()
    wait_until(lambda: v.run_button.isEnabled() and not fake.busy())
    *lookups, scan = scans(fake)
    assert (scan.runner, scan.address, scan.workers, scan.cache_only) == (
        "ray",
        "ray://head.lan:10001",
        4,
        False,
    )
    assert scan.layer == "conv1" and scan.source == v.source
    assert lookups and all(p.cache_only and p.runner == "local" and p.address is None for p in lookups)
    assert shown == [RAY_START, "5/10 images · 3 images/s"]  # the engine's messages, in the bar

    # empty address and auto workers: None each (start a local cluster, one worker per CPU)
    choose_ray(v, "", 0)
    v.run_scan()
    wait_until(lambda: v.run_button.isEnabled() and not fake.busy())
    assert (scans(fake)[-1].runner, scans(fake)[-1].address, scans(fake)[-1].workers) == ("ray", None, None)

    # back on this computer, the Ray fields no longer travel
    v.run_on.set_runner("local")
    v.run_scan()
    wait_until(lambda: v.run_button.isEnabled() and not fake.busy())
    last = scans(fake)[-1]
    assert (last.runner, last.address, last.workers, last.cache_only) == ("local", None, None, False)
    assert "on " not in v.info.text().split("through")[-1]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("head", "no port"),
        ("head:", "port must be a number"),
        (":6379", "host"),
        ("head:port", "port must be a number"),
        ("head:70000", "1 to 65535"),
        ("http://head:80", "only ray://"),
        ("ray://head", "no port"),
        ("my head:6379", "host"),
    ],
)
def test_an_invalid_address_is_refused_with_its_reason(view, fake, address, why):
    v = view
    choose_ray(v, address, 2)
    said = []
    v.status.connect(said.append)
    before = len(fake.requests)
    v.run_scan()
    assert len(said) == 1 and why in said[0] and "Ray address" in said[0] and address in said[0]
    assert said[0] == v.info.text()
    assert len(fake.requests) == before and v.run_button.isEnabled() and not v.cancel_button.isEnabled()
    # the same text on this computer is not an address at all: the scan goes
    v.run_on.set_runner("local")
    v.run_scan()
    wait_until(lambda: len(fake.requests) == before + 1)
    assert scans(fake)[-1].runner == "local" and scans(fake)[-1].address is None


@pytest.mark.parametrize(
    "address", ["", "  ", "auto", "ray://10.0.0.1:10001", "head:6379", "ray://head.lan:1", "[::1]:6379"]
)
def test_valid_addresses(address):
    assert address_problem(address) is None


def test_run_on_survives_settings(qtbot, view, fake, tmp_path):
    choose_ray(view, "head:6379", 3)
    s = QSettings(str(tmp_path / "convscope.ini"), QSettings.Format.IniFormat)
    s.beginGroup("views/dataset")
    view.save_settings(s)
    s.endGroup()
    s.sync()

    again = open_view(qtbot, fake)
    assert again.run_on.runner == "local"
    s = QSettings(str(tmp_path / "convscope.ini"), QSettings.Format.IniFormat)
    s.beginGroup("views/dataset")
    again.restore_settings(s)
    r = again.run_on
    assert (r.runner, r.address, r.workers) == ("ray", "head:6379", 3)
    assert r.address_edit.isEnabled() and r.workers_box.isEnabled()
    assert again.k == view.k and again.source == view.source

    # an unknown runner (an older or newer version's value) falls back to this computer
    s.setValue("runner", "slurm")
    s.setValue("workers", "many")
    again.restore_settings(s)
    assert (r.runner, r.workers, r.address) == ("local", None, "head:6379")
    assert not r.address_edit.isEnabled()
