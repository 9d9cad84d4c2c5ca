"""engine.maximize: objectives rise, batches equal single runs, neurons stay in their receptive field,
cancel and NaN behave, and the pieces (grammar, starts, parameterizations, transforms, regularizers) work."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import Cancelled, EngineError, OptimizationDiverged


# ----- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes():
    """builtin:shapes; its architecture with seeded random weights until the trained file ships."""
    from engine import zoo

    if zoo.get("shapes").model_path.exists():
        return engine.load_model("builtin:shapes")
    import keras

    from engine.models import ModelHandle
    from engine.zoo.shapes import CLASS_NAMES, build_model

    keras.utils.set_random_seed(0)
    return ModelHandle(build_model(), name="shapes", spec="builtin:shapes", class_names=list(CLASS_NAMES))


@pytest.fixture(scope="module")
def nan_model():
    """A tiny model whose second conv has a NaN weight: every objective on it is NaN."""
    import keras

    from engine.models import ModelHandle

    inp = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(2, 3, name="c2")(x)
    model = keras.Model(inp, x)
    kernel, bias = model.get_layer("c2").get_weights()
    kernel[0, 0, 0, 0] = np.nan
    model.get_layer("c2").set_weights([kernel, bias])
    return ModelHandle(model, name="nan", spec="nan")


def run(h, objective, **kw):
    """All steps of a run (steps capped to 10 by CONVSCOPE_MAX_STEPS in the tests)."""
    kw.setdefault("steps", 10)
    return list(engine.maximize(h, objective, **kw))


def start_acts(h, layer):
    """The layer's output on the default start image (noise, seed 0), without the batch axis."""
    from engine.maximize.params import start_image

    start = start_image("noise", h.input_shape, 0)
    return engine.feature_maps(h, start, [layer])[h.resolve(layer)]


def alive_channel(h, layer):
    acts = start_acts(h, layer)
    return int(np.argmax(acts.reshape(-1, acts.shape[-1]).mean(axis=0)))


def alive_neuron(h, layer):
    acts = start_acts(h, layer)
    y, x, c = np.unravel_index(int(np.argmax(acts)), acts.shape)
    return int(y), int(x), int(c)


def objectives_for(h, conv, dense):
    """One objective string of each kind on model h."""
    ch = alive_channel(h, conv)
    y, x, c = alive_neuron(h, conv)
    unit = alive_channel(h, dense)
    return {
        "neuron": f"{conv}:{c}@{y},{x}",
        "channel": f"{conv}:{ch}",
        "layer": conv,
        "class": "class:1",
        "dense": f"{dense}:{unit}",
        "sum": f"0.5*{conv}:{ch} + 2*class:1 - 0.1*{conv}",
    }


KINDS = ["neuron", "channel", "layer", "class", "dense", "sum"]


# ----- the objective rises -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_objective_rises_on_tiny_model(tiny, kind):
    objective = objectives_for(tiny, "conv2", "fc")[kind]
    steps = run(tiny, objective)
    last = steps[-1]
    assert last.step == last.total == 10
    assert last.info["objective"][0] > last.info["start_objective"][0], objective
    assert last.images.shape == (1, 16, 16, 3) and last.images.dtype == np.float32
    assert 0.0 <= last.images.min() and last.images.max() <= 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_objective_rises_on_builtin_shapes(shapes, kind):
    objective = objectives_for(shapes, "conv3", "dense1")[kind]
    # no transforms: with jitter/rotation/scaling 10 steps from noise are too few to rise reliably on every unit
    last = run(shapes, objective, transforms=())[-1]
    assert last.info["objective"][0] > last.info["start_objective"][0], objective


@pytest.mark.parametrize(
    ("param", "optimizer"), [("pixel", "adam"), ("fourier", "normalized"), ("fourier", "adam")]
)
def test_parameterizations_and_optimizers_rise(shapes, param, optimizer):
    ch = alive_channel(shapes, "conv3")
    last = run(shapes, f"conv3:{ch}", param=param, optimizer=optimizer, schedule="cosine")[-1]
    assert last.info["objective"][0] > last.info["start_objective"][0]
    assert last.info["settings"]["param"] == param


def test_regularized_run_rises(tiny):
    ch = alive_channel(tiny, "conv2")
    regs = ["tv:0.01", "lp:6:0.01", "decay:0.01", "blur:0.5:3", "clip_value:5", "clip_contribution:5"]
    last = run(
        tiny, f"conv2:{ch}", regularizers=regs, transforms=["jitter:2", "rotate:10", "scale:0.1", "pad:2"]
    )[-1]
    assert last.info["objective"][0] > last.info["start_objective"][0]
    assert last.info["settings"]["regularizers"][0] == "tv:0.01"


# ----- batches -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("param", "regs"), [("pixel", ()), ("fourier", ()), ("pixel", ("blur:1:2", "decay"))]
)
def test_batched_equals_one_at_a_time(tiny, param, regs):
    kw = {"param": param, "regularizers": regs, "seed": 3}
    batch = run(tiny, "conv2:0..5", **kw)[-1]
    assert batch.images.shape == (6, 16, 16, 3)
    assert batch.info["objectives"][2] == "conv2:2"
    singles = np.concatenate([run(tiny, f"conv2:{c}", **kw)[-1].images for c in range(6)])
    np.testing.assert_allclose(batch.images, singles, atol=1e-5)
    listed = run(tiny, [f"conv2:{c}" for c in range(6)], **kw)[-1]
    np.testing.assert_allclose(listed.images, batch.images, atol=1e-6)


def test_batched_equals_single_on_shapes(shapes):
    batch = run(shapes, "conv4:0..3")[-1].images
    singles = np.concatenate([run(shapes, f"conv4:{c}")[-1].images for c in range(4)])
    np.testing.assert_allclose(batch, singles, atol=1e-4)


def test_frames_every_k_steps(tiny):
    steps = run(tiny, "conv2:0..2", every=3)
    assert [s.step for s in steps] == [0, 3, 6, 9, 10]
    assert all(s.images.shape == (3, 16, 16, 3) and s.images.flags.c_contiguous for s in steps)
    assert len(steps[-1].info["curve"]) == 10 and len(steps[-1].losses) == 3


# ----- neurons and their receptive field ----------------------------------------------------------------
@pytest.mark.parametrize(("model", "layer"), [("tiny", "conv2"), ("shapes", "conv3")])
def test_neuron_changes_only_inside_receptive_field(request, model, layer):
    h = request.getfixturevalue(model)
    y, x, c = alive_neuron(h, layer)
    steps = run(h, f"{layer}:{c}@{y},{x}", transforms=())
    start, last = steps[0].images[0], steps[-1].images[0]
    rf = engine.receptive_field(h, layer)
    top, left, bottom, right = rf.box_clipped(y, x, h.input_shape[:2])
    outside = np.ones(start.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert np.abs(last - start)[outside].max() == 0.0
    assert np.abs(last - start)[~outside].max() > 0.0
    last_box = steps[-1].info["changed_boxes"][0]
    assert last_box is not None
    assert top <= last_box[0] and left <= last_box[1] and last_box[2] <= bottom and last_box[3] <= right
    assert steps[-1].info["receptive_fields"][0] == (top, left, bottom, right)
    crop = steps[-1].info["crops"][0]
    assert crop.shape == (last_box[2] - last_box[0], last_box[3] - last_box[1], start.shape[-1])


def test_analytic_first_layer_maximizer(tiny):
    from engine.maximize import analytic_maximizer

    y, x, c = alive_neuron(tiny, "conv1")
    last = run(tiny, f"conv1:{c}@{y},{x}", transforms=())[-1]
    patch = last.info["analytic"][0]
    kernel = engine.filters(tiny, "conv1")[..., c]
    np.testing.assert_array_equal(patch, (kernel > 0).astype(np.float32))
    np.testing.assert_array_equal(analytic_maximizer(tiny, "conv1", c), patch)
    # the analytic patch beats the optimized one at that neuron
    placed = last.images[0].copy()
    placed[y : y + 3, x : x + 3] = patch
    ours = engine.feature_maps(tiny, last.images[0], ["conv1"])["conv1"][y, x, c]
    best = engine.feature_maps(tiny, placed, ["conv1"])["conv1"][y, x, c]
    assert best >= ours
    with pytest.raises(EngineError, match="not a convolution on the model input"):
        analytic_maximizer(tiny, "conv2", 0)


def test_class_run_reports_prediction(shapes):
    last = run(shapes, "class:star")[-1]
    pred = last.info["predictions"][0]
    assert pred["target_class"] == "star" and 0.0 <= pred["target_probability"] <= 1.0
    assert pred["class"] in ("circle", "square", "triangle", "star")
    assert "the network calls this" in last.info["report"][0] and "%" in last.info["report"][0]
    assert len(last.info["probability"]) == 1
    np.testing.assert_allclose(pred["target_probability"], last.info["probability"][0], atol=1e-4)


# ----- cancel, NaN, limits ------------------------------------------------------------------------------
def test_cancel_stops_within_one_step(tiny):
    from engine.jobs import CancelToken

    token = CancelToken()
    gen = engine.maximize(tiny, "conv2:0", steps=10, every=1, token=token)
    assert next(gen).step == 0
    assert next(gen).step == 1
    token.cancel()
    with pytest.raises(Cancelled):
        next(gen)


def test_cancelled_job_finishes_within_one_step(tiny_cnn_path):
    import engine.maximize.jobs  # noqa: F401 - registers the job kinds
    from engine.jobs import CancelToken, Finished, Frame, Request, run

    token = CancelToken()
    seen = []
    request = Request("maximize", {"model": str(tiny_cnn_path), "objective": "conv2:0", "every": 1})
    for event in run(request, token):
        seen.append(event)
        if isinstance(event, Frame) and event.step == 2:
            token.cancel()
    frames = [e.step for e in seen if isinstance(e, Frame)]
    assert max(frames) <= 3
    assert isinstance(seen[-1], Finished) and seen[-1].reason == "cancelled"


def test_nan_run_reports_the_error(nan_model):
    with pytest.raises(OptimizationDiverged, match="diverged at step 1.*NaN"):
        run(nan_model, "c2:0")


def test_nan_job_fails_with_message(nan_model):
    import engine.maximize.jobs  # noqa: F401 - registers the job kinds
    from engine.job_handlers import _state
    from engine.jobs import CancelToken, Failed, Frame, Request, run

    previous = _state["current"]  # the job runs on the engine thread's current model
    _state["current"] = nan_model
    try:
        events = list(run(Request("maximize", {"objective": "c2"}), CancelToken()))
    finally:
        _state["current"] = previous
    assert isinstance(events[-1], Failed)
    assert "diverged" in events[-1].message and "\n" not in events[-1].message
    assert not any(isinstance(e, Frame) and e.step > 0 for e in events)


def test_steps_capped_by_env(tiny, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_MAX_STEPS", "3")
    steps = list(engine.maximize(tiny, "conv2:0", steps=500))
    assert steps[-1].total == 3


def test_job_streams_frames_and_result(tiny_cnn_path):
    import engine.maximize.jobs  # noqa: F401
    from engine.jobs import Finished, Frame, Progress, Request, run
    from engine.maximize.contract import MaximizeOutput

    events = list(
        run(Request("maximize", {"model": str(tiny_cnn_path), "objective": "class:0..2", "every": 5}))
    )
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.step for f in frames] == [0, 5, 10]
    assert frames[0].images.shape == (3, 16, 16, 3)
    assert any(isinstance(e, Progress) and e.loss is not None for e in events)
    result = events[-1].result
    assert isinstance(events[-1], Finished) and isinstance(result, MaximizeOutput)
    assert result.images.shape == (3, 16, 16, 3)
    assert len(result.losses) == 10 and len(result.predictions) == 3
    assert result.frames[0][1].dtype == np.uint8 and result.settings["model"] == str(tiny_cnn_path)


# ----- validation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": "conv9:1"}, "no layer 'conv9'"),
        ({"objective": "conv2:99"}, "channel 99 out of range"),
        ({"objective": "conv2:0@50,50"}, "outside"),
        ({"objective": "fc:0@1,1"}, "no spatial axes"),
        ({"objective": "class:7"}, "out of range"),
        ({"objective": "class:dog"}, "no class 'dog'"),
        ({"objective": "conv2:0", "optimizer": "sgdx"}, "unknown optimizer"),
        ({"objective": "conv2:0", "lr": -1.0}, "positive"),
        ({"objective": "conv2:0", "param": "wavelet"}, "unknown parameterization"),
        ({"objective": "conv2:0", "init": "plasma"}, "unknown start"),
        ({"objective": "conv2:0", "init": "photo"}, "needs an image"),
        ({"objective": "conv2:0", "transforms": ["spin"]}, "unknown transform"),
        ({"objective": "conv2:0", "regularizers": ["magic"]}, "unknown regularizer"),
        ({"objective": "conv2:0", "schedule": "zigzag"}, "unknown schedule"),
        ({"objective": "class:0", "size": 32}, "input size"),
        ({"objective": "fc:0", "size": 32}, "cannot run at 32x32"),
    ],
)
def test_bad_settings_raise_at_call(tiny, kwargs, match):
    with pytest.raises(EngineError, match=match):
        engine.maximize(tiny, **kwargs)


def test_conv_objective_on_a_bigger_canvas(tiny):
    ch = alive_channel(tiny, "conv2")
    last = run(tiny, f"conv2:{ch}", size=(24, 20))[-1]
    assert last.images.shape == (1, 24, 20, 3)
    assert last.info["objective"][0] > last.info["start_objective"][0]


def test_photo_start_and_control(tiny):
    from engine.maximize import Control

    photo = np.random.default_rng(1).uniform(0, 1, (30, 40, 3)).astype(np.float32)
    control = Control(lr_scale=0.0)
    steps = run(tiny, "conv2:0", init="photo", image=photo, control=control, transforms=())
    np.testing.assert_allclose(steps[0].images[0], engine.images.fit_image(photo, (16, 16, 3)), atol=1e-6)
    np.testing.assert_array_equal(steps[-1].images, steps[0].images)  # lr scaled to zero: nothing moves


def test_pause_honours_cancel():
    import threading

    from engine.jobs import CancelToken
    from engine.maximize import Control

    control, token = Control(), CancelToken()
    control.pause()
    threading.Timer(0.05, token.cancel).start()
    with pytest.raises(Cancelled):
        control.wait(token)


def test_engine_maximize_is_callable_as_function_and_package(tiny):
    import engine.maximize.cli  # noqa: F401 - binds the package to engine.maximize

    assert callable(engine.maximize)
    assert next(iter(engine.maximize(tiny, "conv2:0", steps=1))).step == 0
    from engine.maximize.deepdream import dream

    assert engine.dream is dream and engine.Step is engine.maximize.Step


# ----- pieces ------------------------------------------------------------------------------------------------
def test_objective_grammar():
    from engine.maximize.objectives import parse_expression

    terms = parse_expression("0.5*conv3:5 - 2*class:star + conv3*0.1 - vgg16/block5_conv3:1@2,3")
    assert [(w, a.layer, a.channels, a.pos) for w, a in terms] == [
        (0.5, "conv3", (5,), None),
        (-2.0, "class", ("star",), None),
        (0.1, "conv3", None, None),
        (-1.0, "vgg16/block5_conv3", (1,), (2, 3)),
    ]
    assert parse_expression("conv3:0..3")[0][1].channels == (0, 1, 2, 3)
    assert parse_expression("conv3:*")[0][1].channels == "*"
    assert parse_expression("1e-3*conv3:1,4")[0] == (0.001, parse_expression("conv3:1,4")[0][1])
    for bad in ("", "3", "conv3 conv2", "conv3 * conv2", "conv3:5 +", "class", "conv3:a", "conv3:5..2"):
        with pytest.raises(EngineError):
            parse_expression(bad)


def test_objective_batches_resolve(tiny):
    from engine.maximize.objectives import parse_objective

    obj = parse_objective("conv2:* - 0.5*conv2", tiny)
    assert obj.batch == 6 and obj.texts[1] == "conv2:1 - 0.5*conv2"
    assert all(len(t) == 2 for t in obj.terms)
    assert parse_objective("class:*", tiny).batch == 3
    with pytest.raises(EngineError, match="different lengths"):
        parse_objective("conv2:0..2 + conv1:0..1", tiny)


def test_start_images_are_seeded():
    from engine.maximize.params import start_image

    for kind in ("grey", "noise", "normal", "structured"):
        a = start_image(kind, (20, 24, 3), seed=5)
        assert a.shape == (20, 24, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
        np.testing.assert_array_equal(a, start_image(kind, (20, 24, 3), seed=5))
    noise = start_image("noise", (64, 64, 1), 0)[..., 0]
    smooth = start_image("structured", (64, 64, 1), 0, scales=[16])[..., 0]

    def neighbour_corr(a):
        return np.corrcoef(a[:, 1:].ravel(), a[:, :-1].ravel())[0, 1]

    assert neighbour_corr(smooth) > 0.9 > 0.2 > neighbour_corr(noise)
    assert not np.array_equal(start_image("noise", (8, 8, 1), 1), start_image("noise", (8, 8, 1), 2))


@pytest.mark.parametrize(
    ("kind", "squash"), [("pixel", "sigmoid"), ("fourier", "sigmoid"), ("fourier", "clip")]
)
def test_parameterizations_round_trip(kind, squash):
    from engine.maximize.params import make_param

    start = np.random.default_rng(0).uniform(0.05, 0.95, (15, 18, 3)).astype(np.float32)
    p = make_param(kind, (2, 15, 18, 3), start, squash=squash)
    np.testing.assert_allclose(p.image().numpy(), np.broadcast_to(start, (2, 15, 18, 3)), atol=1e-4)


def test_transforms():
    import tensorflow as tf

    from engine.maximize.transforms import build, parse_transforms

    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (2, 20, 20, 3)).astype(np.float32))
    spec = parse_transforms(["jitter:3"], (20, 20))
    seed = tf.constant([1, 2])
    y = build(spec)(x, seed).numpy()
    assert y.shape == x.shape
    shifted = [
        (dy, dx)
        for dy in range(-3, 4)
        for dx in range(-3, 4)
        if np.allclose(y[:, 5:15, 5:15], np.roll(x.numpy(), (dy, dx), axis=(1, 2))[:, 5:15, 5:15], atol=1e-5)
    ]
    assert shifted, "jitter must be an integer translation"
    full = parse_transforms(["jitter", "rotate:20", "scale:0.2", "pad:4"], (20, 20))
    assert (full.jitter, full.rotate, full.scale, full.pad) == (1.0, 20.0, 0.2, 4)
    a, b = build(full)(x, seed).numpy(), build(full)(x, seed).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        a[0], build(full)(x[:1], seed).numpy()[0], atol=1e-6
    )  # the same for every image
    assert parse_transforms((), (20, 20)).empty
    with pytest.raises(EngineError):
        parse_transforms(["scale:2"], (20, 20))


def test_regularizer_operators():
    import tensorflow as tf

    from engine.maximize.regularizers import blur, operate, parse_regularizers

    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32))

    def tv(a):
        return np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=2)).mean()

    assert tv(blur(x, 1.0).numpy()) < 0.5 * tv(x.numpy())
    decayed = operate(parse_regularizers(["decay:0.5"]), x, tf.constant(1)).numpy()
    np.testing.assert_allclose(decayed - 0.5, 0.5 * (x.numpy() - 0.5), atol=1e-6)
    clipped = operate(parse_regularizers(["clip_value:30"]), x, tf.constant(1)).numpy()
    grey = np.all(clipped == 0.5, axis=-1).mean()
    assert 0.25 <= grey <= 0.35
    with pytest.raises(EngineError):
        parse_regularizers(["blur:1:0"])
    with pytest.raises(EngineError):
        parse_regularizers(["clip_value:100"])


def test_job_runs_a_big_batch_in_chunks(tiny_cnn_path):
    import engine.maximize.jobs  # noqa: F401
    from engine.jobs import Finished, Frame, Request, run

    params = {"model": str(tiny_cnn_path), "objective": "conv2:*", "chunk": 4, "every": 5, "seed": 1}
    events = list(run(Request("maximize", params)))
    frames = [e for e in events if isinstance(e, Frame)]
    assert {f.info.offset for f in frames} == {0, 4}
    assert all(f.info.count == 6 for f in frames)
    assert [f.images.shape[0] for f in frames if f.info.offset == 4] == [2, 2, 2]
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.images.shape == (6, 16, 16, 3)
    whole = list(engine.maximize(engine.load_model(tiny_cnn_path), "conv2:*", seed=1))[-1].images
    np.testing.assert_allclose(result.images, whole, atol=1e-5)
    assert len(result.objectives) == 6 and len(result.curves) == 2


def test_pre_activation_moves_a_dead_unit(tiny):
    acts = start_acts(tiny, "conv2")
    dead = np.argwhere(acts == 0)
    assert len(dead), "the fixture should have a dead unit on the start image"
    y, x, c = (int(v) for v in dead[0])
    objective = f"conv2:{c}@{y},{x}"
    stuck = run(tiny, objective, transforms=(), pre_activation=False)
    assert np.array_equal(stuck[-1].images, stuck[0].images)  # zero gradient: nothing moves
    assert stuck[-1].info["stopped"] == "silent" and stuck[-1].info["settings"]["pre_activation"] is False
    moved = run(tiny, objective, transforms=())  # before the activation is the default
    assert moved[-1].info["objective"][0] > moved[-1].info["start_objective"][0]
    assert moved[-1].info["settings"]["pre_activation"] is True and not moved[-1].info["silent"]
    bigger = run(tiny, f"conv2:{c}", size=24, pre_activation=True)[-1]
    assert bigger.info["objective"][0] > bigger.info["start_objective"][0]


@pytest.mark.parametrize(("param", "optimizer"), [("pixel", "normalized"), ("fourier", "adam")])
def test_compiled_loop_is_reused_with_a_clean_state(tiny, param, optimizer):
    from engine.maximize import run as mrun

    kw = {"param": param, "optimizer": optimizer, "seed": 3, "regularizers": ["blur:0.5:2"]}
    mrun.clear_cache()
    fresh = run(tiny, "conv2:1", **kw)[-1].images
    run(tiny, "conv2:2", **{**kw, "seed": 4})  # same structure: reuses the loop
    assert len(mrun._LOOPS) == 1
    again = run(tiny, "conv2:1", **kw)[-1].images
    np.testing.assert_array_equal(again, fresh)


def test_an_unfinished_run_keeps_its_own_loop(tiny):
    from engine.maximize import run as mrun

    mrun.clear_cache()
    reference = run(tiny, "conv2:0", seed=5)[-1].images
    gen = engine.maximize(tiny, "conv2:0", seed=5, steps=10, every=1)
    for _ in range(3):
        next(gen)
    run(tiny, "conv2:3", seed=9)  # must not touch the variables of the run in progress
    rest = list(gen)
    np.testing.assert_array_equal(rest[-1].images, reference)


# ----- defaults that move, silent units, unit activity ---------------------------------------------------
@pytest.fixture(scope="module")
def dead_model():
    """A 16x16 grey model whose conv c1 has channel 0 dead (bias -100 after its ReLU) and channel 1 alive."""
    import keras

    from engine.models import ModelHandle

    keras.utils.set_random_seed(2)
    inp = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(3, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="out")(x)
    model = keras.Model(inp, out)
    kernel, bias = model.get_layer("c1").get_weights()
    kernel[..., 1] = np.abs(kernel[..., 1]) + 0.05
    bias[:] = [-100.0, 0.0]
    model.get_layer("c1").set_weights([kernel, bias])
    return ModelHandle(model, name="dead", spec="dead")


def test_conv4_of_builtin_shapes_rises_for_every_alive_channel_with_defaults(shapes):
    """The issue's check: defaults only (noise start, transforms, pre-activation), every channel alive on
    a scan of the model's own data rises and none is silent."""
    from engine.maximize.units import natural_images

    alive = engine.unit_activity(shapes, "conv4", natural_images(shapes, 128)).alive
    assert len(alive) >= 16, "a trained shapes model has most conv4 channels alive"
    last = run(shapes, "conv4:*")[-1]  # 10 steps (CONVSCOPE_MAX_STEPS)
    rose = last.info["rose"]
    assert [c for c in alive if not rose[c]] == []
    assert last.info["silent"] == () and "stopped" not in last.info
    assert last.info["settings"]["pre_activation"] is True


def test_a_dead_unit_is_reported_silent_and_stops_early(dead_model):
    from engine.maximize.run import SILENT_STEPS

    dead = run(dead_model, "c1:0", pre_activation=False)
    last = dead[-1]
    assert last.info["stopped"] == "silent" and last.info["silent"] == (0,)
    assert last.step == len(last.info["curve"]) == SILENT_STEPS < last.total
    assert last.info["message"].startswith("unit is silent from this start: c1:0")
    assert "before the activation" in last.info["message"]
    assert last.info["rose"] == (False,)
    alive = run(dead_model, "c1:1", pre_activation=False)[-1]
    assert alive.info["silent"] == () and "message" not in alive.info and "stopped" not in alive.info
    assert alive.step == alive.total == 10 and alive.info["rose"] == (True,)
    # before the activation the same unit has a gradient and rises
    pre = run(dead_model, "c1:0", pre_activation=True)[-1]
    assert pre.info["silent"] == () and pre.info["objective"][0] > pre.info["start_objective"][0]


def test_the_default_reads_before_the_activation_except_on_a_first_layer_conv(shapes):
    """A first-layer conv is linear in the input before its ReLU (its maximizer would be the flat sign
    pattern the analytic maximizer shows), so auto reads it after; deeper layers are read before."""
    from engine.maximize.run import read_before_activation

    assert read_before_activation(shapes, ["conv1"]) is False
    assert read_before_activation(shapes, ["conv2"]) is True
    assert read_before_activation(shapes, ["conv1", "conv3"]) is True
    assert read_before_activation(shapes, ["conv1"], True) is True
    assert read_before_activation(shapes, ["conv4"], False) is False
    first = run(shapes, "conv1:0", steps=3)[-1]
    assert first.info["settings"]["pre_activation"] is False
    # the default conv1 result is a texture, not a flat image: it varies within the picture
    assert float(first.images[0].std()) > 0.05


def test_a_batch_reports_its_silent_channels_and_optimizes_the_others(dead_model):
    steps = run(dead_model, "c1:*", pre_activation=False)
    first, last = steps[0], steps[-1]
    assert last.step == last.total == 10 and "stopped" not in last.info
    assert last.info["silent"] == (0,)
    assert "1 of 2 units are silent" in last.info["message"] and "c1:0" in last.info["message"]
    assert np.array_equal(last.images[0], first.images[0])  # the silent one never moved
    assert last.info["objective"][1] > last.info["start_objective"][1]


def test_silent_units_through_the_job_and_in_chunks(dead_model, monkeypatch):
    from engine import job_handlers
    from engine.jobs import Request, run_sync

    monkeypatch.setitem(job_handlers._state, "current", dead_model)
    result = run_sync(Request("maximize", {"objective": "c1:*", "chunk": 1, "pre_activation": False}))
    assert result.silent == (0,) and "1 of 2 units are silent" in result.message
    assert result.rose == (False, True)
    single = run_sync(Request("maximize", {"objective": "c1:0", "pre_activation": False}))
    assert single.stopped == "silent" and "unit is silent" in single.message


def _direct_activity(model, layer, images):
    import keras

    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    out = np.asarray(sub(images, training=False))
    axes = tuple(range(out.ndim - 1))
    return out.mean(axis=axes), out.max(axis=axes)


@pytest.mark.parametrize("layer", ["conv2", "fc"])
def test_unit_activity_matches_keras(tiny, layer):
    images = np.random.default_rng(4).uniform(0, 1, (7, 16, 16, 3)).astype(np.float32)
    mean, peak = _direct_activity(tiny.model, layer, images)
    act = engine.unit_activity(tiny, layer, images, batch=3)
    assert act.count == 7 and act.layer == layer
    np.testing.assert_allclose(act.mean, mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(act.max, peak, rtol=1e-4, atol=1e-6)
    # the channel the Maximize tab opens on: the live one whose mean most exceeds its response
    # to a flat image of the images' mean colour
    flat_image = np.broadcast_to(images.mean(axis=(0, 1, 2)), images.shape[1:])[None]
    flat, _ = _direct_activity(tiny.model, layer, flat_image.astype(np.float32))
    np.testing.assert_allclose(act.flat, flat, rtol=1e-4, atol=1e-6)
    assert act.best == int(np.argmax(np.where(peak > 0, mean - flat, -np.inf)))
    assert act.unit == ("channel" if layer == "conv2" else "unit")
    # an iterable of single images and uint8 input give the same numbers
    as_bytes = np.round(images * 255).astype(np.uint8)
    again = engine.unit_activity(tiny, layer, iter(list(as_bytes)), batch=4)
    mean8, _ = _direct_activity(tiny.model, layer, as_bytes.astype(np.float32) / 255)
    np.testing.assert_allclose(again.mean, mean8, rtol=1e-4, atol=1e-6)


def test_unit_activity_reports_dead_units_with_evidence(dead_model):
    images = np.random.default_rng(1).uniform(0, 1, (1000, 16, 16, 1)).astype(np.float32)
    act = engine.unit_activity(dead_model, "c1", images, source="noise")
    assert act.dead == (0,) and act.alive == (1,) and act.best == 1
    assert act.dead_note() == "channel 0 of c1 is zero on all 1,000 scanned images (noise): dead"
    assert engine.unit_activity(dead_model, "c1", images[:5]).count == 5


def test_unit_activity_job_on_samples_and_natural_data():
    from engine.jobs import Finished, Progress, Request, run
    from engine.maximize.units import UnitActivity, natural_images

    events = list(run(Request("unit_activity", {"model": "builtin:digits", "layer": "Conv2D_2"})))
    act = events[-1].result
    assert isinstance(events[-1], Finished) and isinstance(act, UnitActivity)
    assert act.count == 10 and "samples" in act.source  # the ten digit samples fit a 28x28 grey model
    params = {"model": "builtin:digits", "layer": "Conv2D_2", "images": "natural", "n": 70, "batch": 32}
    events = list(run(Request("unit_activity", params)))
    assert [e.step for e in events if isinstance(e, Progress)] == [32, 64, 70]
    natural = events[-1].result
    assert natural.count == 70 and natural.source == "builtin:digits?n=70"
    h = engine.load_model("builtin:digits")
    direct = engine.unit_activity(h, "Conv2D_2", natural_images(h, 70))
    np.testing.assert_allclose(natural.mean, direct.mean, rtol=1e-5)


def test_the_unit_picked_first_fires_on_the_start_when_read_after_its_activation():
    """builtin:digits' most selective conv1 channel is silent on the noise start after its ReLU (and
    auto reads a first-layer conv after it): the pick job then opens on a selective unit that fires."""
    from engine.jobs import Request, run_sync

    h = engine.load_model("builtin:digits")
    picked = run_sync(
        Request("unit_activity", {"model": "builtin:digits", "layer": "Conv2D_1", "start": "noise"})
    )
    assert picked.start is not None and picked.start[picked.best] > 0
    plain = run_sync(Request("unit_activity", {"model": "builtin:digits", "layer": "Conv2D_1"}))
    assert plain.start is None
    alive = np.flatnonzero(picked.max > 0)
    assert picked.best in alive
    assert picked.selectivity[picked.best] == max(picked.selectivity[c] for c in alive if picked.start[c] > 0)
    # deeper layers are read before the activation: no start measurement, no silence possible
    deep = run_sync(
        Request("unit_activity", {"model": "builtin:digits", "layer": "Conv2D_2", "start": "noise"})
    )
    assert deep.start is None
    last = run(h, f"Conv2D_1:{picked.best}")[-1]
    assert last.info["silent"] == () and last.info["rose"] == (True,)


def test_auto_redirects_the_relu_gradient_of_a_first_layer_unit_silent_on_the_start(monkeypatch):
    """Digits Conv2D_1:2 never fires on the noise start (its plain post-ReLU run is silent); the default
    read (after the ReLU, gradient redirected as in Lucid) still moves it, and reports true ReLU values."""
    h = engine.load_model("builtin:digits")
    plain = run(h, "Conv2D_1:2", pre_activation=False)[-1]
    assert plain.info["silent"] == (0,)
    monkeypatch.setenv("CONVSCOPE_MAX_STEPS", "200")  # the default run's length: it takes a while to fire
    auto = run(h, "Conv2D_1:2", steps=200)[-1]
    assert auto.info["silent"] == () and auto.info["settings"]["pre_activation"] is False
    assert auto.info["objective"][0] > auto.info["start_objective"][0] == 0.0
    assert min(auto.info["objective"]) >= 0.0  # the values are the unit's output after its ReLU
    # every first-layer unit of the shipped digits model rises in the default run (bench/first_try.py)
    layer = run(h, "Conv2D_1:*", steps=200)[-1]
    assert all(layer.info["rose"]) and layer.info["silent"] == ()
