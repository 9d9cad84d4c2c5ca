"""Benchmark dataset scans: images/s against a plain model.predict, and peak memory vs dataset size.

    nice -n 5 python bench/scan.py                     # everything (VGG16 part: ~25 min on 2 shared CPU cores)
    python bench/scan.py --vgg-images 0                # digits only
    python bench/scan.py --vgg-images 400 --sizes 100,400

Cases (each measured in a fresh subprocess, so peak RSS is per case):

1. resources/data/mnist_5k (5,000 digits) through builtin:digits, layers Conv2D_2 and dense_1
   (median of --repeats interleaved runs).
2. A folder of generated 224x224 JPEGs (builtin:shapes drawn at 224 px, saved at quality 90 into
   one sub-folder per class) through keras:VGG16?weights=none, layer block4_conv3.

"scan" is engine.scan(cache=False): tf.data decode (PIL via engine.images) + fit + batch +
prefetch, the forward pass to the layer with per-image max/argmax/mean reduced in the graph,
the running top-k, crops and class statistics. "predict" is keras Model.predict of the same
sub-model (input -> layer) over the same images already decoded into one in-memory array (its
decode time is not counted), at the same batch size. Both exclude the first (tracing) call.
"decode" rows time the input pipeline alone: PIL in tf.data (what scans use) vs TensorFlow's
native tf.io.decode_jpeg + tf.image.resize (not used: no EXIF orientation, no 16-bit/palette
handling, a different resampling filter than the rest of the app).

Peak memory is the subprocess' ru_maxrss after the run; "model RSS" is the RSS right after
loading the model, so the difference is what the scan itself holds. It should stay flat as the
folder grows (only a few batches are ever in flight; the top-k state is units x k).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VGG = "keras:VGG16?weights=none"
VGG_LAYER = "block4_conv3"


def _rss_mb() -> float:
    """Current resident set size in MiB (from /proc/self/statm)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----- workers (run in subprocesses) ---------------------------------------------------------


def _warm_scan(h, layer: str, batch: int) -> None:
    import numpy as np

    from engine.dataset import ArraySource, scan

    shape = h.input_shape
    warm = ArraySource(np.zeros((batch, shape[0], shape[1], shape[2]), np.uint8), spec="warm")
    scan(h, warm, layer, k=1, batch_size=batch, cache=False)


def worker_scan(spec: str, source: str, layer: str, batch: int | None) -> dict:
    import engine
    from engine.dataset import scan
    from engine.dataset.topk import auto_batch_size

    h = engine.load_model(spec)
    bs = batch or auto_batch_size(h, h.resolve(layer))
    _warm_scan(h, layer, bs)
    model_rss = _rss_mb()
    t0 = time.perf_counter()
    result = scan(h, source, layer, k=9, batch_size=bs, cache=False)
    seconds = time.perf_counter() - t0
    return {
        "images": result.done,
        "skipped": len(result.skipped),
        "seconds": seconds,
        "rate": result.done / seconds,
        "batch": bs,
        "model_rss": model_rss,
        "peak": _peak_mb(),
    }


def _decode_all(source: str, shape: tuple) -> Any:
    import numpy as np

    from engine.dataset import open_source
    from engine.dataset.sources import batch_to_float, fit_for_model

    src = open_source(source)
    if src.vectorized:
        return batch_to_float(src.load_batch(np.arange(len(src)))[0], shape)
    out = np.empty((len(src), *shape), np.float32)
    for i in range(len(src)):
        out[i] = fit_for_model(src.load(i)[0], shape)
    return out


def worker_predict(spec: str, source: str, layer: str, batch: int | None) -> dict:
    import engine
    from engine.dataset.topk import auto_batch_size
    from engine.scaling import to_model_range

    h = engine.load_model(spec)
    path = h.resolve(layer)
    bs = batch or auto_batch_size(h, path)
    x = to_model_range(_decode_all(source, h.input_shape), h.scaling)
    sub = h.submodel([path])
    sub.predict(x[:bs], batch_size=bs, verbose=0)
    t0 = time.perf_counter()
    sub.predict(x, batch_size=bs, verbose=0)
    seconds = time.perf_counter() - t0
    return {"images": len(x), "seconds": seconds, "rate": len(x) / seconds, "batch": bs, "peak": _peak_mb()}


def worker_decode(source: str, native: bool) -> dict:
    import tensorflow as tf

    from engine.dataset import open_source
    from engine.dataset.topk import make_dataset

    src = open_source(source)
    shape = (224, 224, 3)
    if native:
        files = [str(p) for p in src.paths]

        def decode(path):
            img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
            return tf.image.resize(tf.cast(img, tf.float32) / 255.0, shape[:2], antialias=True)

        ds = tf.data.Dataset.from_tensor_slices(files).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(16).prefetch(2)
    else:
        ds = make_dataset(src, shape, 0, 16)
    t0 = time.perf_counter()
    n = 0
    for batch in ds:
        n += int((batch if native else batch[1]).shape[0])
    seconds = time.perf_counter() - t0
    return {"images": n, "seconds": seconds, "rate": n / seconds, "peak": _peak_mb()}


WORKERS = {"scan": worker_scan, "predict": worker_predict, "decode": worker_decode}


# ----- the driver -----------------------------------------------------------------------------


def _run(name: str, *args) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", name, json.dumps(list(args))],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"worker {name}{args} failed:\n" + "\n".join(tail))
    return json.loads(lines[-1])


def make_jpeg_folder(root: Path, n: int) -> Path:
    """n generated 224x224 JPEGs in one sub-folder per class (reused when already there)."""
    from PIL import Image

    from engine.zoo import shapes

    folder = root / f"jpegs_{n}"
    done = folder / ".complete"
    if done.exists():
        return folder
    for i, batch in enumerate(shapes.iter_batches(n, seed=7, batch=50, size=224)):
        for j, (img, label) in enumerate(zip(batch.images, batch.labels)):
            sub = folder / shapes.CLASS_NAMES[int(label)]
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(sub / f"img_{i * 50 + j:05d}.jpg", quality=90)
    done.write_text("ok")
    return folder


def subset_folder(full: Path, n: int) -> Path:
    """The first n images of `full` (sorted like FolderSource), hard-linked into a sibling folder."""
    folder = full.parent / f"{full.name}_first{n}"
    if (folder / ".complete").exists():
        return folder
    from engine.dataset import FolderSource

    src = FolderSource(full)
    for i in range(n):
        target = folder / src.name(i)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(src.paths[i], target)
    (folder / ".complete").write_text("ok")
    return folder


def _fmt(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker")
    parser.add_argument("args", nargs="?")
    parser.add_argument(
        "--vgg-images", type=int, default=2000, help="size of the JPEG folder (0: skip VGG16)"
    )
    parser.add_argument("--sizes", default="500,2000", help="folder sizes for the peak-memory rows")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "convscope-bench"))
    parser.add_argument("--vgg-batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="digits runs per case (median reported)")
    opts = parser.parse_args()
    if opts.worker:
        result = WORKERS[opts.worker](*json.loads(opts.args))
        print(json.dumps(result))
        return 0

    rows: list[list[str]] = []

    def add(case: str, run: dict[str, Any], scan: str, predict: str = "", ratio: str = "") -> None:
        """One row of the table (printed at once): the case, its run's counts, and the rates."""
        rss = "" if run["model_rss"] is None else _fmt(run["model_rss"])
        rows.append(
            [case, _fmt(run["images"]), str(run["batch"]), scan, predict, ratio, rss, _fmt(run["peak"])]
        )
        print(" | ".join(rows[-1]), flush=True)

    header = "case|images|batch|scan img/s|predict img/s|scan/predict|model RSS MiB|peak MiB".split("|")

    from engine.zoo import MODELS_DIR

    if (MODELS_DIR / "digits.keras").exists():
        for layer in ("Conv2D_2", "dense_1"):
            scans, preds = [], []
            for _ in range(opts.repeats):  # interleaved, median: the cores are shared
                scans.append(_run("scan", "builtin:digits", "builtin:digits", layer, None))
                preds.append(_run("predict", "builtin:digits", "builtin:digits", layer, scans[-1]["batch"]))
            s = sorted(scans, key=lambda r: r["rate"])[len(scans) // 2]
            p = sorted(preds, key=lambda r: r["rate"])[len(preds) // 2]
            ratio = f"{s['rate'] / p['rate']:.2f}"
            add(f"digits mnist_5k -> builtin:digits {layer}", s, _fmt(s["rate"]), _fmt(p["rate"]), ratio)
    else:
        print("builtin:digits model missing: digits rows skipped", flush=True)

    if opts.vgg_images > 0:
        work = Path(opts.workdir)
        full = make_jpeg_folder(work, opts.vgg_images)
        for native in (False, True):
            d = _run("decode", str(full), native)
            how = "tf.io native" if native else "PIL in tf.data"
            add(f"decode only, {how} (224 JPEG)", {**d, "batch": 16, "model_rss": None}, _fmt(d["rate"]))
        sizes = sorted({int(s) for s in opts.sizes.split(",") if s.strip()} | {opts.vgg_images})
        for n in sizes:
            if n > opts.vgg_images:
                continue
            folder = full if n == opts.vgg_images else subset_folder(full, n)
            s = _run("scan", VGG, str(folder), VGG_LAYER, opts.vgg_batch)
            pred = ""
            ratio = ""
            if n == opts.vgg_images:
                p = _run("predict", VGG, str(folder), VGG_LAYER, s["batch"])
                pred, ratio = _fmt(p["rate"], 2), f"{s['rate'] / p['rate']:.2f}"
            add(f"VGG16 (weights=None) {VGG_LAYER}, folder of {n} JPEGs", s, _fmt(s["rate"], 2), pred, ratio)

    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
