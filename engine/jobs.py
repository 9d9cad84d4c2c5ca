"""Requests, events and the job runner shared by the GUI, the CLI and scripts.

A job is a generator that yields Events and checks a CancelToken between steps.
The run state machine, as in pymmcore-plus' runner:

    submitted --run()--> running --(yields Progress / Frame)--> running
    running --generator ends-------> Finished(reason="done", result)
    running --token.cancel()-------> Finished(reason="cancelled", result=None)
    running --exception------------> Failed(message, detail, kind)

run() never raises: whatever happens, the last event it yields is Finished or
Failed, so the engine thread that drives it lives on. Handlers register with
@handler("kind") and receive (params, token); the module that defines a kind is
imported on first use so importing jobs stays free of TensorFlow.
"""

from __future__ import annotations

import importlib
import itertools
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from engine.errors import INTERNAL, OUT_OF_MEMORY, Cancelled, EngineError

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def next_job_id() -> int:
    """A process-wide increasing job id."""
    with _ids_lock:
        return next(_ids)


@dataclass(frozen=True)
class Request:
    """One unit of work for the engine: `kind` names the handler, `params` its arguments.

    `owner` names the view that asked (a newer request from the same owner cancels
    the older one in the GUI).
    """

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    owner: str = ""
    job_id: int = field(default_factory=next_job_id)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


P = TypeVar("P", bound="JobParams")


class JobParams:
    """Base of the frozen params dataclasses, one per job kind (`kind` names it).

    The dataclass holds each parameter's default in one place. A view builds one and submits
    `params.request(owner)`, so a misspelt name fails where it is written; a handler reads its
    params with `Params.parse(mapping)`, which also accepts a plain dict (the CLI, scripts, tests)
    and refuses unknown keys with one clear message instead of ignoring them.
    """

    kind: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[P], params: Mapping[str, Any] | JobParams) -> P:
        if isinstance(params, cls):
            return params
        values = dict(params.items() if isinstance(params, Mapping) else params.as_dict().items())
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:
            raise EngineError(
                f"unknown parameter(s) {', '.join(unknown)} for a {cls.kind!r} job; it takes {', '.join(sorted(names))}"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (shallow: arrays and objects are not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def request(self, owner: str = "") -> Request:
        """A Request of this kind carrying these params."""
        return Request(self.kind, self.as_dict(), owner)


@dataclass(frozen=True)
class Event:
    job_id: int


@dataclass(frozen=True)
class Progress(Event):
    step: int
    total: int
    loss: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Frame(Event):
    step: int
    images: Any  # float32 (B, H, W, C) in display range, or a dict of named arrays
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished(Event):
    reason: str  # "done" | "cancelled"
    result: Any = None


@dataclass(frozen=True)
class Failed(Event):
    """A job ended with an error: a one-line message, the traceback in detail, and its kind
    (an EngineError subclass's kind such as "unsafe_model", "not_an_image", "layer_not_found",
    "diverged", or "out_of_memory" / "internal") for picking a remedy without reading the text."""

    message: str
    detail: str = ""
    kind: str = "internal"


class CancelToken:
    """A job's handle inside the engine: a thread-safe cancel flag, and pause and step size.

    The job checks it between steps. Pause/resume and `lr_scale` (a factor on the step size
    from the next step on) are changed from another thread, as napari's worker has
    toggle_paused/send; a maximization or dream loop waits here while paused (still
    honouring cancel). Jobs without steps to pause simply ignore them.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.lr_scale = 1.0

    def cancel(self) -> None:
        self._event.set()
        self._running.set()  # a paused job wakes up to see it

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait(self, token: Any = None, poll: float = 0.05) -> None:
        """Block while paused; raise Cancelled if cancelled meanwhile (`token`: another one to check too)."""
        while not self._running.is_set() or self._event.is_set():
            if self._event.is_set() or (token is not None and token.cancelled):
                raise Cancelled()
            self._running.wait(poll)


Handler = Callable[[Mapping[str, Any], CancelToken], Any]
_HANDLERS: dict[str, Handler] = {}

# kind -> module that registers it; imported lazily by run()
_HANDLER_MODULES: dict[str, str] = {
    "load_model": "engine.job_handlers",
    "predict": "engine.job_handlers",
    "feature_maps": "engine.job_handlers",
    "filters": "engine.job_handlers",
    "receptive_field": "engine.job_handlers",
    "device": "engine.job_handlers",
    "sleep": "engine.job_handlers",
    "maximize": "engine.maximize.jobs",
    "dream": "engine.maximize.jobs",
    "unit_activity": "engine.maximize.jobs",
    "cam": "engine.attribution.jobs",
    "saliency": "engine.attribution.jobs",
    "metrics": "engine.attribution.jobs",
    "sanity": "engine.attribution.jobs",
    "compare_methods": "engine.attribution.jobs",
    "evaluate": "engine.attribution.evaluate_jobs",
    "scan": "engine.dataset.jobs",
    "scan_crops": "engine.dataset.jobs",
    "scan_compare": "engine.dataset.jobs",
    "scan_maps": "engine.dataset.jobs",
}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register `fn(params, token)` for requests of `kind`.

    The function may return a value (the Finished result) or be a generator that
    yields Events (Progress/Frame with job_id=0 are re-stamped) and returns the result.
    """

    def register(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return register


def register_module(kind: str, module: str) -> None:
    """Declare that importing `module` registers a handler for `kind` (keeps jobs import-light)."""
    _HANDLER_MODULES[kind] = module


def _find_handler(kind: str) -> Handler:
    if kind not in _HANDLERS and kind in _HANDLER_MODULES:
        importlib.import_module(_HANDLER_MODULES[kind])
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise EngineError(f"unknown job kind {kind!r}") from None


def restamp(event: Event, job_id: int) -> Event:
    """The event as one of job `job_id` (handlers yield events with job_id=0)."""
    if event.job_id == job_id:
        return event
    values = {f: getattr(event, f) for f in event.__dataclass_fields__}
    values["job_id"] = job_id
    return type(event)(**values)


def relay(out: Any, job_id: int, token: CancelToken | None = None) -> Iterator[Event]:
    """A handler's answer as events of job `job_id`: a generator's events re-stamped (checking
    `token` after each), then its return value; a plain value is returned as it is."""
    if not hasattr(out, "__next__"):
        return out
    while True:
        try:
            event = next(out)
        except StopIteration as stop:
            return stop.value
        yield restamp(event, job_id)
        if token is not None:
            token.raise_if_cancelled()


def run(request: Request, token: CancelToken | None = None) -> Iterator[Event]:
    """Run one request to completion, yielding its events; never raises."""
    token = token or CancelToken()
    job_id = request.job_id
    try:
        token.raise_if_cancelled()
        fn = _find_handler(request.kind)
        result = yield from relay(fn(request.params, token), job_id, token)
        yield Finished(job_id, "done", result)
    except Cancelled:
        yield Finished(job_id, "cancelled", None)
    except EngineError as exc:
        yield Failed(job_id, str(exc), traceback.format_exc(), exc.kind)
    except MemoryError:
        message = "out of memory: try a smaller image, batch or layer"
        yield Failed(job_id, message, traceback.format_exc(), OUT_OF_MEMORY)
    except Exception as exc:  # noqa: BLE001 - the thread must live on
        yield Failed(job_id, f"{type(exc).__name__}: {exc}", traceback.format_exc(), INTERNAL)


def run_sync(request: Request, token: CancelToken | None = None) -> Any:
    """Run a request in the caller's thread and return its result, raising EngineError on failure."""
    last: Event | None = None
    for event in run(request, token):
        last = event
    if isinstance(last, Failed):
        raise EngineError(last.message)
    assert isinstance(last, Finished)
    return last.result
