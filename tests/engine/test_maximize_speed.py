"""engine.maximize's fast paths (issue 14) give the results of the plain ones.

- the contracted read-out: a channel objective on a conv read before its activation is computed
  from the conv's input with one kernel per image, and gives the images of the full layer;
- memory-aware batching: a batch that does not fit the budget (CONVSCOPE_MEMORY_BUDGET) runs
  as chunks in lockstep and gives the images of one batch;
- the silent-unit probe read from the step's own gradient, also with a penalty (separate probe).
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.maximize import readout as readout_mod
from engine.maximize import run as run_mod
from engine.memory import activation_bytes, budget_bytes, fit_batch, parse_bytes


def run(h, objective, **kw):
    kw.setdefault("steps", 10)
    return list(engine.maximize(h, objective, **kw))


def _readout_of(h, objective: str, batch_pre=True) -> tuple[str, ...]:
    from engine.maximize.graphs import output_shapes, tap_model
    from engine.maximize.objectives import as_expressions, layer_names, parse_objective, plan

    exprs = as_expressions(objective)
    paths = tuple(dict.fromkeys(h.resolve(n) for n in layer_names(exprs)))
    taps = tap_model(h, paths, False, tuple(h.input_shape[:2]), pre=batch_pre)
    shapes = output_shapes(taps, paths)
    obj = parse_objective(exprs, h, shapes)
    weights = plan(obj, shapes, 0)
    return readout_mod.readout_paths(h, paths, batch_pre, weights, shapes, obj.batch)


def test_readout_is_chosen_only_where_it_is_exact(tiny):
    assert _readout_of(tiny, "conv2:0..2") == ("conv2",)
    assert _readout_of(tiny, "conv2:0") == ("conv2",)
    assert _readout_of(tiny, "conv2:0..5") == ()  # a batch as wide as the layer: the full conv is no dearer
    assert _readout_of(tiny, "conv2:0", batch_pre=False) == ()  # after its ReLU the read is not linear
    assert _readout_of(tiny, "conv2:0 + 0.1*conv2") == ()  # another term reads the whole output
    assert _readout_of(tiny, "conv1:0") == ()  # fed by the input itself: nothing to save


@pytest.mark.parametrize(("param", "optimizer"), [("pixel", "normalized"), ("fourier", "adam")])
def test_readout_gives_the_images_of_the_full_layer(tiny, monkeypatch, param, optimizer):
    kw = {"param": param, "optimizer": optimizer, "seed": 5}
    fast = run(tiny, "conv2:1..3", **kw)
    monkeypatch.setattr(readout_mod, "READOUT", False)
    full = run(tiny, "conv2:1..3", **kw)
    np.testing.assert_allclose(fast[-1].images, full[-1].images, atol=1e-5)
    np.testing.assert_allclose(fast[-1].info["objective"], full[-1].info["objective"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast[-1].info["curve"], full[-1].info["curve"], rtol=1e-4, atol=1e-5)
    assert fast[-1].info["objective"][0] > fast[-1].info["start_objective"][0]


def test_readout_on_a_bigger_canvas_and_builtin_shapes(tiny, monkeypatch):
    from engine import zoo

    h = engine.load_model("builtin:shapes") if zoo.get("shapes").model_path.exists() else tiny
    layer = "conv4" if h is not tiny else "conv2"
    fast = run(h, f"{layer}:0..2", steps=4)[-1]
    big = run(tiny, "conv2:0..1", size=24, steps=4)[-1]
    monkeypatch.setattr(readout_mod, "READOUT", False)
    np.testing.assert_allclose(fast.images, run(h, f"{layer}:0..2", steps=4)[-1].images, atol=1e-4)
    np.testing.assert_allclose(big.images, run(tiny, "conv2:0..1", size=24, steps=4)[-1].images, atol=1e-5)


# ----- memory-aware batching -----------------------------------------------------------------------
def test_budget_parsing_and_fit(monkeypatch):
    assert parse_bytes("2G") == 2 * 2**30 and parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes("1.5k") == 1536 and parse_bytes("100") == 100
    with pytest.raises(ValueError):
        parse_bytes("lots")
    monkeypatch.setenv("CONVSCOPE_MEMORY_BUDGET", "3M")
    assert budget_bytes() == 3 * 2**20
    monkeypatch.setenv("CONVSCOPE_MEMORY_BUDGET", "nonsense")  # ignored: the measured budget applies
    assert budget_bytes() is None or budget_bytes() > 0
    monkeypatch.delenv("CONVSCOPE_MEMORY_BUDGET")
    assert budget_bytes() > 0  # RAM on this machine (or a GPU's free memory)
    assert fit_batch(64, 10, budget=1000) == 64 and fit_batch(64, 100, budget=1000) == 10
    assert fit_batch(64, 10**9, budget=1000) == 1


def test_activation_bytes_follow_the_layer_shapes(tiny):
    # forward: 3x the largest output (conv1: 14x14x4) plus the input; training: 3x the sum of all
    outs = [14 * 14 * 4, 7 * 7 * 4, 7 * 7 * 6, 294, 5, 3]
    assert activation_bytes(tiny.model, training=False) == 4 * (3 * max(outs) + 16 * 16 * 3)
    assert activation_bytes(tiny.model, training=True) == 4 * (3 * sum(outs) + 16 * 16 * 3)


@pytest.mark.parametrize(
    ("param", "optimizer", "regs"),
    [("pixel", "normalized", ()), ("fourier", "adam", ()), ("pixel", "normalized", ("tv", "blur:1:2"))],
)
def test_a_batch_over_the_budget_runs_in_chunks_with_the_same_images(
    tiny, monkeypatch, param, optimizer, regs
):
    from engine.maximize.chunked import chunk_size
    from engine.maximize.graphs import tap_model

    kw = {"param": param, "optimizer": optimizer, "regularizers": regs, "seed": 2, "every": 4}
    whole = run(tiny, "conv2:0..4", **kw)
    taps = tap_model(tiny, ("conv2",), False, (16, 16), pre=True)
    per_image = activation_bytes(taps, training=True)
    monkeypatch.setenv("CONVSCOPE_MEMORY_BUDGET", str(2 * per_image))  # two images fit: chunks of 2, 2, 1
    from engine.maximize.objectives import LossPlan

    empty = LossPlan({}, {}, {}, {}, None, np.zeros(5, np.int32))
    assert chunk_size(taps, 5, empty, False) == 2
    made = []

    class Spy(run_mod.ChunkedLoop):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self.bounds)

    monkeypatch.setattr(run_mod, "ChunkedLoop", Spy)
    split = run(tiny, "conv2:0..4", **kw)
    assert made == [[(0, 2), (2, 4), (4, 5)]]
    assert [s.step for s in split] == [s.step for s in whole] == [0, 4, 8, 10]
    for a, b in zip(split, whole):
        assert a.images.shape == b.images.shape == (5, 16, 16, 3)
        np.testing.assert_allclose(a.images, b.images, atol=1e-5)
        np.testing.assert_allclose(a.losses, b.losses, rtol=1e-4, atol=1e-5)
    assert split[-1].info["rose"] == whole[-1].info["rose"]
    assert split[-1].info["objective"][4] > split[-1].info["start_objective"][4]


def test_a_class_batch_and_silent_units_in_chunks(tiny, monkeypatch):
    """Class objectives split by rows too; probabilities come back for the whole batch."""
    whole = run(tiny, ["class:0", "class:1", "class:2"], steps=4)[-1]
    monkeypatch.setenv("CONVSCOPE_MEMORY_BUDGET", "1")  # nothing fits: one image per chunk
    split = run(tiny, ["class:0", "class:1", "class:2"], steps=4)[-1]
    np.testing.assert_allclose(split.images, whole.images, atol=1e-5)
    np.testing.assert_allclose(split.info["probability"], whole.info["probability"], rtol=1e-4, atol=1e-6)


def test_coupled_objectives_are_not_split(tiny, monkeypatch):
    from engine.maximize.chunked import splittable
    from engine.maximize.objectives import LossPlan

    plan = LossPlan({}, {}, {}, {}, None, np.zeros(2, np.int32))
    assert splittable(plan, False) and not splittable(plan, True)
    monkeypatch.setenv("CONVSCOPE_MEMORY_BUDGET", "1")
    steps = run(tiny, "conv2:0..1 - 0.1*diversity(conv2)", steps=3)
    assert steps[-1].images.shape == (2, 16, 16, 3)


# ----- the silent-unit probe -----------------------------------------------------------------------
def test_the_probe_reads_the_steps_gradient_and_a_penalty_keeps_its_own(tiny):
    """Without penalties the probe is the step's own gradient; with tv the separate probe runs
    (a penalty's gradient must not make a silent unit look alive)."""
    import keras

    from engine.models import ModelHandle

    keras.utils.set_random_seed(2)
    inp = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(3, 3, activation="relu", name="c2")(x)
    model = keras.Model(inp, x)
    kernel, bias = model.get_layer("c1").get_weights()
    kernel[..., 1] = np.abs(kernel[..., 1]) + 0.05
    bias[:] = [-100.0, 0.0]
    model.get_layer("c1").set_weights([kernel, bias])
    h = ModelHandle(model, name="dead2", spec="dead2")
    plain = run(h, "c1:0..1", pre_activation=False)[-1]
    assert plain.info["silent"] == (0,)
    assert next(reversed(run_mod._LOOPS.values())).probe_in_step
    tv = run(h, "c1:0..1", pre_activation=False, regularizers=("tv:0.5",))[-1]
    assert tv.info["silent"] == (0,)
    assert not next(reversed(run_mod._LOOPS.values())).probe_in_step
