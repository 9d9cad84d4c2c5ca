"""Application entry: `main(argv)` for `python main.py`, `create_window()` for tests and scripts.

The window is built and shown before the engine thread starts importing TensorFlow,
so it appears in about a second and says "loading engine…" until the engine is ready.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterable

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtWidgets import QApplication

from gui import settings as cfg
from gui.main_window import MainWindow


def application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once, with Convscope's organization and application names)."""
    app = QApplication.instance()
    if app is None:
        QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        app = QApplication(list(argv) if argv else [sys.argv[0] if sys.argv else "convscope"])
    app.setOrganizationName(cfg.ORGANIZATION)
    app.setApplicationName(cfg.APPLICATION)
    app.setApplicationDisplayName("Convscope")
    return app  # type: ignore[return-value]


def create_window(
    model_spec: str | None = "builtin:digits",
    images: Iterable[str] = (),
    *,
    show: bool = True,
    start_engine: bool = True,
    restore: bool = True,
) -> MainWindow:
    """Build the main window (QApplication must exist); the engine starts once it is shown."""
    window = MainWindow(model_spec, images, start_engine=start_engine, restore=restore)
    if show:
        window.show()
    return window


def main(argv: list[str] | None = None) -> int:
    """Open the window (default model builtin:digits and the sample images); returns the exit code."""
    parser = argparse.ArgumentParser(prog="convscope", description="Open the Convscope window.")
    parser.add_argument(
        "--model", default="builtin:digits", help="model to open (path, builtin:NAME, keras:NAME)"
    )
    parser.add_argument("images", nargs="*", help="image files or folders to open")
    args, qt_args = parser.parse_known_args(list(argv or []))
    app = application([sys.argv[0] if sys.argv else "convscope", *qt_args])
    window = create_window(args.model, args.images)
    window.raise_()
    # Ctrl+C in the terminal closes the window cleanly (engine thread stopped); the timer
    # wakes the interpreter now and then so Python's signal handler gets to run.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    code = app.exec()
    if not window._closed:  # the app quit another way: still stop the engine thread cleanly
        window.close()
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
