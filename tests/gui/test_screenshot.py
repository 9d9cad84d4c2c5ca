"""A real window on a real X display (Xvfb through pytest-xvfb): a screenshot whose grid area is not blank.

Set CONVSCOPE_SCREENSHOT=path to keep a copy (docs/screenshot.png is made this way).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.window


def test_screenshot_grid_area_is_not_blank(qtbot, qapp, spec, assets, idle, tmp_path):
    if QApplication.platformName() != "xcb":
        pytest.skip(f"needs a real X display (Xvfb); Qt runs on {QApplication.platformName()!r}")
    from engine.images import sample_images
    from gui.app import create_window

    samples = [s for s in sample_images() if s.startswith("builtin:digit")]
    images = samples[3:4] if spec == "builtin:digits" and samples else [str(assets["images"][0])]
    window = create_window(spec, images, show=False, restore=False)
    try:
        screen = qapp.primaryScreen().availableGeometry()
        window.resize(min(1280, screen.width()), min(820, screen.height()))
        window.move(screen.topLeft())
        window.show()
        qtbot.waitExposed(window)
        idle(window)
        view = window.view("feature_maps")
        qtbot.waitUntil(lambda: view.rendered is not None and not view.renderer.busy(), timeout=20_000)
        qtbot.waitUntil(lambda: len(window.predictions.rows) == 5, timeout=20_000)
        # a map opened large, with the receptive field of one of its units on the input
        view.open_map(min(2, np.asarray(view.maps).shape[-1] - 1))
        qtbot.waitUntil(lambda: view.rf is not None, timeout=20_000)
        rows, cols = np.asarray(view.maps).shape[:2]
        view.large.hovered.emit(rows // 2, cols // 3)
        assert view.input.box.isVisible()
        window.raise_()
        window.activateWindow()
        qtbot.wait(300)  # let the X server draw the last frame
        shot = window.screen().grabWindow(window.winId())
        path = tmp_path / "screenshot.png"
        assert shot.save(str(path))
        if os.environ.get("CONVSCOPE_SCREENSHOT"):
            shutil.copy(path, os.environ["CONVSCOPE_SCREENSHOT"])

        image = shot.toImage().convertToFormat(shot.toImage().Format.Format_RGB888)
        ratio = shot.devicePixelRatio()
        width, height = image.width(), image.height()
        raw = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * height)
        pixels = raw.reshape(height, image.bytesPerLine())[:, : width * 3].reshape(height, width, 3)
        origin = view.grid.mapTo(window, QPoint(0, 0))
        x0, y0 = int(origin.x() * ratio), int(origin.y() * ratio)
        x1, y1 = x0 + int(view.grid.width() * ratio), y0 + int(view.grid.height() * ratio)
        grid = pixels[y0:y1, x0:x1].astype(np.int16)
        assert grid.size > 0
        assert grid.std() > 10, "the feature-map grid area of the screenshot is blank"
        assert len(np.unique(grid.reshape(-1, 3), axis=0)) > 20
    finally:
        window.close()
