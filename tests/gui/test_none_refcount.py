"""PySide6 6.12 on CPython < 3.12 leaks None references on void calls; importing gui must guard it."""

from __future__ import annotations

import os
import subprocess
import sys


def test_many_void_qt_calls_do_not_abort():
    code = (
        "import gui\n"
        "from PySide6.QtCore import QCoreApplication\n"
        "app = QCoreApplication([])\n"
        "for _ in range(300_000):\n"
        "    QCoreApplication.processEvents()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-500:]


def test_building_windows_then_exiting_does_not_abort():
    """Each window drops references to True; without the guard a few windows abort at exit (bool_dealloc)."""
    code = (
        "import gui\n"
        "from gui.app import application, create_window\n"
        "app = application()\n"
        "for _ in range(8):\n"
        "    w = create_window('builtin:shapes', [], restore=False, start_engine=False)\n"
        "    app.processEvents()\n"
        "    w.close()\n"
        "    app.processEvents()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-500:]
