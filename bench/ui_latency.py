"""UI latency of the Convscope window: event-loop stalls while the feature-map view streams, and start-up time.

1. Stalls: a QTimer heartbeat (every 5 ms) on the main thread records the gap between
   ticks while the feature-map view shows a stream of Frame events from a long engine
   job; the worst extra delay over the interval is the worst stall. Target <= 50 ms.
   An idle row (same window, no job) shows what the machine's own load adds: on a shared
   2-core box other processes alone can delay a thread by tens of milliseconds.
   Streams: "synthetic" (512 maps of 28x28 at 60 frames a second, NumPy only) and "tf" (a real TensorFlow job: VGG16 weights=None, block4_conv3,
   28x28x512, one forward pass per frame, so the GIL is shared with TensorFlow).
2. Start-up: time from process launch to the window drawn on screen, versus the time of
   `import tensorflow` alone in a fresh process. Target: window < half the import time.

Usage: python bench/ui_latency.py [--seconds 8] [--repeats 3] [--skip-tf]
Runs on the current DISPLAY, else Qt's offscreen platform (stated in the table).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CONVSCOPE_CONFIG_DIR", tempfile.mkdtemp(prefix="convscope-bench-"))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HEARTBEAT_MS = 5

_WINDOW_CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from gui.app import application, create_window
from PySide6.QtCore import QTimer
app = application([])
w = create_window("builtin:digits")
def drawn():
    w.repaint()
    print("SHOWN", time.time(), flush=True)
    w.close()
    app.quit()
w.first_shown.connect(lambda t: QTimer.singleShot(0, drawn))
if w.isVisible():
    QTimer.singleShot(0, drawn)
app.exec()
"""

_TF_CHILD = """
import time
import tensorflow
print("SHOWN", time.time(), flush=True)
"""


def _launch(code: str) -> float:
    """Seconds from launching a fresh interpreter to its "SHOWN <time>" line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    for line in out.stdout.splitlines():
        if line.startswith("SHOWN "):
            return float(line.split()[1]) - t0
    raise RuntimeError(f"child failed: {out.stderr[-1500:]}")


def startup(repeats: int) -> tuple[float, float]:
    window = [_launch(_WINDOW_CHILD.format(root=str(ROOT))) for _ in range(repeats)]
    tf = [_launch(_TF_CHILD) for _ in range(repeats)]
    return statistics.median(window), statistics.median(tf)


def _register_jobs() -> None:
    import numpy as np

    from engine import jobs
    from engine.jobs import Frame

    @jobs.handler("bench_synthetic_stream")
    def _synthetic(params, token):
        rng = np.random.default_rng(0)
        base = rng.random((28, 28, 512), dtype=np.float32)
        end = time.perf_counter() + float(params["seconds"])
        i = 0
        while time.perf_counter() < end:
            token.raise_if_cancelled()
            maps = base * np.float32(1 + 0.5 * np.sin(i / 10)) + np.float32(i % 7)
            yield Frame(0, i, {params["layer"]: maps})
            time.sleep(1 / 60)  # a fast optimization job: 60 steps a second
            i += 1
        return i

    @jobs.handler("bench_tf_stream")
    def _tf(params, token):
        from engine.activations import clear_cache, feature_maps
        from engine.job_handlers import current_model

        h = current_model(params)
        rng = np.random.default_rng(0)
        end = time.perf_counter() + float(params["seconds"])
        i = 0
        while time.perf_counter() < end:
            token.raise_if_cancelled()
            img = rng.random((224, 224, 3), dtype=np.float32)
            clear_cache()
            maps = feature_maps(h, img, [params["layer"]])[params["layer"]]
            yield Frame(0, i, {params["layer"]: maps})
            i += 1
        return i


def stalls(kind: str, seconds: float) -> dict[str, float]:
    """Worst and 99th-percentile heartbeat delay (ms) while the view streams; frames produced and shown."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from gui.app import application, create_window

    app = application([])
    spec = "keras:VGG16?weights=none" if kind == "tf" else None
    window = create_window(spec, [], restore=False)
    view = window.view("feature_maps")
    deadline = time.perf_counter() + 300
    while not window.client.is_ready or (spec and window.state.model is None) or window.client.busy():
        app.processEvents()
        time.sleep(0.01)
        if time.perf_counter() > deadline:
            raise RuntimeError("engine did not become ready")
    layer = "block4_conv3"
    shown = {"n": 0}
    original = view._on_rendered

    def counting(out):
        original(out)
        shown["n"] += 1

    view.renderer.done.disconnect()
    view.renderer.done.connect(counting)

    gaps: list[float] = []
    clock = QElapsedTimer()
    heartbeat = QTimer()
    heartbeat.setTimerType(heartbeat.timerType().PreciseTimer)
    heartbeat.setInterval(HEARTBEAT_MS)

    started = time.perf_counter()
    where: list[float] = []

    def beat():
        gaps.append(clock.nsecsElapsed() / 1e6)
        where.append(time.perf_counter() - started)
        clock.restart()

    heartbeat.timeout.connect(beat)
    result: dict = {}
    window.client.finished.connect(
        lambda e: result.setdefault("frames", e.result) if e.job_id == job else None
    )
    job = -1
    loop = QEventLoop()
    clock.start()
    heartbeat.start()
    if kind == "idle":  # the same window, nothing streaming: what the machine itself adds
        result["frames"] = 0
        QTimer.singleShot(int(seconds * 1000), loop.quit)
    else:
        job_kind = "bench_tf_stream" if kind == "tf" else "bench_synthetic_stream"
        view.maps_layer = layer
        job = view.submit(job_kind, {"seconds": seconds, "layer": layer})
        window.client.finished.connect(lambda e: loop.quit() if e.job_id == job else None)
    loop.exec()  # the real event loop, as in the app
    heartbeat.stop()
    while view.renderer.busy():
        app.processEvents()
    window.close()
    if os.environ.get("UI_LATENCY_DEBUG"):
        worst = sorted(zip(gaps[1:], where[1:]), reverse=True)[:5]
        print(kind, "worst gaps (ms, at s):", [(round(g), round(t, 2)) for g, t in worst], file=sys.stderr)
    late = sorted(max(0.0, g - HEARTBEAT_MS) for g in gaps[1:])
    return {
        "worst_ms": late[-1] if late else 0.0,
        "p99_ms": late[int(len(late) * 0.99) - 1] if late else 0.0,
        "frames": float(result["frames"]),
        "shown": float(shown["n"]),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-tf", action="store_true", help="skip the TensorFlow stream (VGG16)")
    args = parser.parse_args()

    window_s, tf_s = startup(args.repeats)
    _register_jobs()
    rows = [("idle", stalls("idle", args.seconds)), ("synthetic", stalls("synthetic", args.seconds))]
    if not args.skip_tf:
        rows.append(("tf", stalls("tf", args.seconds)))

    from PySide6.QtWidgets import QApplication

    platform = QApplication.instance().platformName()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nConvscope UI latency ({os.cpu_count()} CPUs, load average {load} (1, 5, 15 min), Qt platform "
        f"{platform}, heartbeat {HEARTBEAT_MS} ms)\n"
    )
    print(
        "| stream (feature-map view, 512 maps 28x28) | frames made | frames shown | worst stall ms | p99 ms | target |"
    )
    print("|---|---:|---:|---:|---:|---|")
    names = {
        "idle": "baseline: window idle, no job",
        "synthetic": "synthetic stream, 60 frames/s",
        "tf": "TensorFlow job (VGG16 block4_conv3)",
    }
    for kind, r in rows:
        ok = "ok" if r["worst_ms"] <= 50 else "MISSED"
        if kind == "idle":
            ok = "(reference)"
        print(
            f"| {names[kind]} | {r['frames']:.0f} | {r['shown']:.0f} | {r['worst_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| <= 50 ms {ok} |"
        )
    ratio = window_s / tf_s
    print(f"\n| start-up (median of {args.repeats}) | seconds |")
    print("|---|---:|")
    print(f"| process start -> window drawn | {window_s:.2f} |")
    print(f"| `import tensorflow` alone | {tf_s:.2f} |")
    print(f"| ratio (target < 0.5) | {ratio:.2f} {'ok' if ratio < 0.5 else 'MISSED'} |")


if __name__ == "__main__":
    main()
