"""Grad-CAM and Score-CAM speed on VGG16 (weights=None, 224x224) against tf-keras-vis, in one run.

Prints one table of milliseconds per image: one forward pass and one forward+backward pass
(the gradient of the top logit with respect to the input) as the yardstick, Convscope's
engine.cam (Grad-CAM, Score-CAM; the whole call: image conversion, the layer's compiled
function, the weights and the projection onto the photo, with mapping="bilinear" as
tf-keras-vis resizes; Score-CAM once in float32 and once in its default precision "auto", which
is bfloat16 where the CPU/GPU computes it natively -- see engine.precision), and tf-keras-vis Gradcam / Scorecam (model_modifier=ReplaceToLinear so
Gradcam explains the logit and Scorecam's own softmax sees logits; Scorecam with all channels
(max_N unset) and batch_size=32 as Convscope). The contenders run interleaved, image by image,
so a change in a shared machine's load hits them alike. The maps are compared as a sanity
check (Pearson r of the ReLU maps on the 224x224 grid; bf16 against float32 Score-CAM too).

Issue 14 adds: `--isa avx2` (ONEDNN_MAX_CPU_ISA=AVX2, an AVX2-only CPU) and `--isa both` (the
default: one process per ISA, AVX2 first); Score-CAM's fast mode (`--fast`, default
engine.attribution.methods.FAST_CHANNELS: only the channels whose maps vary most) beside
tf-keras-vis' own fast mode (Faster-ScoreCAM, max_N set to the same number of channels); and
the process's peak RSS after each row (getrusage; rows run in the order printed).

Run:  nice -n 5 python bench/cam_speed.py [--images 5] [--score-images 1] [--isa both|full|avx2]
Needs `pip install tf-keras-vis` (listed in the "bench" extra); without it those rows read n/a.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._common import apply_isa, isa_line, peak_rss_mb, rerun_per_isa  # noqa: E402

LAYER = "block5_conv3"


def photos(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour images in [0, 1], 224x224 (no files, no downloads)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.random((7, 7, 3)).astype(np.float32)
        up = np.stack(
            [
                np.asarray(Image.fromarray(coarse[..., c], "F").resize((224, 224), Image.BICUBIC))
                for c in range(3)
            ],
            -1,
        )
        out.append(np.clip(up + rng.normal(0, 0.05, up.shape), 0, 1).astype(np.float32))
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5, help="images for the Grad-CAM and pass rows")
    parser.add_argument(
        "--score-images", type=int, default=1, help="images for the Score-CAM rows (slow on CPU)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the images (median)")
    parser.add_argument("--isa", default="both", choices=("both", "full", "avx2"))
    parser.add_argument(
        "--fast", type=float, default=None, help="fast mode's max_channels (default FAST_CHANNELS)"
    )
    parser.add_argument(
        "--skip-exact", action="store_true", help="no exact Score-CAM rows (ours and tf-keras-vis')"
    )
    args = parser.parse_args()
    if args.isa == "both":
        return rerun_per_isa(["avx2", "full"], [a for a in sys.argv if not a.startswith("--isa")])
    apply_isa(args.isa)

    import keras
    import tensorflow as tf

    from engine.attribution import cam
    from engine.attribution.methods import FAST_CHANNELS, top_variance_channels
    from engine.images import to_model_input
    from engine.models import load_model
    from engine.precision import native_bfloat16, resolve_precision

    keras.utils.set_random_seed(0)
    keras.utils.disable_interactive_logging()  # no progress bars from tf-keras-vis' model.predict
    h = load_model("keras:VGG16?weights=none")
    imgs = photos(args.images)
    score_imgs = imgs[: args.score_images]
    xs = [to_model_input(p, h) for p in imgs]
    logits_model = keras.Model(h.flat_input, h.logits)

    @tf.function(input_signature=[tf.TensorSpec((None, 224, 224, 3), tf.float32)])
    def forward(x):
        return logits_model(x, training=False)

    @tf.function(input_signature=[tf.TensorSpec((None, 224, 224, 3), tf.float32)])
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = logits_model(x, training=False)
            s = tf.reduce_max(z, axis=-1)
        return tape.gradient(s, x)

    rows: list[tuple[str, float | None, str]] = []
    notes: list[str] = []
    tkv = None
    try:
        import tf_keras_vis
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore

        version = getattr(tf_keras_vis, "__version__", "?")
        linear = keras.models.clone_model(h.model)
        linear.set_weights(h.model.get_weights())
        tkv = {
            "gradcam": Gradcam(linear, model_modifier=ReplaceToLinear(), clone=False),
            "scorecam": Scorecam(linear, model_modifier=ReplaceToLinear(), clone=False),
        }
    except Exception as exc:  # noqa: BLE001
        first = str(exc).splitlines()[0] if str(exc) else ""
        notes.append(f"tf-keras-vis: n/a ({type(exc).__name__}: {first[:200]})")

    # warm-up: trace every compiled function once
    forward(xs[0])
    forward_backward(xs[0])
    tops = [cam(h, p, layer=LAYER).target for p in imgs]
    auto = resolve_precision("auto")
    for precision in {"float32", auto}:  # trace the masked function (and build the bf16 copy) once
        cam(h, imgs[0], tops[0], "block1_pool", method="scorecam", mapping="bilinear", precision=precision)
    if tkv is not None:
        tkv["gradcam"](CategoricalScore([tops[0]]), xs[0], penultimate_layer=LAYER)
        tkv["scorecam"](CategoricalScore([tops[0]]), xs[0], penultimate_layer=LAYER, max_N=1)

    # the contenders run interleaved, image by image, so a change in the machine's load hits all alike
    contenders = {
        "fwd": lambda i: forward(xs[i]).numpy(),
        "fb": lambda i: forward_backward(xs[i]).numpy(),
        "gc": lambda i: cam(h, imgs[i], tops[i], LAYER, mapping="bilinear"),
    }
    if tkv is not None:
        contenders["tkv_gc"] = lambda i: tkv["gradcam"](
            CategoricalScore([tops[i]]), xs[i], penultimate_layer=LAYER
        )
    times: dict[str, list[float]] = {k: [] for k in contenders}
    outs: dict[str, dict[int, object]] = {k: {} for k in contenders}
    for _ in range(args.repeats):
        for i in range(len(imgs)):
            for key, run in contenders.items():
                t0 = time.perf_counter()
                outs[key][i] = run(i)
                times[key].append((time.perf_counter() - t0) * 1000)

    def scorecam(i: int, precision: str, max_channels: float | None = None) -> object:
        return cam(
            h,
            imgs[i],
            tops[i],
            LAYER,
            method="scorecam",
            mapping="bilinear",
            batch_size=32,
            precision=precision,
            max_channels=max_channels,
        )

    share = FAST_CHANNELS if args.fast is None else args.fast
    share = int(share) if share >= 1 else share
    acts0 = np.asarray(h.submodel([LAYER])(xs[0]))[0]
    live0 = np.flatnonzero(np.ptp(acts0, axis=(0, 1)) > 0)
    n_fast = len(top_variance_channels(acts0, np.arange(acts0.shape[-1]), share))
    slow = {} if args.skip_exact else {"sc32": lambda i: scorecam(i, "float32")}
    slow["fast32"] = lambda i: scorecam(i, "float32", share)
    if auto != "float32" and not args.skip_exact:
        slow["sc"] = lambda i: scorecam(i, auto)
    if tkv is not None:
        if not args.skip_exact:
            slow["tkv_sc"] = lambda i: tkv["scorecam"](
                CategoricalScore([tops[i]]), xs[i], penultimate_layer=LAYER, batch_size=32
            )
        slow["tkv_fast"] = lambda i: tkv["scorecam"](
            CategoricalScore([tops[i]]), xs[i], penultimate_layer=LAYER, batch_size=32, max_N=n_fast
        )
    rss: dict[str, float] = {}
    for key in slow:
        times[key], outs[key] = [], {}
    for i in range(len(score_imgs)):
        for key, run in slow.items() if i % 2 == 0 else reversed(slow.items()):
            t0 = time.perf_counter()
            outs[key][i] = run(i)
            times[key].append((time.perf_counter() - t0) * 1000)
            rss[key] = peak_rss_mb()
    t = {k: statistics.median(v) for k, v in times.items()}

    rows += [
        ("forward pass (compiled, batch 1)", t["fwd"], ""),
        ("forward + backward to the input", t["fb"], f"{t['fb'] / t['fwd']:.2f}x fwd"),
        ("Convscope Grad-CAM (engine.cam)", t["gc"], f"{t['gc'] / t['fb']:.2f}x fwd+bwd"),
    ]
    if tkv is not None:
        rows.append((f"tf-keras-vis {version} Gradcam", t["tkv_gc"], f"{t['tkv_gc'] / t['fb']:.2f}x fwd+bwd"))
    if "sc32" in t:
        rows.append(("Convscope Score-CAM exact, float32", t["sc32"], f"{t['sc32'] / t['fwd']:.0f}x fwd"))
    if "sc" in t:
        rows.append((f"Convscope Score-CAM exact, auto = {auto}", t["sc"], f"{t['sc'] / t['fwd']:.0f}x fwd"))
    elif "sc32" in t:
        t["sc"], outs["sc"] = t["sc32"], outs["sc32"]
        notes.append(
            "precision auto = float32 here (no native bfloat16): the default Score-CAM row is the float32 one"
        )
    if "tkv_sc" in t:
        rows.append(
            (f"tf-keras-vis {version} Scorecam exact", t["tkv_sc"], f"{t['tkv_sc'] / t['fwd']:.0f}x fwd")
        )
    rows.append(
        (
            f"Convscope Score-CAM fast ({share}: {n_fast} ch), float32",
            t["fast32"],
            f"{t['fast32'] / t['fwd']:.0f}x fwd",
        )
    )
    if "tkv_fast" in t:
        rows.append(
            (f"tf-keras-vis Scorecam max_N={n_fast}", t["tkv_fast"], f"{t['tkv_fast'] / t['fwd']:.0f}x fwd")
        )
    if tkv is not None:
        r_gc = statistics.mean(pearson(outs["gc"][i].heatmap_relu, outs["tkv_gc"][i][0]) for i in outs["gc"])
        note = f"agreement with tf-keras-vis (Pearson r): Grad-CAM {r_gc:.3f} (ReLU maps)"
        if "sc32" in outs and "tkv_sc" in outs:
            r_sc = statistics.mean(
                pearson(outs["sc32"][i].heatmap, outs["tkv_sc"][i][0]) for i in outs["sc32"]
            )
            note += (
                f"; Score-CAM {r_sc:.3f} (our signed map vs theirs; by design they differ: Convscope weighs each "
                "channel by p(masked) - p(black) and blends toward black, tf-keras-vis by p(masked), "
                "multiplying the caffe-scaled input)"
            )
        notes.append(note)
    if "sc32" in outs:
        r_fast = [pearson(outs["fast32"][i].cam, outs["sc32"][i].cam) for i in outs["fast32"]]
        notes.append(
            f"Score-CAM fast vs exact coarse maps here (random weights, not a fidelity measure: see "
            f"bench/scorecam_fast.py): Pearson r min {min(r_fast):.4f}"
        )
    if "sc" in slow:
        r_bf = [pearson(outs["sc"][i].cam, outs["sc32"][i].cam) for i in outs["sc"]]
        notes.append(
            f"Score-CAM bfloat16 vs float32 coarse maps: Pearson r min {min(r_bf):.5f} over {len(r_bf)} image(s) "
            f"(native bf16 here: {native_bfloat16()})"
        )
    live = [
        int((np.ptp(np.asarray(h.submodel([LAYER])(x))[0], axis=(0, 1)) > 0).sum())
        for x in xs[: len(score_imgs)]
    ]
    notes.append(
        f"Score-CAM forward passes per image: Convscope exact {statistics.mean(live):.0f} (channels with a "
        f"non-constant map; {len(live0)} on the first image), fast {n_fast}; tf-keras-vis 512, max_N {n_fast}"
    )
    tkv_gc, tkv_sc, t_gc, t_fb = t.get("tkv_gc"), t.get("tkv_sc"), t["gc"], t["fb"]
    t_sc, t_sc32, t_fast, tkv_fast = t.get("sc"), t.get("sc32"), t["fast32"], t.get("tkv_fast")

    print(
        f"# cam_speed: VGG16 weights=None 224x224, layer {LAYER}; TF {tf.__version__}, Keras {keras.__version__}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpu, "
        f"{'GPU' if tf.config.list_physical_devices('GPU') else 'CPU only'}"
    )
    print(
        f"# Grad-CAM rows: {len(imgs)} images x {args.repeats} passes (median); "
        f"Score-CAM rows: {len(score_imgs)} image(s), one pass"
    )
    print()
    print(f"# {isa_line()}")
    print()
    print(f"| {'what':<46} | {'ms/image':>9} | {'ratio':<16} | {'RSS MB':>6} |")
    print(f"|{'-' * 48}|{'-' * 11}|{'-' * 18}|{'-' * 8}|")
    keys = {
        "Convscope Score-CAM exact, float32": "sc32",
        "tf-keras-vis": "",
        "Convscope Score-CAM fast": "fast32",
    }
    for name, ms, ratio in rows:
        key = next((v for k, v in keys.items() if name.startswith(k)), "")
        key = "tkv_fast" if "max_N" in name else ("tkv_sc" if name.endswith("Scorecam exact") else key)
        if name.startswith("Convscope Score-CAM exact, auto"):
            key = "sc"
        mb = f"{rss[key]:.0f}" if key in rss else ""
        print(f"| {name:<46} | {ms:>9.1f} | {ratio:<16} | {mb:>6} |")
    print()
    if tkv_gc:
        print(
            f"Grad-CAM: {t_gc / t_fb:.2f}x one forward+backward (target <= 1.3x); "
            f"{tkv_gc / t_gc:.2f}x faster than tf-keras-vis (target >= 1x)"
        )
    if tkv_sc and t_sc:
        print(
            f"Score-CAM exact (default precision {auto}): {tkv_sc / t_sc:.2f}x faster than tf-keras-vis exact "
            f"(target >= 2x); float32: {tkv_sc / t_sc32:.2f}x"
        )
    if tkv_sc:
        print(
            f"Score-CAM fast, float32: {tkv_sc / t_fast:.2f}x faster than tf-keras-vis exact (target >= 2x)"
        )
    if tkv_fast:
        print(f"Score-CAM fast vs tf-keras-vis' own fast mode (max_N={n_fast}): {tkv_fast / t_fast:.2f}x")
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
