"""The per-image costs docs/scaling.md starts from, measured on this machine.

    nice -n 5 python bench/scan_cost.py                  # ~3 min on 2 cores
    python bench/scan_cost.py --images 64 --layer conv5_block3_out

Rows:

    model      keras:ResNet50?weights=none, the scan's compiled step to --layer (forward pass
               plus the per-channel max/argmax/mean in the graph), batch 16, 224x224, ms/image
               over all cores and per core; the first (tracing) batch excluded
    decode     an ImageNet-sized JPEG (500x375, quality 90, ~100 KB: shapes on textured noise)
               read, decoded and fitted to 224x224 by the scan's loader (PIL), ms/image on 1 core
    summary    the bytes one shard summary of a top-9 ImageNet scan carries back to the driver
               (2048 channels, 1,000 classes + all, 8,192 images) and the driver's time to fold
               one into the running state (RunningTopK.merge + RunningMoments.merge + per-image
               arrays)
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from _common import machine_line  # noqa: E402


def model_cost(images: int, layer: str, batch: int) -> tuple[float, int]:
    """ms per image of the scan step on all cores, and the layer's channel count."""
    import engine
    from engine.dataset.scanner import _step_fn
    from engine.scaling import to_model_range

    h = engine.load_model("keras:ResNet50?weights=none")
    path = h.resolve(layer)
    step = _step_fn(h, path)
    rng = np.random.default_rng(0)
    x = to_model_range(rng.random((batch, *h.input_shape), np.float32), h.scaling).astype(np.float32)
    step(x)  # trace
    t = time.perf_counter()
    done = 0
    while done < images:
        step(x)
        done += batch
    return (time.perf_counter() - t) / done * 1000.0, int(h.symbolic(path).shape[-1])


def decode_cost(n: int) -> tuple[float, float]:
    """ms per image to read, decode and fit a 500x375 JPEG to 224x224 (one core), and its KB."""
    from PIL import Image

    from engine.dataset.sources import fit_for_model
    from engine.images import decode_image
    from engine.zoo import shapes

    batch = next(shapes.iter_batches(1, seed=3, batch=1, size=375))
    rng = np.random.default_rng(1)
    canvas = rng.integers(60, 200, (375, 500, 3), dtype=np.uint8)
    canvas[:, 62:437] = np.maximum(canvas[:, 62:437] // 2, batch.images[0])
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    t = time.perf_counter()
    for _ in range(n):
        fit_for_model(decode_image(data, "photo.jpg"), (224, 224, 3))
    return (time.perf_counter() - t) / n * 1000.0, len(data) / 1024


def summary_cost(channels: int, classes: int = 1000, images: int = 8192, k: int = 9) -> tuple[float, float]:
    """(MB of one shard summary, ms for the driver to fold it) for an ImageNet-shaped scan."""
    from engine.dataset.reduce import BatchSummary
    from engine.dataset.running import RunningTopK
    from engine.dataset.stats import RunningMoments

    rng = np.random.default_rng(2)
    groups = classes + 1
    ids = np.arange(images)
    summary = BatchSummary(
        first=0,
        end=images,
        ids=ids,
        labels=rng.integers(0, classes, images),
        strongest_channel=rng.integers(0, channels, images).astype(np.int32),
        strongest_value=rng.random(images, np.float32),
        top_values=rng.random((channels, k), np.float32),
        top_ids=rng.integers(0, images, (channels, k)),
        top_pos=rng.integers(0, 49, (channels, k)),
        moments={
            s: (np.full(groups, 8, np.int64), rng.random((groups, channels)), rng.random((groups, channels)))
            for s in ("mean", "max")
        },
    )
    size = sum(a.nbytes for a in summary.to_columns().values()) / 1e6
    top = RunningTopK(channels, k)
    moments = {s: RunningMoments(groups, channels) for s in ("mean", "max")}
    labels = np.full(1_281_167, -1, np.int64)
    t = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        top.merge(summary.top_values, summary.top_ids, summary.top_pos)
        for s, m in moments.items():
            m.merge(*summary.moments[s])
        labels[summary.ids] = summary.labels
    return size, (time.perf_counter() - t) / rounds * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=96, help="images through the model (default 96)")
    ap.add_argument("--layer", default="conv5_block3_out")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--decode", type=int, default=200, help="JPEGs decoded (default 200)")
    args = ap.parse_args()
    print(machine_line())
    import os

    cores = os.cpu_count() or 1
    decode_ms, kb = decode_cost(args.decode)
    model_ms, channels = model_cost(args.images, args.layer, args.batch)
    mb, fold_ms = summary_cost(channels)
    print()
    print("| cost | value |")
    print("|---|---:|")
    print(
        f"| ResNet50 (weights=None) to {args.layer}, batch {args.batch}, 224 px: ms/image on {cores} cores "
        f"| {model_ms:.1f} |"
    )
    print(f"| same, core-ms/image | {model_ms * cores:.1f} |")
    print(f"| decode + fit a 500x375 JPEG ({kb:.0f} KB) to 224 px, ms/image on 1 core | {decode_ms:.2f} |")
    print(f"| one shard summary (8,192 images, {channels} channels, 1,001 groups), MB | {mb:.1f} |")
    print(f"| driver fold of one shard summary, ms | {fold_ms:.1f} |")
    print(f"\n{machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
