"""Benchmark a dataset scan on Ray against the local scan: images/s once started, and start-up apart.

    nice -n 5 python bench/scan_ray.py                       # 2,000 JPEGs, builtin:shapes, 2 rounds
    python bench/scan_ray.py --images 500 --rounds 1 --model keras:VGG16?weights=none --layer block4_conv3

Cases, on the same folder of generated 224x224 JPEGs (bench/scan.py's make_jpeg_folder), in one
process with an embedded Ray cluster started once, interleaved round by round:

    local     engine.scan (tf.data decode in parallel, the compiled step on all cores)
    ray x1    engine.scan(runner="ray", workers=1): one actor with every CPU
    ray x2    engine.scan(runner="ray", workers=2): two actors with one CPU each

"images/s once started" is the steady rate: the images between the first progress mark at or
past a quarter of the set and the end, over that time. It leaves out start-up (a Ray scan
starts its actors, imports TensorFlow and loads the model there; a local scan traces its step)
and the first shards, which finish together because the actors start together. "start-up" is
the time to the first progress mark; "cluster start" (ray.init of the embedded cluster) is
paid once per process and printed on its own. All runs use cache=False and the same batch.
Every scan's answer is checked against the local one (hits and values must be identical).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import machine_line  # noqa: E402


def timed_scan(h, source: str, layer: str, batch: int, **runner) -> dict:
    """One scan: start-up (to the first batch), images/s after it, total seconds, the result."""
    from engine.dataset import scan

    marks: list[tuple[float, int]] = []
    t0 = time.perf_counter()

    def progress(p) -> None:
        if p.step > (marks[-1][1] if marks else 0):  # a batch landed (status lines keep the count)
            marks.append((time.perf_counter(), p.step))

    result = scan(h, source, layer, 9, batch_size=batch, cache=False, progress=progress, **runner)
    t_end = time.perf_counter()
    t_first = marks[0][0]
    t_from, n_first = next((t, n) for t, n in marks if n >= result.total / 4)
    t_last, n_last = marks[-1]
    rate = (n_last - n_first) / (t_last - t_from) if t_last > t_from else float("nan")
    return {"startup": t_first - t0, "rate": rate, "total": t_end - t0, "result": result}


def same_answer(a, b) -> bool:
    import numpy as np

    return bool(
        np.array_equal(a.top_ids, b.top_ids)
        and np.array_equal(a.top_values, b.top_values)
        and np.array_equal(a.moments["mean"].count, b.moments["mean"].count)
        and np.allclose(a.moments["mean"].mean, b.moments["mean"].mean, rtol=1e-9)
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--model", default="builtin:shapes")
    ap.add_argument("--layer", default=None, help="default: the model's last conv layer")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "convscope-bench"))
    args = ap.parse_args()

    from scan import make_jpeg_folder, subset_folder

    print(machine_line())
    root = Path(args.data)
    root.mkdir(parents=True, exist_ok=True)
    full = make_jpeg_folder(root, max(args.images, 2000))
    folder = full if args.images == max(args.images, 2000) else subset_folder(full, args.images)

    import engine
    from engine.dataset import cluster

    h = engine.load_model(args.model)
    layer = args.layer or h.default_cam_layer()
    t = time.perf_counter()
    ray = cluster.connect(None)
    cluster_start = time.perf_counter() - t
    cpus = int(ray.cluster_resources().get("CPU", 0))
    print(f"# ONEDNN_MAX_CPU_ISA: {os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset (full ISA)')}")
    print(
        f"# {h.name} {layer}, {args.images:,} JPEGs 224x224 from {folder}, batch {args.batch}; "
        f"Ray {ray.__version__} embedded cluster with {cpus} CPUs started in {cluster_start:.1f} s"
    )

    cases = {
        "local": {},
        "ray x1": {"runner": "ray", "workers": 1},
        "ray x2": {"runner": "ray", "workers": 2},
    }
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    reference = None
    for r in range(args.rounds):
        for name, runner in cases.items():
            out = timed_scan(h, str(folder), layer, args.batch, **runner)
            if reference is None:
                reference = out["result"]
            out["same"] = same_answer(reference, out["result"])
            runs[name].append(out)
            print(
                f"  round {r + 1} {name:7s} start-up {out['startup']:5.1f} s  {out['rate']:7.1f} images/s  "
                f"total {out['total']:6.1f} s  same answer: {out['same']}",
                flush=True,
            )

    local_rate = statistics.median(o["rate"] for o in runs["local"])
    print()
    print(
        "| runner | start-up s (to the first shard) | images/s once started (last 3/4) | vs local | total s | same answer |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name, outs in runs.items():
        rate = statistics.median(o["rate"] for o in outs)
        startup = statistics.median(o["startup"] for o in outs)
        total = statistics.median(o["total"] for o in outs)
        same = all(o["same"] for o in outs)
        print(f"| {name} | {startup:.1f} | {rate:,.1f} | {rate / local_rate:.2f} | {total:.1f} | {same} |")
    print(f"\ncluster start (ray.init, once per process): {cluster_start:.1f} s; {machine_line()}")
    cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
