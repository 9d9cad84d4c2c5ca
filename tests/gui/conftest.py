"""Fixtures for the GUI tests: a tiny Keras model and images on disk, isolated settings, one shared window.

Tests may import keras (only gui/ may not). Qt runs on the real X display pytest-xvfb
provides when its libraries load, else offscreen; the screenshot test needs X and
skips without it. Settings go to a temporary folder through CONVSCOPE_CONFIG_DIR.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_XCB_LIBS = ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0")


def _xcb_usable() -> bool:
    if not os.environ.get("DISPLAY"):
        return False
    for lib in _XCB_LIBS:
        try:
            ctypes.CDLL(lib)
        except OSError:
            return False
    return True


@pytest.hookimpl(trylast=True)
def pytest_configure(config) -> None:
    """After pytest-xvfb has set DISPLAY: use X when Qt's xcb libraries load, else offscreen."""
    if not _xcb_usable():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


os.environ.setdefault("CONVSCOPE_CONFIG_DIR", tempfile.mkdtemp(prefix="convscope-gui-settings-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "resources" / "models" / "digits.keras"


def build_tiny_model(path: Path) -> Path:
    """A small digits-shaped convnet with a nested block, saved as .keras."""
    import keras

    keras.utils.set_random_seed(0)
    block = keras.Sequential(
        [keras.Input((13, 13, 8)), keras.layers.Conv2D(12, 3, activation="relu", name="inner_conv")],
        name="block",
    )
    inp = keras.Input((28, 28, 1), name="pixels")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = block(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="dense1")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="tiny")
    model.save(path)
    return path


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> dict[str, Path]:
    """tiny.keras, a corrupt model file, a few images and a folder of images."""
    base = tmp_path_factory.mktemp("gui_assets")
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        arr = np.zeros((28, 28), np.uint8)
        arr[4 + i * 3 : 20 + i, 6:22] = 255
        arr = np.clip(arr.astype(int) + rng.integers(0, 40, arr.shape), 0, 255).astype(np.uint8)
        path = base / f"digit{i}.png"
        Image.fromarray(arr).save(path)
        images.append(path)
    folder = base / "folder"
    folder.mkdir()
    for i in range(12):
        arr = rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"photo{i:02d}.jpg")
    (folder / "notes.txt").write_text("not an image")
    corrupt = base / "broken.keras"
    corrupt.write_bytes(b"this is not a zip file at all" * 10)
    return {
        "model": build_tiny_model(base / "tiny.keras"),
        "corrupt": corrupt,
        "images": images,
        "folder": folder,
        "base": base,
    }


def model_spec(assets: dict[str, Path]) -> str:
    """builtin:digits once the shipped model exists, else the tiny fixture model."""
    return "builtin:digits" if DIGITS.exists() else str(assets["model"])


@pytest.fixture(scope="session")
def shared_window(qapp, assets):
    """One window with the engine thread for most tests (TensorFlow imports once)."""
    from PySide6.QtCore import QCoreApplication

    from gui.app import create_window

    window = create_window(model_spec(assets), [str(p) for p in assets["images"]], restore=False)
    window.ask = lambda question: False
    yield window
    window.close()
    QCoreApplication.processEvents()
    window.deleteLater()
    QCoreApplication.processEvents()


def wait_idle(qtbot, window, timeout: int = 60_000) -> None:
    """Wait until the engine is ready, a model is loaded and no job is pending."""
    qtbot.waitUntil(lambda: window.client.is_ready, timeout=timeout)
    qtbot.waitUntil(lambda: window.state.model is not None and not window.client.busy(), timeout=timeout)


@pytest.fixture
def spec(assets) -> str:
    """The model spec the window tests use."""
    return model_spec(assets)


@pytest.fixture
def idle(qtbot):
    """idle(window): wait until the window's engine has nothing left to do."""
    return lambda window, timeout=60_000: wait_idle(qtbot, window, timeout)


def reset_window(qtbot, w, spec: str, image: str):
    """Bring the shared window back to: spec loaded, image current, first tab, no message."""
    wait_idle(qtbot, w)
    from engine import job_handlers

    engine_model = job_handlers._state["current"]  # process-wide: other tests' engine threads may change it
    if w.state.model_spec != spec or engine_model is None or engine_model.spec != spec:
        w.state.model = None
        w.open_model(spec)
        qtbot.waitUntil(lambda: w.state.model_spec == spec, timeout=60_000)
    if w.state.image_spec != image:
        w.select_image(image)
        qtbot.waitUntil(lambda: w.state.image_spec == image, timeout=10_000)
    w.tabs.setCurrentIndex(0)
    w.message_bar.dismiss()
    w.ask = lambda question: False
    wait_idle(qtbot, w)
    return w


@pytest.fixture
def win(qtbot, shared_window, assets):
    """The shared window on builtin:digits (the tiny model until digits.keras exists), reset."""
    return reset_window(qtbot, shared_window, model_spec(assets), str(assets["images"][0]))


@pytest.fixture
def tiny_win(qtbot, shared_window, assets):
    """The shared window on the tiny fixture model (conv1, pool1, block/inner_conv, dense1, probs), reset."""
    return reset_window(qtbot, shared_window, str(assets["model"]), str(assets["images"][0]))


# ----- the Attribution tab standalone on its own engine thread (test_compare_dialog.py, test_sanity_dialog.py)
ATTRIBUTION_TIMEOUT = 60_000


def load_on(client, spec: str):
    """Load `spec` on the engine and return its ModelSummary (other tests' engine threads may have
    loaded another model: the engine's current model is process-wide)."""
    from fake_engine import wait_until

    from engine.contract import LoadModelParams

    done: list = []
    request = LoadModelParams(spec).request("test")

    def on_finished(event) -> None:
        if event.job_id == request.job_id:
            done.append(event)

    client.finished.connect(on_finished)
    try:
        client.submit(request)
        wait_until(lambda: bool(done), ATTRIBUTION_TIMEOUT)
    finally:
        client.finished.disconnect(on_finished)
    return done[0].result


@pytest.fixture(scope="module")
def attribution_engine(qapp, assets):
    """(state, client): an AppState on the first digit image (layer conv1) and a started EngineClient,
    one per test module."""
    from fake_engine import wait_until

    from engine.images import load_image
    from gui.engine_thread import EngineClient
    from gui.state import AppState

    client = EngineClient()
    client.start()
    wait_until(lambda: client.is_ready, ATTRIBUTION_TIMEOUT)
    state = AppState()
    state.set_layer("conv1")
    path = str(assets["images"][0])
    state.set_image(path, load_image(path))
    yield state, client
    client.shutdown()


@pytest.fixture
def attribution_tab(attribution_engine, qtbot, assets):
    """A fresh AttributionView on attribution_engine with the tiny fixture model loaded, shown at
    1000x600 and active, its first map drawn; its dialogs are closed and the engine idle afterwards."""
    from fake_engine import wait_until

    from gui.views.attribution import AttributionView

    state, client = attribution_engine
    summary = load_on(client, str(assets["model"]))
    if state.model is None or state.model_spec != summary.spec:
        state.set_model(summary)
    v = AttributionView(state, client)
    qtbot.addWidget(v)
    v.resize(1000, 600)
    v.show()
    v.set_active(True)
    wait_until(lambda: v.overlay_image() is not None, ATTRIBUTION_TIMEOUT)
    yield v
    for name in ("compare_dialog", "sanity_dialog"):
        dialog = getattr(v, name, None)
        if dialog is not None:
            dialog.close()
    wait_until(lambda: not client.busy(), 30_000)


@pytest.fixture
def tensorflow_free():
    """Use with pytestmark: nothing the test does may import TensorFlow or Keras (the fake-engine
    tests; test_views_fake.py re-runs them in a fresh process: fake_engine.assert_tensorflow_free)."""
    from fake_engine import assert_tensorflow_free

    yield
    assert_tensorflow_free()


@pytest.fixture
def fake(qapp):
    """A FakeEngineClient answering from the recorded typed results (tests/gui/fake_engine.py)."""
    from fake_engine import FakeEngineClient, recorded_answers

    return FakeEngineClient(recorded_answers())
