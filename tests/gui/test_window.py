"""The real main window with its engine thread, driven like a user would (pytest-qt).

`win` is the shared window on builtin:digits (the tiny fixture model until the shipped
file exists); `tiny_win` is the same window on the tiny model, which has a nested block.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from engine.jobs import Finished, Progress, Request

ROOT = Path(__file__).resolve().parents[2]


def maps_ready(view, layer) -> bool:
    return view.maps_layer == layer and view.rendered is not None and not view.renderer.busy()


def drop(window, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)


# ----- start-up ------------------------------------------------------------------------
def test_window_shows_model_layers_device_and_predictions(qtbot, win):
    device = win.status_bar.device_label.text()
    assert device == "CPU" or device.startswith("GPU")
    assert win.state.model_name in win.status_bar.model_label.text()
    assert win.layer_tree.paths() == [i.path for i in win.state.all_layers()]
    qtbot.waitUntil(lambda: len(win.predictions.rows) == 5, timeout=10_000)
    probs = [p for _, p in win.predictions.rows]
    assert probs == sorted(probs, reverse=True) and 0 <= probs[-1] <= probs[0] <= 1
    names = win.state.class_names
    if names:
        assert all(label in names for label, _ in win.predictions.rows)
    assert win.layer_tree.current_path() == win.state.layer == win.state.default_layer()
    assert win.windowTitle() == "Convscope"


def test_window_is_shown_before_tensorflow_has_loaded_and_closes_during_the_import(tmp_path):
    code = f"""
import os, sys
os.environ["CONVSCOPE_CONFIG_DIR"] = {str(tmp_path)!r}
from PySide6.QtCore import QTimer
from gui.app import application, create_window
app = application([])
seen = {{}}
w = create_window("builtin:digits", show=False)
def on_shown(t):
    seen["tf"] = "tensorflow" in sys.modules and hasattr(sys.modules["tensorflow"], "constant")
    seen["label"] = w.status_bar.device_label.text()
    QTimer.singleShot(300, close)
def close():
    seen["ready_at_close"] = w.client.is_ready
    w.close()
    seen["thread_running"] = w.client._thread.isRunning()
    app.quit()
w.first_shown.connect(on_shown)
w.show()
app.exec()
print(seen["tf"], seen["label"], seen["ready_at_close"], seen["thread_running"], sep="|")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    tf_loaded, label, ready_at_close, running = out.stdout.strip().splitlines()[-1].split("|")
    assert tf_loaded == "False"  # the window was on screen before TensorFlow had loaded
    assert label == "loading engine…"
    assert ready_at_close == "False"  # closed while the engine thread was still importing
    assert running == "False"  # ... and the thread was stopped cleanly
    assert "QThread" not in out.stderr


# ----- layers --------------------------------------------------------------------------
def test_selecting_each_layer_drives_the_feature_maps_view(qtbot, win):
    view = win.view("feature_maps")
    assert win.current_view() is view
    for info in win.state.all_layers():
        win.layer_tree.select(info.path)
        assert win.state.layer == info.path
        if info.kind == "model":
            qtbot.waitUntil(lambda: view.maps is None and "nested model" in view.grid.text.toPlainText())
            continue
        qtbot.waitUntil(lambda info=info: maps_ready(view, info.path), timeout=10_000)
        assert np.asarray(view.maps).shape[-1] == info.output_shape[-1]
        image = view.grid_image()
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        assert win.message_bar.text() == ""


def test_nested_model_rows_expand_and_their_layers_work(qtbot, tiny_win):
    win = tiny_win
    view = win.view("feature_maps")
    assert win.layer_tree.paths() == [
        "conv1",
        "pool1",
        "block",
        "block/inner_conv",
        "flatten",
        "dense1",
        "probs",
    ]
    win.layer_tree.select("block")
    qtbot.waitUntil(lambda: "nested model" in view.grid.text.toPlainText())
    win.layer_tree.select("block/inner_conv")
    index = win.layer_tree.tree.currentIndex()
    assert win.layer_tree.tree.isExpanded(index.parent())
    qtbot.waitUntil(lambda: maps_ready(view, "block/inner_conv"), timeout=10_000)
    assert np.asarray(view.maps).shape == (11, 11, 12)


def test_layer_tree_keyboard_navigation_and_filter(qtbot, tiny_win):
    win = tiny_win
    tree = win.layer_tree
    tree.tree.collapseAll()
    tree.select("conv1")
    tree.tree.setFocus()
    qtbot.keyClick(tree.tree, Qt.Key.Key_Down)
    assert win.state.layer == "pool1"
    qtbot.keyClick(tree.tree, Qt.Key.Key_Down)
    qtbot.keyClick(tree.tree, Qt.Key.Key_Right)  # expand the nested block
    qtbot.keyClick(tree.tree, Qt.Key.Key_Down)
    assert win.state.layer == "block/inner_conv"
    qtbot.keyClick(tree.tree, Qt.Key.Key_Up)
    assert win.state.layer == "block"
    tree.filter.setText("conv")
    assert tree.visible_paths() == ["conv1", "block", "block/inner_conv"]  # a match keeps its parents
    tree.filter.setText("DENSE")  # the type column matches too, any case
    assert tree.visible_paths() == ["dense1", "probs"]
    tree.filter.clear()
    assert tree.visible_paths() == tree.paths()


# ----- images --------------------------------------------------------------------------
def test_switching_image_recomputes_maps_and_predictions(qtbot, idle, win, assets):
    view = win.view("feature_maps")
    layer = win.state.default_layer()
    win.layer_tree.select(layer)
    qtbot.waitUntil(lambda: maps_ready(view, layer), timeout=10_000)
    before_maps = np.array(view.maps)
    qtbot.waitUntil(lambda: len(win.predictions.rows) == 5, timeout=10_000)
    second = str(assets["images"][1])
    win.image_browser.select(second)  # as a click in the browser does
    qtbot.waitUntil(lambda: win.state.image_spec == second, timeout=10_000)
    qtbot.waitUntil(
        lambda: maps_ready(view, layer) and not np.array_equal(view.maps, before_maps), timeout=10_000
    )
    idle(win)
    assert len(win.predictions.rows) == 5
    expected = np.asarray(Image.open(second), np.float32) / 255.0
    assert np.allclose(win.state.image[..., 0], expected)
    assert win.predictions.input.image_shape == expected.shape[:2]


def test_image_browser_keyboard_navigation(qtbot, win, assets):
    browser = win.image_browser
    browser.select(str(assets["images"][0]))
    browser.list.setFocus()
    qtbot.keyClick(browser.list, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: win.state.image_spec == str(assets["images"][1]), timeout=10_000)


def test_dropping_a_folder_adds_its_images(qtbot, idle, win, assets):
    folder = assets["folder"]
    drop(win, [folder])
    photos = sorted(str(p) for p in folder.glob("*.jpg"))
    qtbot.waitUntil(lambda: set(photos) <= set(win.image_browser.specs()), timeout=10_000)
    assert str(folder / "notes.txt") not in win.image_browser.specs()
    qtbot.waitUntil(lambda: win.state.image_spec == photos[0], timeout=10_000)
    model = win.image_browser.model
    qtbot.waitUntil(lambda: model.has_thumbnail(photos[0]), timeout=10_000)
    idle(win)
    assert win.message_bar.text() == ""


def test_dropping_model_and_image_files(qtbot, idle, win, assets):
    drop(win, [assets["images"][2], assets["model"]])
    qtbot.waitUntil(lambda: win.state.image_spec == str(assets["images"][2]), timeout=10_000)
    qtbot.waitUntil(lambda: win.state.model_spec == str(assets["model"]), timeout=30_000)
    idle(win)
    drop(win, [assets["folder"] / "notes.txt"])
    assert "not a model or an image" in win.message_bar.text()


def test_big_folder_lists_without_loading_every_thumbnail(qtbot, win, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    tiny = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    for i in range(600):
        tiny.save(folder / f"img{i:04d}.png")
    win.open_folder(str(folder), select=False)
    ours = lambda: [s for s in win.image_browser.specs() if s.startswith(str(folder))]  # noqa: E731
    qtbot.waitUntil(lambda: len(ours()) == 600, timeout=20_000)
    model = win.image_browser.model
    qtbot.waitUntil(lambda: not model._pending and model.pool.activeThreadCount() == 0, timeout=20_000)
    loaded = sum(model.has_thumbnail(s) for s in ours())
    assert loaded < 600  # only rows the list painted asked for a thumbnail
    win.image_browser.select(ours()[-1])  # scrolling there loads its thumbnail
    qtbot.waitUntil(lambda: model.has_thumbnail(ours()[-1]), timeout=10_000)


def test_broken_image_shows_an_error(qtbot, win, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    win.open_images([str(bad)])
    qtbot.waitUntil(lambda: "bad.png" in win.message_bar.text(), timeout=10_000)
    assert win.state.image_spec != str(bad)


# ----- jobs: cancel, errors, stale results ------------------------------------------------
def test_cancel_a_job_midway_from_the_status_bar(qtbot, idle, win):
    events = []
    win.client.progress.connect(events.append)
    win.client.finished.connect(events.append)
    job = win.client.submit(Request("sleep", {"steps": 400, "seconds": 0.02}, owner="test_cancel"))
    qtbot.waitUntil(
        lambda: any(isinstance(e, Progress) and e.job_id == job and e.step >= 3 for e in events),
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: win.status_bar.cancel_button.isVisible(), timeout=5_000)
    assert win.status_bar.job_label.text().startswith("waiting") and win.status_bar.progress.maximum() == 400
    qtbot.mouseClick(win.status_bar.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(isinstance(e, Finished) and e.job_id == job for e in events), timeout=5_000)
    done = [e for e in events if isinstance(e, Finished) and e.job_id == job][0]
    assert done.reason == "cancelled"
    assert max(e.step for e in events if isinstance(e, Progress) and e.job_id == job) < 400
    qtbot.waitUntil(lambda: not win.status_bar.cancel_button.isVisible())
    win.client.progress.disconnect(events.append)
    win.client.finished.disconnect(events.append)
    win.update_predictions()  # the engine still works
    idle(win)
    assert win.message_bar.text() == ""


def test_stop_action_cancels_everything(qtbot, idle, win):
    events = []
    win.client.finished.connect(events.append)
    jobs = [
        win.client.submit(Request("sleep", {"steps": 100, "seconds": 0.02}, owner=f"stop{i}"))
        for i in range(3)
    ]
    win.stop_action.trigger()
    qtbot.waitUntil(lambda: {e.job_id for e in events} >= set(jobs), timeout=10_000)
    assert {e.reason for e in events if e.job_id in jobs} == {"cancelled"}
    win.client.finished.disconnect(events.append)
    idle(win)


def test_newer_layer_request_cancels_older_and_stale_results_are_dropped(qtbot, tiny_win):
    win = tiny_win
    view = win.view("feature_maps")
    win.client.submit(Request("sleep", {"steps": 20, "seconds": 0.01}, owner="test_blocker"))
    win.layer_tree.select("conv1")
    first = view.jobs[""]
    win.layer_tree.select("block/inner_conv")
    second = view.jobs[""]
    assert first != second and win.client.current("feature_maps") == second
    qtbot.waitUntil(lambda: maps_ready(view, "block/inner_conv"), timeout=10_000)
    assert np.asarray(view.maps).shape[-1] == 12  # conv1's 8 maps never replaced them


def test_corrupt_model_shows_an_error_and_the_window_keeps_working(qtbot, win, assets):
    view = win.view("feature_maps")
    name = win.state.model_name
    win.open_model(str(assets["corrupt"]))
    qtbot.waitUntil(lambda: bool(win.message_bar.text()), timeout=30_000)
    assert "broken.keras" in win.message_bar.text()
    assert win.message_bar.kind == "error"
    assert win.state.model_name == name and name in win.status_bar.model_label.text()
    layer = [i.path for i in win.state.all_layers() if i.kind == "conv"][-1]
    win.layer_tree.select(layer)
    qtbot.waitUntil(lambda: maps_ready(view, layer), timeout=10_000)


def test_an_unsafe_model_offers_trust_by_the_failure_kind(qtbot, idle, win, tmp_path):
    """Safe mode refuses a Lambda model; the window offers "Trust and load" because Failed.kind says
    unsafe_model (not by reading the message), and the button loads it."""
    import keras

    inp = keras.Input((28, 28, 1))
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(out))
    path = tmp_path / "lam.keras"
    keras.Model(inp, out).save(path)
    win.open_model(str(path))
    qtbot.waitUntil(lambda: bool(win.message_bar.text()), timeout=30_000)
    assert "safe mode" in win.message_bar.text()
    assert (
        win.message_bar.action_button.isVisible() and win.message_bar.action_button.text() == "Trust and load"
    )
    win.message_bar.action_button.click()
    qtbot.waitUntil(lambda: win.state.model_spec == str(path), timeout=30_000)
    idle(win)


def test_failed_job_message_appears_in_the_window(qtbot, idle, win):
    win.client.submit(
        Request("feature_maps", {"image": win.state.image, "layers": ["nope"]}, owner="test_fail")
    )
    qtbot.waitUntil(lambda: "nope" in win.message_bar.text(), timeout=10_000)
    assert win.message_bar.detail  # the traceback is one click away
    win.message_bar.dismiss()
    win.update_predictions()
    idle(win)
    assert win.message_bar.text() == ""


# ----- menus, settings, close --------------------------------------------------------------
def test_menus_have_the_issue_entries(win):
    menus = {a.text().replace("&", ""): a.menu() for a in win.menuBar().actions()}
    assert list(menus) == ["File", "View", "Run", "Help"]
    file_items = [a.text().replace("&", "") for a in menus["File"].actions() if a.text()]
    for needed in (
        "Open Model…",
        "Keras Applications",
        "Built-in Models",
        "Open Images…",
        "Open Folder…",
        "Recent",
        "Export View…",
        "Quit",
    ):
        assert needed in file_items
    assert win.run_action.shortcut().toString() == "F5"
    assert win.stop_action.shortcut().toString() == "Esc"
    assert {"Layers", "Images", "Predictions"} <= {a.text() for a in menus["View"].actions()}
    help_items = [a.text().replace("&", "") for a in menus["Help"].actions()]
    assert "About Convscope" in help_items and "Keyboard Shortcuts" in help_items


def test_view_menu_hides_and_shows_docks(qtbot, win):
    action = win.predictions_dock.toggleViewAction()
    action.trigger()
    assert not win.predictions_dock.isVisible()
    action.trigger()
    assert win.predictions_dock.isVisible()


def test_keyboard_shortcuts_dialog_lists_run_and_stop(win, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: shown.append(a[2]))
    win.show_shortcuts()
    assert "F5" in shown[0] and "Esc" in shown[0]


def test_settings_persist_between_windows(qtbot, assets, spec):
    from gui.app import create_window

    first = create_window(spec, [str(assets["images"][0])])
    qtbot.waitUntil(lambda: first.state.model is not None, timeout=60_000)
    first.view("feature_maps").set_normalization("standardize")
    first.view("feature_maps").cmap_box.setCurrentText("turbo")
    first.resize(780, 540)
    first.layers_dock.hide()
    first.open_folder(str(assets["folder"]), select=False)
    first.close()
    assert not first.client._thread.isRunning()
    second = create_window(None, start_engine=False)
    try:
        view = second.view("feature_maps")
        assert view.norm == "standardize" and view.cmap == "turbo"
        assert not second.layers_dock.isVisible()
        assert (second.width(), second.height()) == (780, 540)
        recent = [a.text() for a in second.recent_menu.actions()]
        assert any(str(assets["folder"]) in t for t in recent)
    finally:
        second.layers_dock.show()
        second.view("feature_maps").set_normalization("global")
        second.view("feature_maps").cmap_box.setCurrentText("viridis")
        second.close()


def test_close_during_a_job_shuts_the_engine_thread_down(qtbot, qapp, assets, spec, qtlog):
    from gui.app import create_window

    w = create_window(spec, [str(assets["images"][0])], restore=False)
    qtbot.waitUntil(lambda: w.client.is_ready, timeout=60_000)
    w.client.submit(Request("sleep", {"steps": 100_000, "seconds": 0.05}, owner="test_long"))
    qtbot.waitUntil(lambda: w.client.running is not None and w.client.running.kind == "sleep", timeout=30_000)
    assert w.close()
    assert not w.client._thread.isRunning()
    qapp.processEvents()
    bad = [r.message for r in qtlog.records if "QThread" in r.message or "Destroyed" in r.message]
    assert not bad


# ----- model-aware start image --------------------------------------------------------------
def _start_window(qtbot, spec, images=()):
    """A window that never starts its engine: the start image is chosen from the spec alone."""
    from gui.app import create_window

    w = create_window(spec, [str(i) for i in images], restore=False, start_engine=False)
    return w


def _close(w) -> None:
    w.close()
    w.deleteLater()


def test_start_image_fits_the_model_and_is_remembered_per_model(qtbot, tmp_path, monkeypatch, assets):
    monkeypatch.setenv("CONVSCOPE_CONFIG_DIR", str(tmp_path / "config"))
    from engine.images import sample_images

    digits = [s for s in sample_images() if s.startswith("builtin:digit_")]
    shapes = [s for s in sample_images() if s.startswith("builtin:shape_")]

    w = _start_window(qtbot, "builtin:digits")
    qtbot.waitUntil(lambda: w.state.image_spec is not None, timeout=10_000)
    assert w.state.image_spec == digits[0] and w.state.image.shape == (28, 28, 1)
    assert w.image_browser.specs()[:10] == digits  # fitting samples first
    w.image_browser.select(digits[7])  # the user picks another digit
    qtbot.waitUntil(lambda: w.state.image_spec == digits[7], timeout=10_000)
    _close(w)

    w = _start_window(qtbot, "builtin:shapes")
    qtbot.waitUntil(lambda: w.state.image_spec is not None, timeout=10_000)
    assert w.state.image_spec == shapes[0]
    assert w.image_browser.specs()[:4] == shapes
    model = w.image_browser.model
    assert "fits the model" in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    _close(w)

    w = _start_window(qtbot, "builtin:digits")  # reopened: the digit the user chose last time
    qtbot.waitUntil(lambda: w.state.image_spec is not None, timeout=10_000)
    assert w.state.image_spec == digits[7]
    own = tmp_path / "mine.png"
    Image.open(assets["images"][1]).save(own)
    w.open_images([str(own)])
    qtbot.waitUntil(lambda: w.state.image_spec == str(own), timeout=10_000)
    _close(w)

    w = _start_window(qtbot, "builtin:digits")  # the user's own file comes back too
    qtbot.waitUntil(lambda: w.state.image_spec is not None, timeout=10_000)
    assert w.state.image_spec == str(own)
    _close(w)

    own.unlink()  # gone: the first fitting sample instead
    w = _start_window(qtbot, "builtin:digits")
    qtbot.waitUntil(lambda: w.state.image_spec is not None, timeout=10_000)
    assert w.state.image_spec == digits[0]
    _close(w)

    photo = assets["folder"] / "photo03.jpg"  # images named on the command line win
    w = _start_window(qtbot, "builtin:shapes", [photo])
    qtbot.waitUntil(lambda: w.state.image_spec is not None, timeout=10_000)
    assert w.state.image_spec == str(photo)
    _close(w)


def test_a_loaded_model_gets_a_fitting_image_and_its_own_back_on_reopen(qtbot, idle, win, assets):
    """Loading a model swaps a sample that does not fit it for the model's last image or a fitting one."""
    from gui import settings as cfg

    tiny = str(assets["model"])  # 28x28x1, no class names: digits (grey samples) fit
    win.select_image("builtin:shape_star")
    qtbot.waitUntil(lambda: win.state.image_spec == "builtin:shape_star", timeout=10_000)
    for spec in (tiny, "builtin:shapes"):
        cfg.remember_image(win.settings, spec, "")  # as if these models had never been opened
    win.open_model(tiny)
    qtbot.waitUntil(lambda: win.state.model_spec == tiny, timeout=60_000)
    qtbot.waitUntil(lambda: win.state.image_spec == "builtin:digit_0", timeout=10_000)
    assert win.image_browser.specs()[0] == "builtin:digit_0"
    win.image_browser.select("builtin:digit_4")
    qtbot.waitUntil(lambda: win.state.image_spec == "builtin:digit_4", timeout=10_000)

    win.open_model("builtin:shapes")  # a digit does not fit shapes: a shape sample
    qtbot.waitUntil(lambda: win.state.model_spec == "builtin:shapes", timeout=60_000)
    qtbot.waitUntil(lambda: (win.state.image_spec or "").startswith("builtin:shape_"), timeout=10_000)
    assert win.image_browser.specs()[0].startswith("builtin:shape_")
    idle(win)

    win.open_model(tiny)  # reopened: its own last image, not the first digit
    qtbot.waitUntil(lambda: win.state.model_spec == tiny, timeout=60_000)
    qtbot.waitUntil(lambda: win.state.image_spec == "builtin:digit_4", timeout=10_000)

    own = str(assets["images"][2])  # the user's own image stays whatever the model
    win.select_image(own)
    qtbot.waitUntil(lambda: win.state.image_spec == own, timeout=10_000)
    win.open_model("builtin:shapes")
    qtbot.waitUntil(lambda: win.state.model_spec == "builtin:shapes", timeout=60_000)
    idle(win)
    assert win.state.image_spec == own


# ----- one Run ---------------------------------------------------------------------------------
def test_f5_on_the_dataset_tab_starts_a_scan(qtbot, idle, win, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "scan"
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(5):
            arr = np.zeros((28, 28), np.uint8)
            arr[3 + i : 22, 4 + 2 * i : 20] = 220
            Image.fromarray(np.clip(arr + rng.integers(0, 30, arr.shape), 0, 255).astype(np.uint8)).save(
                folder / cls / f"{i}.png"
            )
    view = win.view("dataset")
    win.tabs.setCurrentIndex(win.views.index(view))
    idle(win)
    view.set_source(str(folder))
    layer = view.layer
    assert layer
    assert win.run_action.shortcut().toString() == "F5"
    submitted = []
    win.client.started.connect(lambda request: submitted.append((request.kind, dict(request.params))))
    win.run_action.trigger()  # Run → Run, what F5 does
    qtbot.waitUntil(lambda: view.result is not None and view.run_button.isEnabled(), timeout=60_000)
    scans = [p for kind, p in submitted if kind == "scan" and not p.get("cache_only")]
    assert scans and scans[0]["source"] == str(folder) and scans[0]["layer"] == layer
    result = view.result
    assert result.layer == layer and result.done == 10
    assert any(result.hits(u) for u in range(result.units))
    idle(win)
