"""Where the batched maximization step's time goes (issue 14), on the full ISA or an AVX2-only imitation.

VGG16 (weights=None) block3_conv1, 16 channels, 128x128, jitter + rotate + scale, as
bench/maximize.py (d) runs it. Times per step, interleaved in rounds (best round kept):

  step        engine.maximize's compiled train_step (what the loop calls), incl. one host read
  step without the contracted read-out   the same with engine.maximize.readout.READOUT = False (all C channels of the layer)
  step+host   the same plus everything the Python loop does per step (tf.constant, .numpy(), bool)
  step XLA    the same step body compiled with jit_compile=True
  net         forward + input gradient of the tap model alone (no transform, no update)
  net XLA     the same with jit_compile=True
  transform   the fused affine resample alone, forward + backward
  batch B     step time per image at other batch sizes (8, 32)

Run:  python bench/maximize_profile.py [--isa avx2] [--steps 10] [--rounds 2]
--isa avx2 sets ONEDNN_MAX_CPU_ISA=AVX2 and XLA_FLAGS=--xla_cpu_max_isa=AVX2 before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench._common import apply_isa, isa_line, peak_rss_mb  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", default="full", choices=("full", "avx2"))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--layer", default="block3_conv1")
    parser.add_argument("--batches", default="8,32", help="other batch sizes to time")
    parser.add_argument("--only", default="", help="comma-separated row-name prefixes to time (default all)")
    args = parser.parse_args()
    apply_isa(args.isa)

    import tensorflow as tf

    import engine
    from engine.maximize import readout as readout_mod
    from engine.maximize import run as run_mod
    from engine.maximize.graphs import call_taps, tap_model
    from engine.maximize.transforms import build, parse_transforms

    n, size, layer = args.channels, args.size, args.layer
    h = engine.load_model(f"keras:VGG16?weights=none&input={size}")

    def loop_of(batch: int, readout: bool = True):
        readout_mod.READOUT = readout
        try:
            for _ in engine.maximize(h, f"{layer}:0..{batch - 1}", steps=1, every=1):
                pass
        finally:
            readout_mod.READOUT = True
        return next(reversed(run_mod._LOOPS.values()))

    loop = loop_of(n)
    full_loop = loop_of(n, readout=False)
    taps = tap_model(h, (h.resolve(layer),), False, (size, size), pre=True)
    transform = build(parse_transforms(("jitter", "rotate", "scale"), (size, size)))
    x = tf.Variable(tf.random.uniform((n, size, size, 3)))
    paths = (h.resolve(layer),)
    idx = tf.range(n)

    def net_body(x01):
        with tf.GradientTape() as tape:
            tape.watch(x01)
            outs, _ = call_taps(taps, x01 * 255.0 - 120.0, paths, False)
            a = tf.reduce_mean(outs[paths[0]], axis=[1, 2])
            s = tf.reduce_sum(tf.gather(a, idx, batch_dims=1))
        return tape.gradient(s, x01)

    net = tf.function(net_body, autograph=False)
    net_xla = tf.function(net_body, autograph=False, jit_compile=True)

    @tf.function(autograph=False)
    def tf_transform(x01, t):
        with tf.GradientTape() as tape:
            tape.watch(x01)
            y = transform(x01, tf.stack([tf.constant(1), t]))
            s = tf.reduce_sum(y * y)
        return tape.gradient(s, x01)

    step_fn = loop.train_step
    lr = tf.constant(1.0)

    def timed(fn, steps):
        t0 = time.perf_counter()
        for i in range(steps):
            fn(i)
        return (time.perf_counter() - t0) / steps

    def host_loop(i):
        value, ok, _, _ = step_fn(tf.constant(i, tf.int32), tf.constant(1.0, tf.float32))
        value.numpy()
        bool(ok)

    others = {}
    scale: dict[str, float] = {}
    for b in (int(s) for s in args.batches.split(",") if s.strip()):
        lb = loop_of(b)
        others[f"step, batch {b} (per {n} images)"] = (lb.train_step, b)

    rows = {
        "step (compiled train_step)": lambda i: step_fn(tf.constant(i), lr)[0].numpy(),
        "step + the loop's host work": host_loop,
        "step without the contracted read-out": lambda i: full_loop.train_step(tf.constant(i), lr)[0].numpy(),
        "net: fwd + input grad only": lambda i: net(x).numpy(),
        "net, jit_compile=True": lambda i: net_xla(x).numpy(),
        "transform alone, fwd + bwd": lambda i: tf_transform(x, tf.constant(i)).numpy(),
    }
    for name, (fn, b) in others.items():
        rows[name] = lambda i, fn=fn: fn(tf.constant(i), lr)[0].numpy()
        scale[name] = n / b
    if args.only:
        keep = [k.strip() for k in args.only.split(",") if k.strip()]
        rows = {k: v for k, v in rows.items() if any(k.startswith(p) for p in keep)}
    for fn in rows.values():  # trace / compile
        fn(0)
        fn(1)
    best = {k: float("inf") for k in rows}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name, fn in rows.items():
            best[name] = min(best[name], timed(fn, args.steps))
    print(
        f"# maximize_profile: VGG16 weights=None {layer}, {n} images, {size}x{size}, {args.steps} steps x {args.rounds} rounds"
    )
    print(f"# {isa_line()}")
    print(f"# 1-min load {min(loads):.2f} .. {max(loads):.2f}; peak RSS {peak_rss_mb():.0f} MB")
    print()
    print("| part | ms per step (16 images) | share of step |")
    print("|---|---:|---:|")
    ref = best.get("step (compiled train_step)") or next(iter(best.values()))
    for name, t in best.items():
        t *= scale.get(name, 1.0)
        print(f"| {name} | {1000 * t:.1f} | {100 * t / ref:.0f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
