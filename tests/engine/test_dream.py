"""engine.dream: octaves with detail re-injection, tiled random-shift gradients on photos larger than the
model input, grey models on colour photos, single-map mode, cancel, NaN and the "dream" job."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import Cancelled, EngineError, OptimizationDiverged


@pytest.fixture(scope="module")
def grey_model():
    """A digits-like 28x28 grey convnet without dense layers in the way (random weights, seeded)."""
    import keras

    from engine.models import ModelHandle

    keras.utils.set_random_seed(2)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(10, activation="softmax", name="out")(x)
    return ModelHandle(
        keras.Model(inp, out), name="grey", spec="grey", class_names=[str(i) for i in range(10)]
    )


@pytest.fixture(scope="module")
def photo():
    """A smooth 70x90 colour photo stand-in (larger than the 28x28 model input)."""
    from engine.maximize.params import start_image

    return start_image("structured", (70, 90, 3), seed=4, amplitude=0.2)


def test_grey_model_dreams_on_larger_colour_photo(grey_model, photo):
    steps = list(engine.dream(grey_model, photo, "c2", octaves=3, steps=10, every=4))
    last = steps[-1]
    assert last.step == last.total == 30
    assert last.images.shape == (1, 70, 90, 3) and last.images.dtype == np.float32
    assert all(s.images.shape == (1, 70, 90, 3) for s in steps)
    assert [s.step for s in steps] == [0, 4, 8, 12, 16, 20, 24, 28, 30]
    curve = last.info["curve"]
    assert len(curve) == 30
    for octave in range(3):  # the objective rises within every octave
        assert curve[octave * 10 + 9] > curve[octave * 10]
    change = np.abs(last.images[0] - photo)
    assert change.mean() > 0.01
    # the grey model's gradient reaches all three colour channels
    assert all(change[..., c].mean() > 0.005 for c in range(3))


def test_detail_is_reinjected(grey_model, photo):
    """With a negligible step, the octave loop returns the photo itself: the lost detail is put back."""
    last = list(engine.dream(grey_model, photo, "c1", octaves=4, octave_scale=1.6, steps=1, lr=1e-7))[-1]
    np.testing.assert_allclose(last.images[0], photo, atol=0.02)
    from engine.images import resize

    blurred = resize(resize(photo, (17, 22)), photo.shape[:2])
    assert np.abs(blurred - photo).mean() > 3 * np.abs(last.images[0] - photo).mean()


def test_single_map_weighted_layers_and_grey_photo(grey_model, photo):
    grey = photo.mean(axis=-1, keepdims=True)
    single = list(engine.dream(grey_model, grey, "c2:3", octaves=2, steps=5))[-1]
    assert single.images.shape == (1, 70, 90, 1)
    assert single.info["curve"][4] > single.info["curve"][0]
    weighted = list(engine.dream(grey_model, photo, {"c1": 0.5, "c2": 1.0}, octaves=1, steps=3))[-1]
    assert weighted.info["objective"] == "0.5*c1 + 1*c2"
    listed = list(engine.dream(grey_model, photo, ["c1", "c2"], octaves=1, steps=3))[-1]
    assert listed.info["settings"]["layers"] == "c1 + c2"


def test_photo_smaller_than_the_tiles(grey_model):
    small = np.random.default_rng(0).uniform(0, 1, (20, 12, 3)).astype(np.float32)
    last = list(engine.dream(grey_model, small, "c2", octaves=2, steps=3))[-1]
    assert last.images.shape == (1, 20, 12, 3)


def test_colour_model_on_builtin_shapes_rises():
    from engine import zoo

    if zoo.get("shapes").model_path.exists():
        h = engine.load_model("builtin:shapes")
    else:
        import keras

        from engine.models import ModelHandle
        from engine.zoo.shapes import CLASS_NAMES, build_model

        keras.utils.set_random_seed(0)
        h = ModelHandle(build_model(), name="shapes", spec="builtin:shapes", class_names=list(CLASS_NAMES))
    from engine.maximize.params import start_image

    img = start_image("structured", (150, 200, 3), seed=1, amplitude=0.2)
    last = list(engine.dream(h, img, "conv3", octaves=2, steps=5, size=160))[-1]
    assert last.images.shape == (1, 120, 160, 3)
    curve = last.info["curve"]
    assert curve[9] > curve[5] and curve[4] > curve[0]


def test_octave_shapes():
    from engine.maximize.deepdream import octave_shapes

    assert octave_shapes((140, 280), 3, 1.4) == [(71, 143), (100, 200), (140, 280)]
    assert octave_shapes((20, 20), 5, 2.0)[0] == (8, 8)
    with pytest.raises(EngineError):
        octave_shapes((20, 20), 0, 1.4)
    with pytest.raises(EngineError):
        octave_shapes((20, 20), 2, 0.5)


def test_bad_settings(grey_model, photo):
    with pytest.raises(EngineError, match="not single neurons"):
        engine.dream(grey_model, photo, "c2:0@1,1")
    with pytest.raises(EngineError, match="no layer"):
        engine.dream(grey_model, photo, "nope")
    with pytest.raises(EngineError, match="positive"):
        engine.dream(grey_model, photo, "c2", lr=0)
    with pytest.raises(EngineError):
        engine.dream(grey_model, photo, [])


def test_cancel_stops_within_one_step(grey_model, photo):
    from engine.jobs import CancelToken

    token = CancelToken()
    gen = engine.dream(grey_model, photo, "c2", octaves=2, steps=10, every=1, token=token)
    assert next(gen).step == 0
    assert next(gen).step == 1
    token.cancel()
    with pytest.raises(Cancelled):
        next(gen)


def test_nan_dream_reports_the_error(photo):
    import keras

    from engine.models import ModelHandle

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 3, name="c1")(inp)
    model = keras.Model(inp, x)
    kernel, bias = model.get_layer("c1").get_weights()
    kernel[1, 1, 0, 0] = np.inf
    model.get_layer("c1").set_weights([kernel, bias])
    h = ModelHandle(model, name="inf", spec="inf")
    with pytest.raises(OptimizationDiverged, match="diverged at step 1"):
        list(engine.dream(h, photo, "c1", octaves=1, steps=3))


def test_dream_job(grey_model, photo):
    import engine.maximize.jobs  # noqa: F401 - registers the job kinds
    from engine.job_handlers import _state
    from engine.jobs import Failed, Finished, Frame, Request, run

    previous = _state["current"]
    _state["current"] = grey_model
    try:
        events = list(
            run(Request("dream", {"image": photo, "layers": ["c2"], "octaves": 2, "steps": 4, "every": 2}))
        )
        missing = list(run(Request("dream", {"layers": "c2"})))
    finally:
        _state["current"] = previous
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.step for f in frames] == [0, 2, 4, 6, 8]
    assert isinstance(events[-1], Finished)
    result = events[-1].result
    assert result.images.shape == (1, 70, 90, 3) and len(result.losses) == 8
    assert result.settings["octaves"] == 2 and result.settings["model"] == "grey"
    assert isinstance(missing[-1], Failed) and "no image" in missing[-1].message


def test_builtin_digits_dreams_on_a_larger_colour_photo(photo):
    from engine import zoo

    if not zoo.get("digits").model_path.exists():
        pytest.skip("builtin:digits is not trained yet (resources/models/digits.keras)")
    h = engine.load_model("builtin:digits")
    last = list(engine.dream(h, photo, "Conv2D_2", octaves=2, steps=4))[-1]
    assert last.images.shape == (1, 70, 90, 3)
    assert np.abs(last.images[0] - photo).mean() > 0.005
    curve = last.info["curve"]
    assert curve[3] > curve[0] and curve[7] > curve[4]
