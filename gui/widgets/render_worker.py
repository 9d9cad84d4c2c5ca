"""Runs a pure NumPy render function off the main thread, newest request wins.

Views call `render(fn, *args)`; while one render is running a newer request replaces
any waiting one, and only the result of the newest request reaches `done`. The main
thread then only uploads a finished uint8 image, so streaming frames of a 512-channel
layer do not stall the event loop.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from gui.engine_thread import lower_priority


class _Signals(QObject):
    result = Signal(int, object, str)  # sequence, result, error


class _Job(QRunnable):
    def __init__(
        self, signals: _Signals, seq: int, fn: Callable[..., Any], args: tuple, kwargs: dict
    ) -> None:
        super().__init__()
        self.signals, self.seq, self.fn, self.args, self.kwargs = signals, seq, fn, args, kwargs

    def run(self) -> None:
        lower_priority(2)  # a busy render never delays the event loop's own work
        try:
            out = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # noqa: BLE001 - shown by the view
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.signals.result.emit(self.seq, None, f"{first}\n{traceback.format_exc()}")
        else:
            self.signals.result.emit(self.seq, out, "")


class RenderWorker(QObject):
    """Latest-wins background rendering; done(result) / failed(message) on the main thread."""

    done = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._signals = _Signals()
        self._signals.result.connect(self._on_result)
        self._seq = 0
        self._running = False
        self._waiting: tuple | None = None

    def render(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._seq += 1
        job = (self._seq, fn, args, kwargs)
        if self._running:
            self._waiting = job
        else:
            self._start(job)

    def _start(self, job: tuple) -> None:
        self._running = True
        self.pool.start(_Job(self._signals, *job))

    def busy(self) -> bool:
        return self._running or self._waiting is not None

    def _on_result(self, seq: int, out: Any, error: str) -> None:
        self._running = False
        if self._waiting is not None:
            job, self._waiting = self._waiting, None
            self._start(job)
            return  # a newer request is on its way; this result is stale
        if seq != self._seq:
            return
        if error:
            self.failed.emit(error)
        else:
            self.done.emit(out)

    def cancel(self) -> None:
        """Forget pending work (a running render finishes but its result is dropped)."""
        self._waiting = None
        self._seq += 1

    def shutdown(self) -> None:
        self.cancel()
        self.pool.waitForDone(5000)
