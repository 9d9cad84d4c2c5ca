"""Objectives as composable objects: constructors, +, - and *, the string grammar parsing into the same
objects, linear objectives compiling into the one batched plan, and the direction and diversity objectives."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import EngineError
from engine.maximize.objective_terms import channel, class_logit, direction, diversity, layer, neuron
from engine.maximize.objectives import Expr, parse, parse_objective, plan


def run(h, objective, **kw):
    kw.setdefault("steps", 10)
    return list(engine.maximize(h, objective, **kw))


def compiled(h, objective):
    """The LossPlan of `objective` on h at its input size (what the batched loop runs)."""
    obj = parse_objective(objective, h)
    shapes = {h.resolve(p): tuple(h.symbolic(h.resolve(p)).shape[1:]) for p in obj.layers}
    return obj, plan(obj, shapes, int(h.num_outputs))


# ----- objects and the grammar ---------------------------------------------------------------------
def test_strings_parse_into_the_same_objects():
    assert parse("conv3:5") == channel("conv3", 5)
    assert parse("conv3:1@2,3") == neuron("conv3", 1, 2, 3)
    assert parse("conv3") == layer("conv3")
    assert parse("class:star") == class_logit("star")
    assert parse("conv3:0..3") == channel("conv3", range(4))
    assert parse("conv3:*") == channel("conv3", "*")
    built = 0.5 * channel("conv3", 5) - 2 * class_logit(1) + layer("conv3") / 10
    assert parse("0.5*conv3:5 - 2*class:1 + 0.1*conv3") == built
    assert str(built) == "0.5*conv3:5 - 2*class:1 + 0.1*conv3"
    assert parse(str(built)) == built
    assert str(parse("conv3:5 -   conv2")) == "conv3:5 -   conv2"  # a parsed string keeps its text
    assert parse("conv3:5,5 + 10*diversity(conv3)") == channel("conv3", [5, 5]) + 10 * diversity("conv3")
    assert sum([channel("c", 1), channel("c", 2)]) == channel("c", 1) + channel("c", 2)
    assert -channel("c", 1) == (-1) * channel("c", 1)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: channel("c", 1) * channel("c", 2),
        lambda: channel("c", 1) * "2",
        lambda: channel("c", []),
        lambda: channel("class", 1),
        lambda: channel("c", "star"),
        lambda: direction("c", []),
        lambda: direction("c", [1.0, np.nan]),
        lambda: parse("nosuch(conv3)"),
        lambda: parse("diversity(conv3) * diversity(conv2)"),
    ],
)
def test_bad_objects_raise(bad):
    with pytest.raises(EngineError):
        bad()


def test_objects_and_strings_resolve_alike(tiny):
    a, pa = compiled(tiny, "conv2:* - 0.5*conv2 + class:1")
    b, pb = compiled(tiny, channel("conv2", "*") - 0.5 * layer("conv2") + class_logit(1))
    assert a.texts == b.texts and a.terms == b.terms
    np.testing.assert_array_equal(pa.channel["conv2"], pb.channel["conv2"])
    with pytest.raises(EngineError, match="must be a string"):
        parse_objective(3, tiny)


def test_a_list_of_objects_compiles_into_one_batched_plan(tiny):
    """One channel matrix (B, C) for the whole batch: the plan the string "conv2:0..5" gives."""
    _, ranged = compiled(tiny, "conv2:0..5")
    obj, listed = compiled(tiny, [channel("conv2", c) for c in range(6)])
    assert obj.batch == 6 and obj.texts[2] == "conv2:2"
    assert list(listed.channel) == ["conv2"] and not listed.custom
    np.testing.assert_array_equal(listed.channel["conv2"], ranged.channel["conv2"])
    np.testing.assert_array_equal(listed.channel["conv2"], np.eye(6, dtype=np.float32))


def test_an_object_run_equals_the_string_run(tiny):
    by_string = run(tiny, "conv2:0..2 - 0.1*conv2", seed=2)[-1]
    by_object = run(tiny, channel("conv2", range(3)) - 0.1 * layer("conv2"), seed=2)[-1]
    np.testing.assert_array_equal(by_object.images, by_string.images)
    assert by_object.info["objectives"] == by_string.info["objectives"]
    assert by_object.info["settings"]["objective"] == "conv2:0,1,2 - 0.1*conv2"


# ----- direction --------------------------------------------------------------------------------------
def test_direction_compiles_into_the_linear_plan(tiny):
    onehot = np.eye(6)[4]
    _, by_channel = compiled(tiny, channel("conv2", 4))
    _, by_direction = compiled(tiny, direction("conv2", onehot))
    np.testing.assert_array_equal(by_direction.channel["conv2"], by_channel.channel["conv2"])
    v = np.arange(5.0) - 2
    obj, dense = compiled(tiny, [direction("fc", v), 2 * direction("fc", v) + channel("fc", 0)])
    np.testing.assert_allclose(dense.unit["fc"], [v, 2 * v + np.eye(5)[0]])
    assert obj.texts[0] == "direction(fc)"
    with pytest.raises(EngineError, match="6 channels"):
        parse_objective(direction("conv2", [1.0, 2.0]), tiny)


def test_direction_objective_rises(tiny):
    v = np.random.default_rng(0).normal(size=6)
    last = run(tiny, direction("conv2", v))[-1]
    assert last.info["objective"][0] > last.info["start_objective"][0]
    # read after the activation, the value is the dot product of the spatially averaged channels with v
    last = run(tiny, direction("conv2", v), steps=2, pre_activation=False)[-1]
    acts = engine.feature_maps(tiny, last.images[0], ["conv2"])["conv2"]
    assert last.info["objective"][0] == pytest.approx(float(acts.mean(axis=(0, 1)) @ v), rel=1e-4, abs=1e-6)


# ----- diversity --------------------------------------------------------------------------------------
def test_diversity_value_is_lucids():
    from engine.maximize.objective_terms import _diversity_value

    rng = np.random.default_rng(1)
    acts = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    per_image = np.asarray(_diversity_value(acts))
    flat = acts.reshape(3, -1, 6)
    grams = np.einsum("bnc,bnd->bcd", flat, flat)
    grams /= np.linalg.norm(grams.reshape(3, -1), axis=1)[:, None, None]
    lucid = sum(float((grams[i] * grams[j]).sum()) for i in range(3) for j in range(3) if j != i) / 3
    assert per_image.shape == (3,)
    assert float(per_image.sum()) == pytest.approx(-lucid, rel=1e-5)
    same = np.asarray(_diversity_value(np.repeat(acts[:1], 4, axis=0)))
    np.testing.assert_allclose(same, -3 / 4, rtol=1e-5)  # identical images: cos 1 with the 3 others


def test_diversity_needs_a_batch(tiny):
    with pytest.raises(EngineError, match="several"):
        parse_objective("conv2:0 + diversity(conv2)", tiny)
    obj = parse_objective("conv2:0,0 + diversity(conv2)", tiny)
    assert obj.coupled and not parse_objective("conv2:0,0", tiny).coupled


def gram_similarity(h, images, layer_name):
    """Mean pairwise cosine similarity of the images' Gram matrices of a layer."""
    maps = np.stack([engine.feature_maps(h, im, [layer_name])[layer_name] for im in images])
    flat = maps.reshape(len(images), -1, maps.shape[-1])
    grams = np.einsum("bnc,bnd->bcd", flat, flat).reshape(len(images), -1)
    grams /= np.linalg.norm(grams, axis=1, keepdims=True) + 1e-12
    cos = grams @ grams.T
    n = len(images)
    return float((cos.sum() - np.trace(cos)) / (n * (n - 1)))


def pixel_spread(images):
    return float(np.mean([np.abs(a - b).mean() for i, a in enumerate(images) for b in images[i + 1 :]]))


def test_diversity_makes_the_batch_differ(tiny):
    """Same per-image starts (seed + b) and steps; only the diversity weight differs."""
    kw = {"steps": 10, "transforms": (), "seed": 1}
    without = run(tiny, "conv2:2,2,2,2 + 0*diversity(conv2)", **kw)
    with_div = run(tiny, "conv2:2,2,2,2 + 100*diversity(conv2)", **kw)
    np.testing.assert_array_equal(without[0].images, with_div[0].images)
    assert pixel_spread(without[0].images) > 0  # each image has its own start
    plain = run(tiny, "conv2:2,2,2,2", **kw)[0].images
    assert pixel_spread(plain) == 0  # without diversity the batch shares one start, as before
    a, b = without[-1].images, with_div[-1].images
    assert gram_similarity(tiny, b, "conv2") < gram_similarity(tiny, a, "conv2")
    assert pixel_spread(b) > pixel_spread(a)
    assert isinstance(channel("conv2", 2) + diversity("conv2"), Expr)
