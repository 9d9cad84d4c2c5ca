"""Feature maps of every conv layer of VGG16 (weights=None, 224x224) in one pass, versus the alternatives.

Prints one table from one run (ratios side by side, since this machine is shared):
  predict     one `model.predict` of the whole network (the reference cost)
  convscope   engine.feature_maps for all 13 conv layers (one forward pass, cache cleared each time)
  naive       one sub-model per layer, each run with `predict` (what the classic notebooks do)
Target: convscope <= 1.5x predict.
Usage: python bench/feature_maps.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (graph building, first-call allocation)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import keras
    import numpy as np

    import engine
    from engine.activations import clear_cache

    h = engine.load_model("keras:VGG16?weights=none")
    convs = [i.path for i in h.all_layers() if i.kind == "conv"]
    img = np.random.default_rng(0).random((224, 224, 3), dtype=np.float32)
    x = engine.images.to_model_input(img, h)
    model = h.model

    def ours():
        clear_cache()
        maps = engine.feature_maps(h, img, convs)
        assert len(maps) == len(convs)

    naive_models = [keras.Model(model.inputs, model.get_layer(p).output) for p in convs]

    def naive():
        for m in naive_models:
            m.predict(x, verbose=0)

    t_predict = timed(lambda: model.predict(x, verbose=0), args.repeats)
    t_call = timed(lambda: model(x, training=False), args.repeats)
    t_ours = timed(ours, args.repeats)
    t_naive = timed(naive, max(1, args.repeats // 2))
    rows = [
        ("model.predict (1 image)", t_predict),
        ("model(x) direct call", t_call),
        (f"convscope feature_maps, {len(convs)} conv layers", t_ours),
        (f"naive: {len(convs)} sub-models x predict", t_naive),
    ]
    print(f"VGG16 weights=None, 224x224x3, CPU threads: {os.cpu_count()}, median of {args.repeats}")
    print(f"{'method':<44}{'ms':>10}{'x predict':>12}")
    for name, t in rows:
        print(f"{name:<44}{t * 1000:>10.1f}{t / t_predict:>12.2f}")
    verdict = "PASS" if t_ours <= 1.5 * t_predict else "FAIL"
    print(f"target convscope <= 1.5x predict: {verdict} ({t_ours / t_predict:.2f}x)")


if __name__ == "__main__":
    main()
