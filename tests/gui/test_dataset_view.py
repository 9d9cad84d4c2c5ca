"""The Dataset tab with a real engine thread: scan with progress, unit grid clicks, classes, images,
cancel + resume, reopening from the cache, export equal to the CLI's figure.

The view is built on its own (AppState + EngineClient), so it is tested whether or not the
window's tab registry lists it yet.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.contract import LoadModelParams


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui-dataset")
    rng = np.random.default_rng(5)
    for cls in ("four", "nine", "seven"):
        (root / cls).mkdir()
        for i in range(8):
            arr = np.zeros((28, 28), np.uint8)
            arr[4 + i : 20, 5 + 2 * i % 10 : 22] = 200
            arr = np.clip(arr.astype(int) + rng.integers(0, 50, arr.shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    (root / "nine" / "broken.png").write_bytes(b"garbage")
    return root


@pytest.fixture
def view(qtbot, assets, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    from gui.engine_thread import EngineClient
    from gui.state import AppState
    from gui.views.dataset import DatasetView

    state = AppState()
    client = EngineClient()
    client.start()
    qtbot.waitUntil(lambda: client.is_ready, timeout=120_000)
    got = {}
    client.finished.connect(lambda e: got.setdefault("model", e.result))
    client.submit(LoadModelParams(str(assets["model"])).request("test"))
    qtbot.waitUntil(lambda: "model" in got, timeout=60_000)
    v = DatasetView(state, client)
    qtbot.addWidget(v)
    v.resize(1100, 700)
    v.show()
    v.set_active(True)
    state.set_model(got["model"])
    yield v
    client.shutdown()


def _run_sidecar_command(command: str, out, monkeypatch) -> bytes:
    """Run a sidecar's `python main.py export ...` line in this process; the RGB bytes it wrote."""
    import shlex

    from engine.cli import main

    monkeypatch.setenv("CONVSCOPE_DEBUG", "1")  # leave fd 2 alone inside the test process
    argv = shlex.split(command.replace("FILE.png", str(out)))
    assert argv[:2] == ["python", "main.py"] and main(argv[2:]) == 0
    return np.ascontiguousarray(np.asarray(Image.open(out))[..., :3]).tobytes()


def _scan(qtbot, v, timeout=60_000):
    v.run_scan()
    qtbot.waitUntil(lambda: v.result is not None and v.run_button.isEnabled(), timeout=timeout)
    qtbot.waitUntil(lambda: v.units_image() is not None, timeout=timeout)


def test_scan_browse_units_classes_images_and_export(qtbot, view, dataset_folder, tmp_path, monkeypatch):
    from engine.dataset import render_units

    v = view
    layers = [v.layer_box.itemData(i) for i in range(v.layer_box.count())]
    assert "conv1" in layers and "dense1" in layers and "block" not in layers and "flatten" in layers
    v.set_source(str(dataset_folder))
    v.set_layer("conv1")
    _scan(qtbot, v)
    r = v.result
    assert r.layer == "conv1" and r.units == 8 and r.done == 25 and len(r.skipped) == 1
    assert "1 skipped" in v.info.text() and "broken.png" in v.info.toolTip()
    assert v.progress_bar.value() == 25

    # click the tile of unit 5 in the grid: its hits open beside the maximization pane
    top, left, bottom, right = v.layout_units.tile_box(5)
    v._on_units_clicked((top + bottom) // 2, (left + right) // 2)
    assert v.selected == 5 and "unit 5" in v.detail_title.text()
    qtbot.waitUntil(lambda: "detail" in v.figures, timeout=10_000)
    assert v.max_button.isEnabled() and v.objective() == "conv1:5"
    v.maximize_unit()
    qtbot.waitUntil(
        lambda: v.max_label.text() != "maximizing conv1:5…" or v.max_pane.image_shape, timeout=60_000
    )

    # classes: heatmap rows are classes; clicking a cell opens that unit; compare two classes
    v.pages.setCurrentIndex(1)
    hl = v.heat_layout
    assert (hl.classes, hl.units) == (3, 8)
    assert v.figures["classes"].shape[:2] == (hl.top + 3 * hl.cell_h + 2, hl.left + 8 * hl.cell_w + 2)
    v._on_heat_clicked(hl.top + hl.cell_h + 1, hl.left + 7 * hl.cell_w + 1)
    assert v.selected == 7
    v._on_heat_clicked(0, 0)  # the labels: nothing happens
    assert v.selected == 7
    v.pages.setCurrentIndex(1)
    v.class_a.setCurrentText("four")
    v.class_b.setCurrentText("nine")
    v.compare()
    assert v.sep_table.rowCount() == 8
    qtbot.waitUntil(lambda: "compare" in v.figures, timeout=30_000)
    assert v.compare_result.separation.a == "four" and v.compare_result.examples.ids.shape[0] == 2

    # the Classes page's export names the command that writes the same figure, bit for bit
    v.heat_mode.setCurrentIndex(v.heat_mode.findData("raw"))
    image, meta = v.export_image()
    assert meta["page"] == "classes" and meta["heatmap"] == "raw" and "--page classes" in meta["command"]
    np.testing.assert_array_equal(image, v.figures["classes"])
    assert _run_sidecar_command(meta["command"], tmp_path / "classes.png", monkeypatch) == image.tobytes()

    # images side by side with their strongest maps
    v.pages.setCurrentIndex(2)
    v.image_count.setValue(4)
    v.show_images()
    qtbot.waitUntil(lambda: "images" in v.figures, timeout=30_000)
    assert len(v.maps_result.maps) == 4 and v.maps_result.ids == (0, 1, 2, 3)
    image, meta = v.export_image()
    assert meta["page"] == "images" and "--page images --first 0 --count 4" in meta["command"]

    # export of the units page equals the CLI/engine figure
    v.pages.setCurrentIndex(0)
    image, meta = v.export_image()
    np.testing.assert_array_equal(image, render_units(r, None, None, int(v.cell_box.value())))
    assert meta["layer"] == "conv1" and "export topk" in meta["command"]


def test_dense_layer_and_reopen_from_cache(qtbot, view, dataset_folder):
    v = view
    v.set_source(str(dataset_folder))
    v.set_layer("dense1")
    _scan(qtbot, v)
    assert v.result.kind == "dense" and not v.result.from_cache
    assert v.grids_pane.image_shape is not None  # per-class activation grids
    v._clear("")
    v.lookup()
    qtbot.waitUntil(lambda: v.result is not None, timeout=30_000)
    assert v.result.from_cache and "from cache" in v.info.text()


def test_cancel_then_resume(qtbot, view):
    v = view
    v.set_source("builtin:shapes?n=3000&seed=1")
    v.set_layer("conv1")
    steps = []
    v.client.progress.connect(lambda e: steps.append(e.step))
    v.run_scan()
    qtbot.waitUntil(lambda: any(s > 0 for s in steps), timeout=60_000)
    v.cancel_scan()
    assert v.run_button.isEnabled() and "cancelled" in v.progress_bar.format()
    qtbot.waitUntil(lambda: not v.client.busy(), timeout=60_000)
    if v.result is not None:
        pytest.skip("the scan finished before the cancel arrived")
    steps.clear()
    _scan(qtbot, v, timeout=120_000)
    assert steps and steps[0] > 0  # resumed from the checkpoint
    assert v.result.done == 3000


def test_no_model_and_bad_source_messages(qtbot, view):
    v = view
    v.set_source("/no/such/folder")
    v.set_layer("conv1")
    v.run_scan()
    qtbot.waitUntil(lambda: v.run_button.isEnabled(), timeout=30_000)
    assert "not found" in v.info.text()
    assert v.result is None


def test_builtin_source_follows_the_models_input_channels(qtbot, view, dataset_folder):
    """digits for a one-channel model, shapes for a colour one; the user's own folder is kept."""
    from gui.views.dataset import SOURCES

    v = view
    assert v.source == SOURCES[0]  # the tiny digits-shaped model takes one channel
    got = {}
    request = LoadModelParams("builtin:shapes").request("test")
    v.client.finished.connect(
        lambda e: got.setdefault("model", e.result) if e.job_id == request.job_id else None
    )
    v.client.submit(request)
    qtbot.waitUntil(lambda: "model" in got, timeout=60_000)
    shapes_summary = got["model"]
    digits_summary = v.state.model
    v.state.set_model(shapes_summary)
    assert v.source == SOURCES[1]
    v.set_source(str(dataset_folder))
    v.state.set_model(digits_summary)
    assert v.source == str(dataset_folder)
