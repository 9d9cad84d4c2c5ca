"""Small work for a QThreadPool: decode an image, list a folder, make thumbnails.

`BackgroundTask(fn, *args)` runs `fn(*args)` on a pool thread at a lowered CPU priority, so
the event loop and the engine thread keep theirs. `fn` reports back through the signals of
a QObject it is handed (queued to the main thread), tagged with a generation number the
receiver compares with its own to drop answers it no longer wants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QRunnable

from gui.engine_thread import lower_priority

POOL_NICE = 2  # a little below the main thread


class BackgroundTask(QRunnable):
    """A QRunnable that calls fn(*args) at a lowered priority (exceptions are fn's to report)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__()
        self._fn, self._args = fn, args

    def run(self) -> None:
        lower_priority(POOL_NICE)
        self._fn(*self._args)
