"""First-try benchmark (issue 10): does each view show something meaningful with DEFAULT settings?

For builtin:digits, builtin:shapes and keras VGG16 / ResNet50 / MobileNetV2 (random weights,
64x64 input without the top, so they fit a 2-core machine) it prints three markdown tables:

1. Maximization: per conv layer, the share of units whose objective rises in a default run of
   engine.maximize (noise start, default transforms, optimizer and pre/post-activation tap; all
   channels of one layer run as one batch). "Rises" = final objective (the result without
   transforms) > start objective + 1% of the larger magnitude. Units that are exactly zero at
   every position of every image of a scan (built-ins: 1,000 images of the model's own data;
   keras: random crops of the six shipped photos) are dead: counted in their own column, with
   the scan as evidence, and left out of the rise share's denominator.
2. Grad-CAM (engine.cam defaults: top-1 target, default layer and mapping) on generated
   builtin:shapes images of an evaluation seed: the share whose map points at the shape
   (engine.metrics.pointing_game against the true mask).
3. Deletion / insertion curves of those default Grad-CAM maps (built-ins), for every baseline the
   engine offers: the share of deletion curves that recover after falling (below 0.2, later above
   0.8) and of insertion curves that fall after rising (above 0.8, later below 0.2).

Targets: 100% of non-dead units rise; with the default baseline at most 5% of deletion curves
recover after falling.

--before emulates the defaults before issue 10 on today's engine: pre_activation=False, the
"black" deletion baseline, and the shapes model shipped at BEFORE_COMMIT (extracted with git
show; or --shapes-model). For the true old numbers, run the old code itself instead:
    PYTHONPATH=/tmp/before python bench/first_try.py      (a git archive of BEFORE_COMMIT)
The script then imports that engine (it only adds this repo to sys.path when no `engine` is
importable) and uses only what it offers (old engines: deletion to black, insertion from a blur).

Usage: nice -n 5 python bench/first_try.py [--quick] [--before] [--models builtin:digits,...]
           [--steps N] [--scan N] [--cam-images N] [--curve-images N] [--keras-channels 8]
--quick: builtin:digits only, 30 steps, 200 scan images, 10 curve images (a smoke run).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if importlib.util.find_spec("engine") is None:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import machine_line  # noqa: E402

BEFORE_COMMIT = "76e11b2"  # the last commit before issue 10's changes
KERAS_SIZE = 64
MODELS = (
    "builtin:digits",
    "builtin:shapes",
    f"keras:VGG16?weights=none&input={KERAS_SIZE}",
    f"keras:ResNet50?weights=none&input={KERAS_SIZE}",
    f"keras:MobileNetV2?weights=none&input={KERAS_SIZE}",
)
RISE_REL = 0.01  # "rises": final > start + 1% of max(|start|, |final|); 0 -> 0 never rises
LOW, HIGH = 0.2, 0.8
SHAPES_SCAN_SEED = 1234  # evaluation seeds (>= 1000): never trained on
SHAPES_CAM_SEED = 4321
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "hubble", "rocket")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- engine
def features() -> dict[str, Any]:
    """What the imported engine offers: baselines, curve checks, unit_activity, maximize defaults."""
    import engine
    from engine.attribution import metrics
    from engine.maximize import run

    params = inspect.signature(metrics.deletion_auc).parameters
    has_baseline = "baseline" in params
    mx = inspect.signature(run.maximize).parameters
    activity = getattr(importlib.import_module("engine.maximize"), "unit_activity", None)
    return {
        "engine": str(Path(engine.__file__).resolve().parent),
        "baselines": tuple(getattr(metrics, "BASELINES", ("blur", "mean", "black", "noise")))
        if has_baseline
        else ("black",),
        "default_baseline": getattr(metrics, "DEFAULT_BASELINE", "black") if has_baseline else "black",
        "has_baseline": has_baseline,
        "recovers": getattr(metrics, "curve_recovers", None),
        "falls": getattr(metrics, "curve_falls_after_rising", None),
        "unit_activity": activity,
        "pre_default": mx["pre_activation"].default if "pre_activation" in mx else False,
        "steps_default": mx["steps"].default,
    }


def curve_recovers(scores: Any, low: float = LOW, high: float = HIGH) -> bool:
    """Falls below `low` and climbs above `high` at a later step (used when the engine lacks it)."""
    s = np.asarray(scores, np.float64).reshape(-1)
    return bool(s.size > 1 and np.any((np.minimum.accumulate(s)[:-1] < low) & (s[1:] > high)))


def curve_falls(scores: Any, high: float = HIGH, low: float = LOW) -> bool:
    """Rises above `high` and falls below `low` at a later step (used when the engine lacks it)."""
    s = np.asarray(scores, np.float64).reshape(-1)
    return bool(s.size > 1 and np.any((np.maximum.accumulate(s)[:-1] > high) & (s[1:] < low)))


def load(spec: str, before: bool, shapes_model: str | None) -> Any:
    """engine.load_model(spec); with --before, builtin:shapes is the model shipped at BEFORE_COMMIT."""
    import engine

    if not (before and spec == "builtin:shapes"):
        return engine.load_model(spec)
    from engine import zoo

    path = Path(shapes_model or Path(tempfile.gettempdir()) / "old_shapes.keras")
    if not path.is_file():
        blob = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:resources/models/shapes.keras"],
            check=True,
            capture_output=True,
        ).stdout
        path.write_bytes(blob)
    # the same input scaling as builtin:shapes; a private config dir keeps the choice out of the user's
    old = os.environ.get("CONVSCOPE_CONFIG_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONVSCOPE_CONFIG_DIR"] = tmp
        try:
            h = engine.load_model(str(path), scaling=zoo.get("shapes").scaling)
        finally:
            if old is None:
                os.environ.pop("CONVSCOPE_CONFIG_DIR", None)
            else:
                os.environ["CONVSCOPE_CONFIG_DIR"] = old
    h.class_names = list(zoo.get("shapes").class_names)
    h.name = f"shapes@{BEFORE_COMMIT}"
    return h


# ---------------------------------------------------------------------------------------------- data
def photo_crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n random square crops (10-100% of the short side, random flips) of the six shipped photos."""
    from PIL import Image

    import engine

    rng = np.random.default_rng(seed)
    photos = [np.asarray(engine.load_image(f"builtin:{p}")) for p in PHOTOS]
    photos = [np.repeat(p, 3, axis=-1) if p.shape[-1] == 1 else p[..., :3] for p in photos]  # camera is grey
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        p = photos[i % len(photos)]
        hh, ww = p.shape[:2]
        side = int(min(hh, ww) * rng.uniform(0.1, 1.0))
        y, x = int(rng.integers(0, hh - side + 1)), int(rng.integers(0, ww - side + 1))
        crop = (np.clip(p[y : y + side, x : x + side], 0, 1) * 255).astype(np.uint8)
        img = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR), np.float32) / 255.0
        out[i] = img[:, ::-1] if rng.random() < 0.5 else img
    return out


def scan_images(h: Any, spec: str, n: int) -> tuple[np.ndarray, str]:
    """(images float32 (n, H, W, C) in [0, 1], what they are) for the dead-unit scan."""
    if "digits" in spec:
        from engine.zoo import digits

        x, _ = digits.holdout()
        return digits.to_input(x[:n]), f"the first {min(n, len(x))} images of digits' shipped holdout"
    if "shapes" in spec:
        from engine.zoo import shapes

        data = shapes.generate(n, SHAPES_SCAN_SEED)
        return data.images.astype(np.float32) / 255.0, f"{n} generated shapes, seed {SHAPES_SCAN_SEED}"
    size = int(h.input_shape[0])
    return photo_crops(n, size), f"{n} random crops of the 6 shipped photos at {size} px"


def activity_max(h: Any, layers: list[str], images: np.ndarray, feats: dict, batch: int = 50) -> dict:
    """{layer: per-channel max of the post-activation output over all images and positions}.

    engine.maximize.unit_activity when the engine has it, else the same computed here; a unit
    whose max is <= 0 is dead (for a ReLU layer: exactly 0 everywhere), as UnitActivity.dead.
    """
    fn = feats["unit_activity"]
    if fn is not None:
        return {layer: np.asarray(fn(h, layer, images, batch=batch).max, np.float64) for layer in layers}
    from engine.scaling import to_model_range

    model = h.submodel(layers)
    out: dict[str, np.ndarray] = {}
    for lo in range(0, len(images), batch):
        x = to_model_range(images[lo : lo + batch], h.scaling)
        outs = model(x, training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for layer, o in zip(layers, outs):
            o = np.asarray(o, np.float64)
            m = o.reshape(-1, o.shape[-1]).max(axis=0)
            out[layer] = m if layer not in out else np.maximum(out[layer], m)
    return out


# ---------------------------------------------------------------------------------------------- parts
def conv_layers(h: Any) -> list[str]:
    """Paths of the conv layers with spatial output, in graph order (nested models included)."""
    found = []

    def walk(infos: Any) -> None:
        for info in infos:
            if info.kind == "conv" and len(info.output_shape) == 3:
                found.append(info.path)
            walk(getattr(info, "children", ()) or ())

    walk(h.layers)
    return found


def maximize_layer(h: Any, layer: str, channels: list[int], steps: int | None, pre: bool | None) -> tuple:
    """(start, final) objectives of a default engine.maximize run of the channels as one batch."""
    import engine

    kwargs: dict[str, Any] = {"every": 1_000_000}  # no intermediate frames: only the first and last
    if steps is not None:
        kwargs["steps"] = steps
    if pre is not None:
        kwargs["pre_activation"] = pre
    last = None
    for step in engine.maximize(h, [f"{layer}:{c}" for c in channels], **kwargs):
        last = step
    info = last.info
    return np.asarray(info["start_objective"], np.float64), np.asarray(info["objective"], np.float64)


def tap(h: Any, layer: str, pre: bool | None) -> str:
    """Where maximize reads the layer: "pre" (before its fused activation), "post", or "-" (no fused one)."""
    from engine.maximize import run

    info = next((i for i in _walk(h.layers) if i.path == layer), None)
    op = h.model.get_layer(layer) if info is not None and "/" not in layer else None
    act = getattr(getattr(op, "activation", None), "__name__", "linear")
    if act == "linear":
        return "-"
    choose = getattr(run, "read_before_activation", None)
    if choose is not None:
        before = choose(h, [h.resolve(layer)], pre)
    else:  # an engine before issue 10: a plain bool, False by default
        before = (
            bool(pre)
            if pre is not None
            else bool(inspect.signature(run.maximize).parameters["pre_activation"].default)
        )
    return "pre" if before else "post"


def rises(start: np.ndarray, final: np.ndarray) -> np.ndarray:
    # relative only: random-weight nets (MobileNetV2) have deep objectives of 1e-12 that do rise
    return final - start > RISE_REL * np.maximum(np.abs(start), np.abs(final))


def ids(values: Any, limit: int = 12) -> str:
    values = [int(v) for v in values]
    text = ", ".join(map(str, values[:limit]))
    return text + (f" (+{len(values) - limit})" if len(values) > limit else "")


def curve_settings(feats: dict, before: bool) -> list[tuple[str, bool, dict, dict]]:
    """(label, is_default, deletion kwargs, insertion kwargs) for every baseline to measure."""
    old = "black; insertion from blur sigma H/32 (old)"
    if not feats["has_baseline"]:  # an engine before issue 10: the only behaviour there was
        return [(old, True, {}, {})]
    if before:  # the same on today's engine
        return [(old, True, {"baseline": "black"}, {"baseline": "blur", "blur_sigma": "H/32"})]
    return [(b, b == feats["default_baseline"], {"baseline": b}, {"baseline": b}) for b in feats["baselines"]]


def cam_and_curves(
    h: Any, images: np.ndarray, masks: np.ndarray | None, n_curves: int, settings: list, feats: dict
) -> dict:
    """Default Grad-CAM on every image (pointing when masks are given) and curves on the first n_curves."""
    import engine

    recovers = feats["recovers"] or curve_recovers
    falls = feats["falls"] or curve_falls
    hits, layer = [], None
    per: dict[str, dict[str, list]] = {label: {"del": [], "ins": []} for label, *_ in settings}
    for i, img in enumerate(images):
        res = engine.cam(h, img)
        layer = res.layer
        if masks is not None:
            hits.append(bool(engine.metrics.pointing_game(res.heatmap, masks[i])))
        if i >= n_curves:
            continue
        for label, _, dkw, ikw in settings:
            ikw = {k: (max(img.shape[:2]) / 32.0 if v == "H/32" else v) for k, v in ikw.items()}
            d = engine.metrics.deletion_auc(h, img, res.heatmap, **dkw)
            s = engine.metrics.insertion_auc(h, img, res.heatmap, **ikw)
            per[label]["del"].append((i, bool(recovers(d.scores)), d.auc))
            per[label]["ins"].append((i, bool(falls(s.scores)), s.auc))
    return {"hits": hits, "layer": layer, "curves": per}


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model specs")
    parser.add_argument("--quick", action="store_true", help="smoke run: builtin:digits, small samples")
    parser.add_argument("--before", action="store_true", help="emulate the defaults before issue 10")
    parser.add_argument("--shapes-model", default=None, help="--before: the old shapes .keras file")
    parser.add_argument("--steps", type=int, default=None, help="maximize steps (default: engine's)")
    parser.add_argument("--scan", type=int, default=1000, help="images of the dead-unit scan (built-ins)")
    parser.add_argument("--keras-scan", type=int, default=300, help="photo crops of the keras scan")
    parser.add_argument("--keras-layers", type=int, default=4, help="conv layers sampled per keras model")
    parser.add_argument("--keras-channels", type=int, default=8, help="channels sampled per keras layer")
    parser.add_argument("--cam-images", type=int, default=100, help="shapes images for the pointing game")
    parser.add_argument("--curve-images", type=int, default=50, help="images per model for the curves")
    parser.add_argument("--json", default=None, help="also write every measured value to this JSON file")
    parser.add_argument("--list", type=int, default=20, help="non-rising units listed in detail")
    args = parser.parse_args()
    specs = [s.strip() for s in args.models.split(",") if s.strip()]
    if args.quick:
        specs = ["builtin:digits"]
        args.steps = args.steps or 30
        args.scan, args.curve_images, args.cam_images = 200, 10, 10

    import keras

    keras.utils.set_random_seed(0)
    feats = features()
    pre = False if args.before else None
    settings = curve_settings(feats, args.before)
    t_all = time.perf_counter()
    max_rows, cam_rows, curve_rows, misses, timings, raw = [], [], [], [], [], []

    for spec in specs:
        t0 = time.perf_counter()
        log(f"{spec}: loading")
        h = load(spec, args.before, args.shapes_model)
        builtin = spec.startswith("builtin:")
        convs = conv_layers(h)
        rng = np.random.default_rng(0)
        infos = {info.path: info for info in _walk(h.layers)}
        if builtin:
            plan = {layer: list(range(int(infos[layer].output_shape[-1]))) for layer in convs}
        else:
            pick = np.unique(np.round(np.linspace(0, len(convs) - 1, args.keras_layers)).astype(int))
            plan = {}
            for i in pick:
                n_ch = int(infos[convs[i]].output_shape[-1])
                chans = rng.choice(n_ch, min(args.keras_channels, n_ch), replace=False)
                plan[convs[i]] = sorted(int(c) for c in chans)
        n_scan = args.scan if builtin else args.keras_scan
        images, scan_what = scan_images(h, spec, n_scan)
        log(f"{spec}: scanning {len(images)} images over {len(plan)} layers")
        amax = activity_max(h, list(plan), images, feats)
        for layer, chans in plan.items():
            log(f"{spec}: maximizing {layer} ({len(chans)} channels)")
            start, final = maximize_layer(h, layer, chans, args.steps, pre)
            up = rises(start, final)
            dead = [c for c in chans if amax[layer][c] <= 0.0]
            alive = [k for k, c in enumerate(chans) if c not in dead]
            flat = [chans[k] for k in alive if not up[k]]
            n_up = int(sum(up[k] for k in alive))
            raw.append(
                {
                    "model": h.name,
                    "layer": layer,
                    "channels": chans,
                    "start": start.tolist(),
                    "final": final.tolist(),
                    "scan_max": [float(amax[layer][c]) for c in chans],
                }
            )
            units = int(infos[layer].output_shape[-1])
            max_rows.append(
                (h.name, layer, units, len(chans), dead, n_up, len(alive), flat, tap(h, layer, pre))
            )
            for k in alive:
                if not up[k]:
                    misses.append(
                        f"{h.name} {layer}:{chans[k]} objective {start[k]:.4g} -> {final[k]:.4g} "
                        f"(scan max {amax[layer][chans[k]]:.3g})"
                    )
        max_rows.append((h.name, None, scan_what, None, None, None, None, None, None))
        if builtin:
            if "shapes" in spec:
                from engine.zoo import shapes

                n = max(args.cam_images, args.curve_images)
                data = shapes.generate(n, SHAPES_CAM_SEED)
                cimgs, masks = data.images.astype(np.float32) / 255.0, data.masks
                cimgs, masks = cimgs[: max(args.cam_images, args.curve_images)], masks
            else:
                cimgs, masks = images[: args.curve_images], None
            log(f"{spec}: Grad-CAM on {len(cimgs)} images, curves on {min(args.curve_images, len(cimgs))}")
            res = cam_and_curves(h, cimgs, masks, args.curve_images, settings, feats)
            if masks is not None:
                cam_rows.append((h.name, res["layer"], len(res["hits"]), sum(res["hits"]), SHAPES_CAM_SEED))
            for label, is_default, _, _ in settings:
                dl, il = res["curves"][label]["del"], res["curves"][label]["ins"]
                curve_rows.append((h.name, label, is_default, dl, il))
        timings.append(f"{h.name} {time.perf_counter() - t0:.0f} s")
        del h
        keras.backend.clear_session()

    # ------------------------------------------------------------------------------------------ tables
    steps = args.steps or feats["steps_default"]
    cap = os.environ.get("CONVSCOPE_MAX_STEPS")
    pre_used = {None: "engine default", True: "before", False: "after"}[
        feats["pre_default"] if pre is None else pre
    ]
    mode = "BEFORE (emulated on today's engine)" if args.before else "default settings"
    how = "engine.maximize.unit_activity" if feats["unit_activity"] else "a forward pass over the scan"
    # plain paragraphs, not "# " lines: the output is pasted into bench/RESULTS.md as markdown
    print(f"first_try ({mode}); engine {feats['engine']}")
    print()
    print(f"{machine_line()}; TF/Keras {keras.__version__}; total {time.perf_counter() - t_all:.0f} s")
    print()
    print(
        f"maximize: {steps} steps{f' (CONVSCOPE_MAX_STEPS={cap})' if cap else ''}, pre_activation: "
        f"{pre_used} (column tap: read before a fused activation, after it, or - none), every other "
        f"setting default, one batch per layer; rises = final > start + {RISE_REL:.0%} of the larger "
        "magnitude. Built-ins: every channel of every conv layer; keras "
        f"(random weights, {KERAS_SIZE}x{KERAS_SIZE}, no top): {args.keras_channels} random channels of "
        f"{args.keras_layers} evenly spaced conv layers. Dead = never above 0 at any position of any "
        f"scan image (ReLU layers: exactly 0), measured with {how}."
    )
    print()
    print(
        "| model | layer | tap | units | run | dead (0 on the whole scan) | rise % of non-dead | not rising |"
    )
    print("|---|---|---|---:|---:|---|---:|---|")
    scans = {}
    for name, layer, units, n, dead, n_up, n_alive, flat, where in max_rows:
        if layer is None:
            scans[name] = units
            continue
        share = f"{100 * n_up / n_alive:.0f}% ({n_up}/{n_alive})" if n_alive else "-"
        dead_txt = f"{len(dead)}: {ids(dead)}" if dead else "0"
        flat_txt = ids(flat) or "-"
        print(f"| {name} | {layer} | {where} | {units} | {n} | {dead_txt} | {share} | {flat_txt} |")
    print()
    for name, what in scans.items():
        print(f"- scan of {name}: {what}")
    print()
    if cam_rows:
        print("| model | Grad-CAM default layer | images | points at the shape % |")
        print("|---|---|---:|---:|")
        for name, layer, n, hit, seed in cam_rows:
            print(f"| {name} | {layer} | {n} (seed {seed}) | {100 * hit / n:.0f}% ({hit}/{n}) |")
        print()
    if curve_rows:
        print(
            f"Deletion/insertion curves of the default Grad-CAM maps (top-1 target, {args.curve_images} "
            f"images per model; shapes: seed {SHAPES_CAM_SEED}, digits: the holdout); engine default "
            f"steps. recover = below {LOW} then later above {HIGH}; fall = above {HIGH} then later "
            f"below {LOW}."
        )
        print()
        print("| model | baseline | deletion curves that recover % | insertion curves that fall % ", end="")
        print("| mean deletion AUC | mean insertion AUC |")
        print("|---|---|---:|---:|---:|---:|")
        for name, b, is_default, dl, il in curve_rows:
            rec = sum(r for _, r, _ in dl)
            fal = sum(r for _, r, _ in il)
            auc = np.mean([a for _, _, a in dl]) if dl else float("nan")
            iauc = np.mean([a for _, _, a in il]) if il else float("nan")
            label = f"**{b}** (default)" if is_default else b
            print(
                f"| {name} | {label} | {100 * rec / max(len(dl), 1):.0f}% ({rec}/{len(dl)}) | "
                f"{100 * fal / max(len(il), 1):.0f}% ({fal}/{len(il)}) | {auc:.3f} | {iauc:.3f} |"
            )
        print()
    # targets
    n_up = sum(r[5] for r in max_rows if r[1] is not None)
    n_alive = sum(r[6] for r in max_rows if r[1] is not None)
    ok_rise = n_up == n_alive
    print(f"Target 100% of non-dead units rise: {'PASS' if ok_rise else 'FAIL'} ({n_up}/{n_alive})")
    for name, b, is_default, dl, _ in curve_rows:
        if is_default:
            rec = sum(r for _, r, _ in dl)
            verdict = "PASS" if rec <= 0.05 * len(dl) else "FAIL"
            bad = [i for i, r, _ in dl if r]
            print(
                f"Target <= 5% of {name} deletion curves recover ({b}): {verdict} ({rec}/{len(dl)})"
                + (f"; images {ids(bad)}" if bad else "")
            )
    silent = sum(" 0 -> 0 " in line for line in misses)
    if misses:
        print(
            f"Not rising: {len(misses)} alive units, {silent} of them with objective exactly 0 -> 0 "
            "(a silent ReLU from the noise start)"
        )
    for line in misses[: args.list]:
        print(f"- not rising: {line}")
    if len(misses) > args.list:
        print(f"- ... {len(misses) - args.list} more (--list N shows more)")
    print(f"Time per model: {', '.join(timings)}")
    if args.json:
        curves = [
            {"model": m, "baseline": b, "default": d, "deletion": dl, "insertion": il}
            for m, b, d, dl, il in curve_rows
        ]
        cams = [dict(zip(("model", "layer", "images", "hits", "seed"), r)) for r in cam_rows]
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"argv": sys.argv[1:], "maximize": raw, "cam": cams, "curves": curves}, fh, indent=1)
    return 0


def _walk(infos: Any) -> Any:
    for info in infos:
        yield info
        yield from _walk(getattr(info, "children", ()) or ())


if __name__ == "__main__":
    raise SystemExit(main())
