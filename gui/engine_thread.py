"""The one long-lived engine thread of the GUI, and its main-thread client.

The state machine, as in pymmcore-plus' runner::

    EngineClient.start() --> thread starts --> imports TensorFlow (a "device" job)
        --> ready(device) signal; the window is already on screen meanwhile
    submit(request) --> queued --> running (started signal) --> Progress/Frame signals
        --> finished(Finished) | failed(Failed)
    submit(newer request with the same owner) --> the older one's CancelToken is set;
        a queued job that was cancelled ends at once with Finished(reason="cancelled")
    shutdown() --> every token cancelled, a stop sentinel queued, the thread joined

The worker (a QObject moved to a QThread) takes requests from a queue.Queue and runs
them one at a time through engine.jobs.run, which never raises. Its signals reach the
main thread as queued connections. Frames and progress are coalesced through a
"latest wins" mailbox per job: the worker only signals when the mailbox was empty, the
main thread takes whatever is newest when it gets round to it, so a fast stream never
builds a backlog in the event loop. Finished and Failed always arrive after the last
frame of their job. Views keep the id of their current job and drop other events.

EngineClientBase holds what the window and its views use (the signals, submit with the
owner-supersedes rule, cancel/pause/step size on the job's CancelToken, current/owner_of);
EngineClient is its engine-thread implementation, and the GUI tests' FakeEngineClient
answers from recorded typed results without TensorFlow.

Nothing here imports TensorFlow: the engine does, on the worker thread.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from engine.jobs import CancelToken, Failed, Finished, Frame, Progress, Request, run

_STOP = object()
ENGINE_NICE = 5  # the engine thread (and TensorFlow's threads it spawns) yield the CPU to the UI


def lower_priority(nice: int = ENGINE_NICE) -> None:
    """Lower the calling thread's CPU priority (Linux: per-thread nice); a no-op where unsupported.

    Threads created afterwards inherit it, so TensorFlow's thread pools, started on the
    engine thread, never compete on equal terms with the event loop.
    """
    if nice <= 0 or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        target = min(os.getpriority(os.PRIO_PROCESS, os.getpid()) + nice, 19)  # relative to the main thread
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError:
        pass


class MainThreadGC(QObject):
    """Cyclic garbage collection on the main thread only, while any engine thread runs.

    Python's collector runs in whichever thread happens to allocate when a threshold
    is crossed; on the engine thread it could destroy Qt objects (a closed window in a
    reference cycle) away from the GUI thread and crash. So while an EngineClient is
    running, automatic collection is off and a timer collects here, generation by
    generation, with the usual thresholds (as pyqtgraph's GarbageCollector does).
    """

    INTERVAL_MS = 100  # often enough that each collection stays small
    _users = 0
    _instance: MainThreadGC | None = None

    def __init__(self) -> None:
        super().__init__()
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.setInterval(self.INTERVAL_MS)
        self.timer.timeout.connect(self.check)

    @classmethod
    def acquire(cls) -> None:
        if cls._users == 0:
            if cls._instance is None:
                cls._instance = MainThreadGC()
            gc.disable()
            cls._instance.timer.start()
        cls._users += 1

    @classmethod
    def release(cls) -> None:
        cls._users = max(cls._users - 1, 0)
        if cls._users == 0 and cls._instance is not None:
            cls._instance.timer.stop()
            gc.collect()
            gc.enable()

    def check(self) -> None:
        l0, l1, l2 = gc.get_count()
        if l0 > self.threshold[0]:
            gc.collect(0)
            if l1 > self.threshold[1]:
                gc.collect(1)
                if l2 > self.threshold[2]:
                    gc.collect(2)


class _Mailbox:
    """Latest Frame and Progress per job id, shared by the worker and the main thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[int, str], Any] = {}

    def put(self, key: tuple[int, str], event: Any) -> bool:
        """Store the newest event; True when the slot was empty (the caller must signal)."""
        with self._lock:
            empty = key not in self._items
            self._items[key] = event
            return empty

    def take(self, key: tuple[int, str]) -> Any:
        with self._lock:
            return self._items.pop(key, None)


class _Tokens:
    """CancelTokens by job id, guarded by a lock (both threads touch them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, CancelToken] = {}

    def add(self, job_id: int) -> CancelToken:
        with self._lock:
            token = self._items[job_id] = CancelToken()
            return token

    def get(self, job_id: int) -> CancelToken | None:
        with self._lock:
            return self._items.get(job_id)

    def pop(self, job_id: int) -> None:
        with self._lock:
            self._items.pop(job_id, None)

    def all(self) -> list[CancelToken]:
        with self._lock:
            return list(self._items.values())


class EngineWorker(QObject):
    """Runs requests from a queue on the engine thread; emits plain engine events."""

    ready = Signal(str)  # device name ("CPU" or "GPU: ...") once TensorFlow is imported
    started = Signal(object)  # Request, when it starts running
    progress_ready = Signal(int)  # job id: a Progress waits in the mailbox
    frame_ready = Signal(int)  # job id: a Frame waits in the mailbox
    finished = Signal(object)  # Finished
    failed = Signal(object)  # Failed
    stopped = Signal()

    def __init__(self, jobs: queue.Queue, tokens: _Tokens, mailbox: _Mailbox) -> None:
        super().__init__()
        self._jobs = jobs
        self._tokens = tokens
        self._mailbox = mailbox
        self.device = ""

    @Slot()
    def loop(self) -> None:
        """Import TensorFlow, then run queued requests until the stop sentinel."""
        lower_priority()  # before TensorFlow starts its compute threads, which inherit it
        boot = Request("device", owner="engine")
        for event in run(boot, CancelToken()):
            if isinstance(event, Finished):
                self.device = str(event.result)
                self.ready.emit(self.device)
            elif isinstance(event, Failed):
                self.device = "engine failed"
                self.ready.emit(f"engine failed: {event.message}")
        # TensorFlow's import leaves ~400k long-lived objects; a full collection walking them
        # holds the GIL for ~0.5 s and freezes the window. They live as long as the process,
        # so move them out of the collector's reach (later objects, models included, are
        # still collected as usual).
        gc.freeze()
        while True:
            item = self._jobs.get()
            if item is _STOP:
                break
            request: Request = item
            token = self._tokens.get(request.job_id) or CancelToken()
            if token.cancelled:  # cancelled while queued: it never starts
                self.finished.emit(Finished(request.job_id, "cancelled", None))
                self._tokens.pop(request.job_id)
                continue
            self.started.emit(request)
            for event in run(request, token):
                if isinstance(event, Frame):
                    if self._mailbox.put((event.job_id, "frame"), event):
                        self.frame_ready.emit(event.job_id)
                elif isinstance(event, Progress):
                    if self._mailbox.put((event.job_id, "progress"), event):
                        self.progress_ready.emit(event.job_id)
                elif isinstance(event, Failed):
                    self.failed.emit(event)
                else:
                    self.finished.emit(event)
            self._tokens.pop(request.job_id)
        self.stopped.emit()
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()  # we run inside the thread's exec(); it returns after this slot


class EngineClientBase(QObject):
    """What the window and its views see of an engine: signals, job handles and owner bookkeeping.

    Signals carry engine.jobs events (Progress, Frame, Finished, Failed) unchanged;
    `started` carries the Request that began running. `current(owner)` is the id of
    the owner's newest job; events of other ids from that owner are stale. A subclass
    runs the requests: EngineClient on its engine thread, the tests' FakeEngineClient
    (tests/gui/fake_engine.py) from recorded answers. It implements start(), shutdown()
    and _enqueue(), and ends each job through _finish().
    """

    ready = Signal(str)
    started = Signal(object)
    progress = Signal(object)
    frame = Signal(object)
    finished = Signal(object)
    failed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tokens = _Tokens()
        self._current: dict[str, int] = {}
        self._owner_of: dict[int, str] = {}
        self._pending: set[int] = set()
        self.device: str | None = None
        self.running: Request | None = None
        self._shut = False

    # ----- lifecycle ----------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        raise NotImplementedError

    @property
    def is_ready(self) -> bool:
        return self.device is not None

    # ----- jobs ---------------------------------------------------------
    def submit(self, request: Request) -> int:
        """Queue a request; an older job of the same owner is cancelled. Returns its job id."""
        if self._shut:
            return request.job_id
        owner = request.owner
        if owner:
            old = self._current.get(owner)
            if old is not None:
                self.cancel(old)
            self._current[owner] = request.job_id
        self._owner_of[request.job_id] = owner
        self._tokens.add(request.job_id)
        self._pending.add(request.job_id)
        self._enqueue(request)
        return request.job_id

    def _enqueue(self, request: Request) -> None:
        raise NotImplementedError

    def cancel(self, job_id: int) -> None:
        token = self._tokens.get(job_id)
        if token is not None:
            token.cancel()

    def pause(self, job_id: int, paused: bool = True) -> None:
        """Hold (or let go) a running job between its steps; a job without steps ignores it."""
        token = self._tokens.get(job_id)
        if token is not None:
            (token.pause if paused else token.resume)()

    def set_lr_scale(self, job_id: int, scale: float) -> None:
        """Multiply a running optimization's step size by `scale` from its next step on."""
        token = self._tokens.get(job_id)
        if token is not None:
            token.lr_scale = float(scale)

    def cancel_owner(self, owner: str) -> None:
        job_id = self._current.get(owner)
        if job_id is not None:
            self.cancel(job_id)

    def cancel_all(self) -> None:
        for token in self._tokens.all():
            token.cancel()

    def current(self, owner: str) -> int | None:
        """The id of owner's newest job (finished or not)."""
        return self._current.get(owner)

    def owner_of(self, job_id: int) -> str | None:
        return self._owner_of.get(job_id)

    def is_current(self, job_id: int) -> bool:
        owner = self._owner_of.get(job_id)
        return owner is not None and (not owner or self._current.get(owner) == job_id)

    def busy(self) -> bool:
        """True while any submitted job has not finished."""
        return bool(self._pending)

    def _finish(self, event: Finished | Failed) -> None:
        """A job ended (main thread): it is no longer pending or running; announce it."""
        job_id = event.job_id
        self._pending.discard(job_id)
        if self.running is not None and self.running.job_id == job_id:
            self.running = None
        if isinstance(event, Failed):
            self.failed.emit(event)
        else:
            self.finished.emit(event)


class EngineClient(EngineClientBase):
    """The main thread's handle on the engine thread: submit, cancel, and events as signals."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: queue.Queue = queue.Queue()
        self._mailbox = _Mailbox()
        self._thread = QThread()
        self._thread.setObjectName("convscope-engine")
        self._worker = EngineWorker(self._jobs, self._tokens, self._mailbox)
        self._worker.moveToThread(self._thread)
        # queued: loop() then runs inside the thread's event loop, so quit() from it ends exec()
        self._thread.started.connect(self._worker.loop, Qt.ConnectionType.QueuedConnection)
        w = self._worker
        for signal, slot in (
            (w.ready, self._on_ready),
            (w.started, self._on_started),
            (w.progress_ready, self._on_progress_ready),
            (w.frame_ready, self._on_frame_ready),
            (w.finished, self._on_done),
            (w.failed, self._on_done),
        ):
            signal.connect(slot)
        self._started = False

    # ----- lifecycle ----------------------------------------------------
    def start(self) -> None:
        """Start the engine thread (it imports TensorFlow first)."""
        if not self._started:
            self._started = True
            MainThreadGC.acquire()
            self._thread.start()

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        """Cancel everything, stop the thread and wait for it; True when it stopped in time."""
        if self._shut:
            return True
        self._shut = True
        self.cancel_all()
        self._jobs.put(_STOP)
        if not self._started:
            return True
        deadline = time.monotonic() + timeout_s
        while self._thread.isRunning() and time.monotonic() < deadline:
            self._thread.wait(50)
        stopped = not self._thread.isRunning()
        if stopped:
            self._thread.wait()
        MainThreadGC.release()
        return stopped

    def _enqueue(self, request: Request) -> None:
        self._jobs.put(request)

    # ----- worker signals (main thread) ---------------------------------
    def _on_ready(self, device: str) -> None:
        self.device = device
        self.ready.emit(device)

    def _on_started(self, request: Request) -> None:
        self.running = request
        self.started.emit(request)

    def _on_progress_ready(self, job_id: int) -> None:
        event = self._mailbox.take((job_id, "progress"))
        if event is not None:
            self.progress.emit(event)

    def _on_frame_ready(self, job_id: int) -> None:
        event = self._mailbox.take((job_id, "frame"))
        if event is not None:
            self.frame.emit(event)

    def _on_done(self, event: Finished | Failed) -> None:
        job_id = event.job_id
        # a frame or progress still in the mailbox comes first
        self._on_frame_ready(job_id)
        self._mailbox.take((job_id, "progress"))
        self._finish(event)
