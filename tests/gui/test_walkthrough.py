"""A newcomer's walkthrough: open each built-in model, visit every tab, press F5, judge the picture.

Default settings only (fresh settings folder, no restored state). For each tab the result must
not be degenerate: at least one feature map is non-zero, the filters vary, the maximized and
dreamed images differ from their start and the objective rose, the CAM is not flat (and sits on
the engine's default layer), the scan returns hits. One screenshot per tab is saved in the
folder named by CONVSCOPE_WALKTHROUGH_DIR (else pytest's tmp folder): look at them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEventLoop, QTimer

pytestmark = pytest.mark.slow

MODELS = ["builtin:digits", "builtin:shapes"]


def pump(ms: int) -> None:
    """Run the event loop for ms (QEventLoop.exec releases the GIL; QTest.qWait does not)."""
    loop = QEventLoop()
    QTimer.singleShot(int(ms), loop.quit)
    loop.exec()


def wait(predicate, timeout_ms: int) -> bool:
    waited = 0
    while not predicate():
        if waited >= timeout_ms:
            return False
        pump(50)
        waited += 50
    return True


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()) > 0.01


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("CONVSCOPE_WALKTHROUGH_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("spec", MODELS)
def test_every_tab_shows_something_meaningful_on_first_try(
    qapp, spec: str, shots: Path, tmp_path, monkeypatch
) -> None:
    from gui.app import create_window

    monkeypatch.setenv("CONVSCOPE_CONFIG_DIR", str(tmp_path / "fresh-user"))  # a newcomer: no settings
    w = create_window(spec, [], restore=False)
    w.ask = lambda question: False
    w.resize(1280, 820)
    try:
        assert wait(lambda: w.client.is_ready and w.state.model is not None, 240_000), "engine never ready"
        assert wait(lambda: w.state.image is not None and not w.client.busy(), 120_000)
        name = spec.split(":")[1]
        # the first image fits the model
        assert w.state.image_spec.startswith("builtin:digit_" if name == "digits" else "builtin:shape_")
        for index in range(w.tabs.count()):
            w.tabs.setCurrentIndex(index)
            pump(300)
            assert wait(lambda: not w.client.busy(), 240_000)
            view = w.current_view()
            w.run_current()  # F5
            pump(300)
            assert wait(lambda: not w.client.busy(), 300_000), f"{view.title} never finished"
            pump(500)  # renders off the main thread land
            tab = w.tabs.tabText(index).replace(" ", "")
            w.grab().save(str(shots / f"{name}-{index + 1:02d}-{tab}.png"))
            _judge(view, w)
    finally:
        w.close()
        pump(100)
        w.deleteLater()
        pump(100)


def _judge(view, w) -> None:
    """Assert the view's picture is not degenerate."""
    owner = view.owner
    if owner == "feature_maps":
        assert view.maps is not None and float(np.abs(view.maps).max()) > 0, "every feature map is zero"
    elif owner == "filters":
        assert view.weights is not None and float(np.std(view.weights)) > 0
    elif owner in ("maximize", "dream"):
        result = view.result
        assert result is not None, f"{owner}: no result"
        final = np.asarray(result.images, np.float32)
        frames = result.frames
        assert frames, f"{owner}: no frame was recorded"
        start = np.asarray(frames[0][1], np.float32)
        start = start / 255.0 if start.max() > 1.5 else start
        assert _differs(final, start), f"{owner}: the result did not move from its start"
        losses = result.losses
        assert len(losses) >= 2 and losses[-1] > losses[0], f"{owner}: the objective did not rise"
        if owner == "maximize":
            assert not result.silent, f"maximize: the default unit is silent: {result.message}"
    elif owner == "attribution":
        heat = view._primary_heat()
        assert heat is not None and float(np.std(heat)) > 1e-3, "the CAM is flat"
    elif owner == "dataset":
        r = view.result
        assert r is not None and (r.top_ids >= 0).any() and float(np.nanmax(r.top_values)) > 0, "no hits"
        assert view.selected is not None, "the strongest unit's top images are not shown"
    else:
        raise AssertionError(f"a tab the walkthrough does not know: {owner}")
    errors = [text for kind, text in w.message_bar.history if kind == "error"]
    assert not errors, f"error messages: {errors}"
