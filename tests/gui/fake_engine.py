"""A fake engine client for view tests: it answers requests with recorded typed results.

FakeEngineClient has EngineClient's public API (it shares gui.engine_thread.EngineClientBase:
the signals, submit with the owner-supersedes rule, cancel/pause/lr_scale on the job's
CancelToken, current/owner_of/is_current/busy), but no engine thread and no TensorFlow.
start() announces `device` on the next event-loop turn; each request then runs on the main
thread, one at a time and one event per turn (QTimer.singleShot), like the real runner:

    submitted --(the previous job ended)--> started(request) --> Progress/Frame ...
        --> Finished(reason="done", result) | Failed(message, detail, kind)
    cancelled (a newer request of the same owner, cancel, cancel_all) while queued or between
        two events --> Finished(reason="cancelled")
    paused --> no further events until resumed (cancel still ends it)

An answer is recorded per kind in `answers` and receives the request's params parsed into the
kind's typed JobParams (so an unknown key fails as it would in the engine):

    a callable     fn(params) -> the result, or a generator yielding Progress/Frame and
                   returning the result (as an engine handler does); raising EngineError
                   gives Failed with the error's kind
    a list         of events: Progress/Frame, then Finished or Failed (job ids are re-stamped)
    anything else  the result itself

A kind without an answer fails with kind "internal" and is listed in `unanswered`.
`recorded_answers()` holds typed results for the tiny model of tests/gui/conftest.py (conv1,
pool1, block/inner_conv, flatten, dense1, probs) built by hand: a ModelSummary with its
LayerInfo tree, feature maps, filters, receptive fields, probabilities and (once
engine.attribution.contract exists) a CamOutput. fake_window() opens a MainWindow on a fake
(fake_attribution_window() on its Attribution tab, the first map drawn);
wait_until()/pump() wait with a QEventLoop, never QTest.qWait (which holds the GIL).
"""

from __future__ import annotations

import importlib
import traceback
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEventLoop, QObject, QTimer

from engine.contract import ModelSummary
from engine.errors import INTERNAL, EngineError, LayerNotFound
from engine.jobs import Event, Failed, Finished, Frame, JobParams, Progress, Request, relay, restamp
from engine.models import LayerInfo
from engine.receptive_field import ReceptiveField
from gui.engine_thread import EngineClientBase

Answer = Any  # a callable, a list of events or the result itself (see the module docstring)

# modules whose JobParams subclasses name the kinds' params; missing ones are skipped
CONTRACT_MODULES = (
    "engine.contract",
    "engine.maximize.contract",
    "engine.attribution.contract",
    "engine.dataset.contract",
)
PAUSED_POLL_MS = 10
TINY_SPEC = "fake/tiny.keras"


def params_classes() -> dict[str, type[JobParams]]:
    """kind -> its typed params class, from the contract modules that exist."""
    for name in CONTRACT_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    out: dict[str, type[JobParams]] = {}
    todo = list(JobParams.__subclasses__())
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        if cls.kind and "__dataclass_fields__" in vars(cls):
            out.setdefault(cls.kind, cls)
    return out


def wait_until(predicate: Callable[[], Any], timeout_ms: int = 5000, step_ms: int = 5) -> None:
    """Run the event loop until predicate() is true; AssertionError after timeout_ms.

    A QEventLoop with a single-shot timer: unlike QTest.qWait / qtbot.wait it releases the
    GIL, so render and image threads get on meanwhile.
    """
    waited = 0
    while not predicate():
        if waited >= timeout_ms:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for {predicate}")
        loop = QEventLoop()
        QTimer.singleShot(step_ms, loop.quit)
        loop.exec()
        waited += step_ms


def pump(ms: int) -> None:
    """Run the event loop for ms milliseconds."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


class FakeEngineClient(EngineClientBase):
    """EngineClient's stand-in: answers each request from `answers` on the main thread."""

    def __init__(
        self,
        answers: Mapping[str, Answer] | None = None,
        parent: QObject | None = None,
        *,
        device: str = "CPU (fake)",
        step_ms: int = 0,
    ) -> None:
        super().__init__(parent)
        self.answers: dict[str, Answer] = dict(answers or {})
        self.fake_device = device
        self.step_ms = step_ms  # between two events of a job
        self.requests: list[Request] = []  # every request submitted, in order
        self.emitted: list[Event] = []  # every Progress/Frame/Finished/Failed emitted, in order
        self.unanswered: list[str] = []  # kinds asked for without a recorded answer
        self._params_classes = params_classes()
        self._queue: deque[Request] = deque()
        self._script: Iterator[Event] | None = None
        self._scheduled = False
        self._started = False

    # ----- lifecycle ----------------------------------------------------
    def start(self) -> None:
        """Announce `device` (ready) on the next turn of the event loop, then answer requests."""
        if not self._started:
            self._started = True
            QTimer.singleShot(0, self, self._boot)

    def _boot(self) -> None:
        if self._shut:
            return
        self.device = self.fake_device
        self.ready.emit(self.device)
        self._schedule()

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        """Cancel everything and answer nothing more."""
        if not self._shut:
            self._shut = True
            self.cancel_all()
            self._queue.clear()
        return True

    # ----- recorded answers ---------------------------------------------
    def answer(self, kind: str, value: Answer) -> None:
        """Record (or replace) the answer to requests of `kind`."""
        self.answers[kind] = value

    def requests_of(self, kind: str) -> list[Request]:
        return [r for r in self.requests if r.kind == kind]

    def events_of(self, job_id: int) -> list[Event]:
        return [e for e in self.emitted if e.job_id == job_id]

    def ended(self, job_id: int) -> Finished | Failed | None:
        """The Finished or Failed of job_id, None while it has not ended."""
        for event in self.events_of(job_id):
            if isinstance(event, Finished | Failed):
                return event
        return None

    # ----- running --------------------------------------------------------
    def _enqueue(self, request: Request) -> None:
        self.requests.append(request)
        self._queue.append(request)
        self._schedule()

    def _schedule(self, ms: int | None = None) -> None:
        if not self._scheduled and self._started and not self._shut:
            self._scheduled = True
            QTimer.singleShot(self.step_ms if ms is None else ms, self, self._step)

    def _step(self) -> None:
        """One turn: start the next queued job, or emit the running job's next event."""
        self._scheduled = False
        if self._shut or self.device is None:
            return
        if self.running is None:
            if not self._queue:
                return
            request = self._queue.popleft()
            token = self._tokens.get(request.job_id)
            if token is None or token.cancelled:  # cancelled while queued: it never starts
                self._end(Finished(request.job_id, "cancelled", None))
            else:
                self.running = request
                self.started.emit(request)
                self._script = self._events(request)
            self._schedule()
            return
        token = self._tokens.get(self.running.job_id)
        if token is not None and token.cancelled:
            self._end(Finished(self.running.job_id, "cancelled", None))
        elif token is not None and token.paused:
            self._schedule(PAUSED_POLL_MS)
            return
        else:
            assert self._script is not None
            event = next(self._script)
            if isinstance(event, Finished | Failed):
                self._end(event)
            else:
                self.emitted.append(event)
                (self.frame if isinstance(event, Frame) else self.progress).emit(event)
        self._schedule()

    def _end(self, event: Finished | Failed) -> None:
        self._script = None
        self._tokens.pop(event.job_id)
        self.emitted.append(event)
        self._finish(event)

    def _events(self, request: Request) -> Iterator[Event]:
        """The job's events, ending with Finished or Failed (as engine.jobs.run: never raises)."""
        job_id = request.job_id
        try:
            if request.kind not in self.answers:
                self.unanswered.append(request.kind)
                raise RuntimeError(f"FakeEngineClient has no recorded answer for {request.kind!r}")
            answer = self.answers[request.kind]
            cls = self._params_classes.get(request.kind)
            params = cls.parse(request.params) if cls is not None else dict(request.params)
            if isinstance(answer, list | tuple) and all(isinstance(e, Event) for e in answer):
                ended = False
                for event in answer:
                    yield restamp(event, job_id)
                    ended = isinstance(event, Finished | Failed)
                    if ended:
                        return
                yield Finished(job_id, "done", None)
                return
            result = yield from relay(answer(params) if callable(answer) else answer, job_id)
            yield Finished(job_id, "done", result)
        except EngineError as exc:
            yield Failed(job_id, str(exc), traceback.format_exc(), exc.kind)
        except Exception as exc:  # noqa: BLE001 - like the engine thread, the fake lives on
            yield Failed(job_id, f"{type(exc).__name__}: {exc}", traceback.format_exc(), INTERNAL)


@contextmanager
def fake_window(fake: FakeEngineClient, images: list[str], spec: str = TINY_SPEC) -> Iterator[Any]:
    """A shown MainWindow on `fake`: the model loaded, the first image decoded, nothing pending."""
    from gui.main_window import MainWindow

    w = MainWindow(spec, images, restore=False, client=fake)
    w.ask = lambda question: False
    w.show()
    try:
        wait_until(lambda: w.state.model is not None and w.state.image is not None and not fake.busy())
        yield w
    finally:
        w.close()
        w.deleteLater()
        pump(1)


@contextmanager
def fake_attribution_window(fake: FakeEngineClient, folder: Path) -> Iterator[Any]:
    """fake_window on write_digits(folder), on the Attribution tab with its first map drawn."""
    with fake_window(fake, write_digits(folder)) as w:
        view = w.view("attribution")
        w.tabs.setCurrentIndex(w.views.index(view))
        wait_until(lambda: view.result is not None and view.overlay_image() is not None and not fake.busy())
        yield w


def assert_tensorflow_free() -> None:
    """In the fresh process of test_views_fake.py's subprocess test (CONVSCOPE_FAKE_CHILD set), nothing
    may have imported TensorFlow or Keras (in a whole-suite run an earlier real-engine test's thread
    may still be importing it in the background, so the check runs there only)."""
    import os
    import sys

    if os.environ.get("CONVSCOPE_FAKE_CHILD"):
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules


def write_digits(folder: Path, n: int = 2) -> list[str]:
    """n small 28×28 grayscale PNGs (a bar each) in folder."""
    from PIL import Image

    paths = []
    for i in range(n):
        arr = np.zeros((28, 28), np.uint8)
        arr[4 + 3 * i : 22, 6:20] = 255
        path = folder / f"digit{i}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


# ----- recorded results: the tiny model of tests/gui/conftest.py ------------------------------
DIGIT_NAMES = tuple(str(i) for i in range(10))


def tiny_layers() -> tuple[LayerInfo, ...]:
    """The LayerInfo tree of conftest.build_tiny_model, as engine.models builds it."""
    inner = LayerInfo("block/inner_conv", "inner_conv", "Conv2D", (11, 11, 12), 876, "conv")
    return (
        LayerInfo("conv1", "conv1", "Conv2D", (26, 26, 8), 80, "conv"),
        LayerInfo("pool1", "pool1", "MaxPooling2D", (13, 13, 8), 0, "pool"),
        LayerInfo("block", "block", "Sequential", (11, 11, 12), 876, "model", (inner,)),
        LayerInfo("flatten", "flatten", "Flatten", (1452,), 0, "reshape"),
        LayerInfo("dense1", "dense1", "Dense", (16,), 23248, "dense"),
        LayerInfo("probs", "probs", "Dense", (10,), 170, "dense"),
    )


def tiny_summary(spec: str = TINY_SPEC, name: str = "tiny", device: str = "CPU (fake)") -> ModelSummary:
    """The "load_model" result for the tiny model."""
    layers = tiny_layers()
    return ModelSummary(
        name=name,
        spec=spec,
        input_shape=(28, 28, 1),
        scaling="0-1",
        class_names=DIGIT_NAMES,
        num_classes=10,
        output_activation="softmax",
        layers=layers,
        params=sum(info.params for info in layers),
        default_cam_layer="block/inner_conv",
        device=device,
    )


def _layer_index(summary: ModelSummary) -> dict[str, LayerInfo]:
    return {info.path: info for top in summary.layers for info in top.walk()}


def _rng(path: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(path.encode()))


def layer_output(info: LayerInfo) -> np.ndarray:
    """A deterministic float32 'activation' of the layer's output shape (non-negative, varied maps)."""
    shape = tuple(int(s or 1) for s in info.output_shape)
    a = _rng(info.path).random(shape, dtype=np.float32)
    if len(shape) == 3:
        a *= np.arange(1, shape[-1] + 1, dtype=np.float32)  # maps of different strength
    return a


def layer_kernel(info: LayerInfo, in_channels: int) -> np.ndarray:
    """A deterministic float32 kernel (kh, kw, cin, cout); a dense layer's as (1, 1, in, out)."""
    shape = (
        (3, 3, in_channels, info.output_shape[-1])
        if info.kind == "conv"
        else (1, 1, in_channels, info.output_shape[-1])
    )
    return _rng(info.path).normal(0.0, 0.3, shape).astype(np.float32)


TINY_KERNEL_INPUTS = {"conv1": 1, "block/inner_conv": 8, "dense1": 1452, "probs": 16}
TINY_FIELDS = {  # (size, stride, offset) per spatial layer
    "conv1": ((3, 3), (1, 1), (0, 0)),
    "pool1": ((4, 4), (2, 2), (0, 0)),
    "block/inner_conv": ((8, 8), (2, 2), (0, 0)),
}


def recorded_answers(summary: ModelSummary | None = None) -> dict[str, Answer]:
    """Typed answers for the foundation kinds on the tiny model (load_model answers `summary`)."""
    summary = summary or tiny_summary()
    index = _layer_index(summary)

    def info_of(path: str | None) -> LayerInfo:
        info = index.get(path or "")
        if info is None:
            raise LayerNotFound(f"no layer {path!r} in {summary.name}")
        return info

    def load_model(p: Any) -> ModelSummary:
        return summary

    def predict(p: Any) -> np.ndarray:
        if p.image is None:
            raise EngineError("no image selected")
        logits = np.linspace(2.0, -2.0, summary.num_classes, dtype=np.float32)
        e = np.exp(logits - logits.max())
        return (e / e.sum()).astype(np.float32)

    def feature_maps(p: Any) -> dict[str, np.ndarray]:
        layers = p.layers or ([p.layer] if p.layer else [])
        if not layers:
            raise EngineError("no layer: select one in the tree")
        if p.image is None:
            raise EngineError("no image selected")
        return {path: layer_output(info_of(path)) for path in layers}

    def filters(p: Any) -> np.ndarray:
        info = info_of(p.layer)
        if p.layer not in TINY_KERNEL_INPUTS:
            raise EngineError(f"layer {p.layer!r} ({info.type}) has no filter weights")
        return layer_kernel(info, TINY_KERNEL_INPUTS[p.layer])

    def receptive_field(p: Any) -> ReceptiveField:
        info_of(p.layer)
        if p.layer not in TINY_FIELDS:
            return ReceptiveField((28, 28), (28, 28), (0, 0), global_context=True)
        return ReceptiveField(*TINY_FIELDS[p.layer])

    answers: dict[str, Answer] = {
        "load_model": load_model,
        "predict": predict,
        "feature_maps": feature_maps,
        "filters": filters,
        "receptive_field": receptive_field,
    }
    try:
        from engine.attribution.contract import CamOutput, Prediction
    except ImportError:  # the attribution contract is not there (yet): no recorded "cam"
        return answers

    def cam(p: Any) -> CamOutput:
        from engine.attribution.cam import CamResult

        layer = p.layer or summary.default_cam_layer
        info = info_of(layer)
        if p.image is None:
            raise EngineError("no image selected")
        photo = np.asarray(p.image, np.float32)
        probs = predict(p)
        target = int(np.argmax(probs)) if p.target is None else int(p.target)
        h, w = (int(s) for s in info.output_shape[:2])
        coarse = layer_output(info)[..., 0] - 0.5  # signed (h, w)
        rows = np.arange(photo.shape[0]) * h // photo.shape[0]
        cols = np.arange(photo.shape[1]) * w // photo.shape[1]
        heat = coarse[rows][:, cols].astype(np.float32)
        names = summary.class_names or ()
        result = CamResult(
            cam=coarse.astype(np.float32),
            heatmap=heat,
            heatmap_relu=np.maximum(heat, 0.0),
            target=target,
            score=float(np.log(probs[target])),
            layer=str(layer),
            method=p.method,
            mapping=p.mapping,
            probabilities=probs,
            target_name=summary.class_name(target) if names else None,
            field=ReceptiveField(*TINY_FIELDS[layer]) if layer in TINY_FIELDS else None,
            model_shape=tuple(summary.input_shape[:2]),
        )
        top = np.argsort(probs)[::-1][: p.top_k]
        predictions = tuple(Prediction(int(i), summary.class_name(int(i)), float(probs[i])) for i in top)
        return CamOutput(result, None, predictions, photo, tuple(summary.input_shape[:2]))

    answers["cam"] = cam
    return answers


def failure(kind: str, message: str) -> list[Event]:
    """A recorded answer that fails with `kind` (e.g. "unsafe_model") and `message`."""
    return [Failed(0, message, "recorded failure", kind)]


def frames_then(result: Any, frames: list[Any], total: int | None = None) -> Callable[[Any], Iterator[Event]]:
    """An answer that streams `frames` (Frame.images) with progress, then returns `result`."""

    def answer(params: Any) -> Iterator[Event]:
        n = total or len(frames)
        for i, images in enumerate(frames):
            yield Progress(0, i + 1, n, None, f"step {i + 1}")
            yield Frame(0, i + 1, images, {"step": i + 1})
        return result

    return answer


def check_export_refuses_overwrite_and_reproduces(
    dialog: Any, out: Any, argv: list[str], monkeypatch: Any
) -> None:
    """A job dialog's written export: declining the overwrite question leaves the file as it is,
    and argv (the sidecar's `python main.py export ...` command, split) writes the same bytes."""
    from engine.cli import main

    questions: list[str] = []
    dialog.ask = lambda q: questions.append(q) or False
    before = out.read_bytes()
    assert not dialog.export_to(out)  # declined: nothing written
    assert questions and "Overwrite" in questions[0]
    assert out.read_bytes() == before
    monkeypatch.setenv("CONVSCOPE_DEBUG", "1")  # keep fd 2 as it is
    again = out.with_name("again" + out.suffix)
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(again)
    assert main(argv[2:]) == 0
    assert again.read_bytes() == before
