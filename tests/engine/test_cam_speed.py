"""Score-CAM's fast mode and memory-aware batches (issue 14).

- max_channels runs only the channels whose maps vary most; each of those gets exactly the
  weight exact Score-CAM gives it (a channel's weight depends on its own mask only), the rest 0;
- a batch over the memory budget (CONVSCOPE_MEMORY_BUDGET) shrinks and gives the same map;
- `export cam --fast / --max-channels N` runs it and records it in the sidecar.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from engine.attribution import cam
from engine.attribution.cam import iter_cam
from engine.attribution.methods import FAST_CHANNELS, check_max_channels, top_variance_channels
from engine.errors import EngineError
from engine.models import ModelHandle

layers = keras.layers


@pytest.fixture(scope="module")
def small() -> ModelHandle:
    """32x32x3 -> conv (16 channels, 16x16) -> dense softmax over 3 classes."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = layers.MaxPooling2D(name="p1")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(3, activation="softmax", name="out", bias_initializer="random_normal")(x)
    model = keras.Model(inp, out, name="small")
    return ModelHandle(model, name="small", spec="test:small", class_names=["a", "b", "c"])


def photo(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((32, 32, 3)).astype(np.float32)


def test_max_channels_names_a_count_or_a_share() -> None:
    assert check_max_channels(None) is None and check_max_channels(5) == 5 and check_max_channels(3.0) == 3
    assert check_max_channels(0.25) == 0.25 and FAST_CHANNELS == 0.25
    for bad in (0, -1, 1.5, "8", True):
        with pytest.raises(EngineError, match="max_channels"):
            check_max_channels(bad)


def test_top_variance_channels_keeps_the_most_varied_live_ones() -> None:
    acts = np.zeros((4, 4, 5), np.float32)
    rng = np.random.default_rng(0)
    for c, scale in enumerate([1.0, 5.0, 0.0, 3.0, 0.5]):
        acts[..., c] = scale * rng.standard_normal((4, 4))
    live = np.array([0, 1, 3, 4])  # channel 2 is constant
    assert top_variance_channels(acts, live, None) is live
    assert list(top_variance_channels(acts, live, 2)) == [1, 3]
    assert list(top_variance_channels(acts, live, 0.5)) == [0, 1, 3]  # ceil(0.5 * 5) = 3, in channel order
    assert list(top_variance_channels(acts, live, 10)) == [0, 1, 3, 4]


def test_fast_scorecam_gives_the_exact_weights_of_the_channels_it_runs(small: ModelHandle) -> None:
    img = photo(1)
    kw = {"layer": "c2", "method": "scorecam", "mapping": "bilinear", "precision": "float32"}
    exact = cam(small, img, 0, **kw)
    fast = cam(small, img, 0, max_channels=6, **kw)
    assert fast.settings["max_channels"] == 6 and "max_channels" not in exact.settings
    acts = np.asarray(small.submodel(["c2"])(img[None]))[0]
    live = np.flatnonzero(np.ptp(acts, axis=(0, 1)) > 0)
    chosen = top_variance_channels(acts, live, 6)
    assert len(chosen) == 6
    # the fast map is exact Score-CAM's map restricted to the chosen channels
    w_exact = _exact_weights(small, img, kw)
    expected = (acts.astype(np.float64) @ np.where(np.isin(np.arange(16), chosen), w_exact, 0.0)).astype(
        np.float32
    )
    np.testing.assert_allclose(fast.cam, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        exact.cam, (acts.astype(np.float64) @ w_exact).astype(np.float32), rtol=1e-4, atol=1e-6
    )
    # all the channels: exact again
    np.testing.assert_allclose(cam(small, img, 0, max_channels=16, **kw).cam, exact.cam, rtol=1e-5, atol=1e-7)
    assert (
        cam(small, img, 0, layer="c2", max_channels=3).settings.get("max_channels") is None
    )  # Grad-CAM ignores it
    # the figure says it is the fast mode; exact's does not
    from engine.plot.attribution import cam_figure

    assert "fast mode: only the 6 channels" in cam_figure(img, [fast], "scorecam", "c2", small.name).caption
    assert "fast mode" not in cam_figure(img, [exact], "scorecam", "c2", small.name).caption


def _exact_weights(h: ModelHandle, img: np.ndarray, kw: dict) -> np.ndarray:
    """Exact Score-CAM's channel weights, captured from its generator's return value."""
    from engine.attribution.methods import CamContext, ScoreCAM
    from engine.attribution.target import Target
    from engine.common import drain
    from engine.images import to_model_input

    x = to_model_input(img, h)
    acts = np.asarray(h.submodel(["c2"])(x))[0]
    ctx = CamContext(h, x, Target.of(h, 0), 0, None, kw["mapping"], None, 32, kw["precision"])
    return np.asarray(drain(ScoreCAM().iter_weights(ctx, acts, None)), np.float64)


def test_a_scorecam_batch_over_the_budget_shrinks_and_gives_the_same_map(small, monkeypatch) -> None:
    img = photo(2)
    kw = {
        "layer": "c2",
        "method": "scorecam",
        "mapping": "bilinear",
        "precision": "float32",
        "batch_size": 32,
    }
    whole = list(iter_cam(small, img, 1, **kw))
    ref = cam(small, img, 1, **kw)
    from engine.attribution.methods import forward_bytes_per_image

    per = forward_bytes_per_image(small)
    monkeypatch.setenv("CONVSCOPE_MEMORY_BUDGET", str(3 * per))  # 3 masked images per pass
    split = list(iter_cam(small, img, 1, **kw))
    assert len(whole) == 2 and len(split) == 1 + -(-whole[-1][1] // 3)  # progress once per pass
    np.testing.assert_allclose(cam(small, img, 1, **kw).cam, ref.cam, rtol=1e-5, atol=1e-7)


def test_export_cam_fast_and_max_channels(small, tmp_path) -> None:
    from engine.cli import main

    path = tmp_path / "small.keras"
    small.model.save(path)
    from PIL import Image

    Image.fromarray((photo(3) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    base = [
        "export",
        "cam",
        "--model",
        str(path),
        "--image",
        str(tmp_path / "img.png"),
        "--method",
        "scorecam",
    ]
    assert (
        main([*base, "--layer", "c2", "--max-channels", "4", "--raw", "--out", str(tmp_path / "a.png")]) == 0
    )
    meta = json.loads((tmp_path / "a.png.json").read_text())
    assert meta["settings"]["max_channels"] == 4 and "--max-channels 4" in meta["command"]
    assert main([*base, "--layer", "c2", "--fast", "--raw", "--out", str(tmp_path / "b.png")]) == 0
    with pytest.raises(SystemExit) as done:  # the help text formats (argparse %-formats it)
        main(["export", "cam", "--help"])
    assert done.value.code == 0
    meta = json.loads((tmp_path / "b.png.json").read_text())
    assert meta["settings"]["max_channels"] == FAST_CHANNELS and "--fast" in meta["command"]
