"""Class activation maps: hand computations, exact projections through receptive fields, targets.

Tiny untrained models with fixed seeds; the shapes stack (conv4: 58x58 cells, field 14 px,
stride 2) checks every mapping against a direct implementation of its definition.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.attribution import CamResult, cam
from engine.attribution.cam import METHODS, iter_cam
from engine.attribution.metrics import peak
from engine.attribution.projection import DEFAULT_MAPPING, MAPPINGS, project, projection_matrices
from engine.errors import Cancelled, EngineError, LayerNotFound
from engine.models import ModelHandle
from engine.receptive_field import receptive_field
from engine.zoo.shapes import conv_stack

layers = keras.layers


def handle(model: keras.Model, **kw) -> ModelHandle:
    return ModelHandle(model, name=model.name, spec=f"test:{model.name}", **kw)


def shapes_stack(seed: int = 0) -> keras.Model:
    """The builtin:shapes architecture (untrained)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((128, 128, 3))
    x = conv_stack(inp)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(10, activation="relu", name="dense1")(x)
    out = layers.Dense(4, activation="softmax", name="out")(x)
    return keras.Model(inp, out, name="shapes")


@pytest.fixture(scope="module")
def shapes() -> ModelHandle:
    return handle(shapes_stack(), class_names=["circle", "square", "triangle", "star"])


@pytest.fixture(scope="module")
def gap_model() -> ModelHandle:
    """conv (8x8 -> 6x6x3) -> global average pooling -> dense softmax: Grad-CAM has a closed form."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 1))
    x = layers.Conv2D(3, 3, activation="relu", name="conv", bias_initializer="random_normal")(inp)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(2, activation="softmax", name="out", bias_initializer="random_normal")(x)
    return handle(keras.Model(inp, out, name="gap"))


def rng_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def activations(h: ModelHandle, layer: str, img: np.ndarray) -> np.ndarray:
    return np.asarray(h.submodel([layer])(img[None]))[0]


# ----------------------------------------------------------------------------- Grad-CAM by hand
def test_gradcam_equals_hand_computation_with_gap(gap_model: ModelHandle) -> None:
    img = rng_image((8, 8, 1))
    acts = activations(gap_model, "conv", img).astype(np.float64)  # (6, 6, 3)
    kernel, bias = (np.asarray(v, np.float64) for v in gap_model.layer("out").weights)
    logits = acts.mean(axis=(0, 1)) @ kernel + bias
    for target in (0, 1):
        # dS/dA_k(i, j) = W[k, target] / 36 everywhere, so the weights are W[:, target] / 36
        expected = acts @ (kernel[:, target] / 36.0)
        res = cam(gap_model, img, target=target, layer="conv")
        assert isinstance(res, CamResult)
        np.testing.assert_allclose(res.cam, expected, rtol=1e-4, atol=1e-6)
        assert res.score == pytest.approx(logits[target], rel=1e-5)
        assert res.target == target and res.layer == "conv"
    top = cam(gap_model, img, layer="conv")
    assert top.target == int(np.argmax(logits))
    probs = np.exp(logits - logits.max())
    np.testing.assert_allclose(top.probabilities, probs / probs.sum(), rtol=1e-5)


def test_gradcam_family_match_formulas_on_flatten_head() -> None:
    keras.utils.set_random_seed(2)
    inp = keras.Input((9, 9, 1))
    x = layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(inp)  # 4x4x4
    x = layers.Flatten()(x)
    out = layers.Dense(3, name="out")(x)  # linear head: the logits are the output
    h = handle(keras.Model(inp, out, name="flat"))
    img = rng_image((9, 9, 1), 3)
    a = activations(h, "conv", img).astype(np.float64)
    kernel = np.asarray(h.layer("out").kernel, np.float64)
    g = kernel[:, 2].reshape(4, 4, 4)  # dS/dA for target 2, flattened in (h, w, c) order
    np.testing.assert_allclose(cam(h, img, 2, "conv").cam, a @ g.mean(axis=(0, 1)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        cam(h, img, 2, "conv", method="layercam").cam, (np.maximum(g, 0) * a).sum(-1), rtol=1e-4, atol=1e-6
    )
    alpha = np.where(g != 0, g**2 / (2 * g**2 + a.sum(axis=(0, 1)) * g**3), 0.0)
    weights = (np.maximum(g, 0) * alpha).sum(axis=(0, 1))
    np.testing.assert_allclose(
        cam(h, img, 2, "conv", method="gradcam++").cam, a @ weights, rtol=1e-4, atol=1e-6
    )


def test_signed_and_relu_variants(gap_model: ModelHandle) -> None:
    img = rng_image((8, 8, 1), 4)
    kernel = np.asarray(gap_model.layer("out").kernel)
    target = int(np.argmax(np.sign(kernel).sum(axis=0) < 3))  # a class with weights of both signs
    res = cam(gap_model, img, target=target, layer="conv", mapping="roi")
    assert res.cam.dtype == np.float32 and res.cam.shape == (6, 6)
    assert res.heatmap.shape == (8, 8) and res.heatmap.dtype == np.float32
    assert res.cam.min() < 0 < res.cam.max(), "evidence both ways"
    np.testing.assert_array_equal(res.cam_relu, np.maximum(res.cam, 0))
    py, px = projection_matrices(res.field, (6, 6), (8, 8), (8, 8), "roi")
    np.testing.assert_allclose(res.heatmap, project(res.cam, py, px), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.heatmap_relu, project(res.cam_relu, py, px), rtol=1e-5, atol=1e-7)
    assert res.heatmap_relu.min() >= 0 and res.heatmap.min() < 0
    assert res.heatmap_relu.max() == pytest.approx(project(np.maximum(res.cam, 0), py, px).max())


# ----------------------------------------------------------------------------- projections
def _naive(cam_map: np.ndarray, field, out_hw: tuple[int, int], mapping: str) -> np.ndarray:
    """Each mapping straight from its definition, pixel by pixel (model input == photo grid)."""
    hh, ww = cam_map.shape
    if mapping in ("roi", "gaussian"):
        sig = np.array(field.size) / 4.0
        num = np.zeros(out_hw)
        den = np.zeros(out_hw)
        for i in range(hh):
            for j in range(ww):
                top, left, bottom, right = field.box_clipped(i, j, out_hw)
                cy, cx = field.center(i, j)
                rows = np.arange(top, bottom)[:, None] + 0.5
                cols = np.arange(left, right)[None, :] + 0.5
                if mapping == "roi":
                    w = np.ones((bottom - top, right - left))
                else:
                    w = np.exp(-0.5 * ((rows - cy) / sig[0]) ** 2) * np.exp(
                        -0.5 * ((cols - cx) / sig[1]) ** 2
                    )
                num[top:bottom, left:right] += w * cam_map[i, j]
                den[top:bottom, left:right] += w
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    if mapping == "center":
        ys = np.array([field.center(i, 0)[0] for i in range(hh)])
        xs = np.array([field.center(0, j)[1] for j in range(ww)])
    else:
        ys = (np.arange(hh) + 0.5) * out_hw[0] / hh
        xs = (np.arange(ww) + 0.5) * out_hw[1] / ww
    rows = np.stack([np.interp(np.arange(out_hw[1]) + 0.5, xs, r) for r in cam_map])  # (hh, W)
    return np.stack([np.interp(np.arange(out_hw[0]) + 0.5, ys, c) for c in rows.T], axis=1)


def test_shapes_conv4_field_is_14_stride_2(shapes: ModelHandle) -> None:
    rf = receptive_field(shapes, "conv4")
    assert (rf.size, rf.stride, rf.offset) == ((14, 14), (2, 2), (0, 0))


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_each_mapping_matches_its_definition_on_the_shapes_stack(shapes: ModelHandle, mapping: str) -> None:
    img = rng_image((128, 128, 3), 5)
    res = cam(shapes, img, target=1, layer="conv4", mapping=mapping)
    expected = _naive(res.cam.astype(np.float64), res.field, (128, 128), mapping)
    np.testing.assert_allclose(res.heatmap, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_roi_is_an_exact_tiling(shapes: ModelHandle) -> None:
    rf = receptive_field(shapes, "conv4")
    py, px = projection_matrices(rf, (58, 58), (128, 128), (128, 128), "roi")
    # every pixel covered, each by the cells whose 14-px field holds it: 1 at the edges, 7 inside
    counts = (py > 0).sum(axis=1)
    expected = [min(p // 2, 57) - max(-(-(p - 13) // 2), 0) + 1 for p in range(128)]
    assert counts.tolist() == expected and counts[0] == counts[-1] == 1 and counts[64] == 7
    np.testing.assert_allclose(py.sum(axis=1), 1.0, rtol=1e-6)
    # a constant map stays constant; one cell lights exactly its field
    np.testing.assert_allclose(project(np.ones((58, 58)), py, px), 1.0, rtol=1e-6)
    one = np.zeros((58, 58), np.float32)
    one[10, 40] = 1.0
    heat = project(one, py, px)
    rows, cols = np.nonzero(heat)
    assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == rf.box(10, 40) == (20, 80, 34, 94)
    np.testing.assert_allclose(heat[rows, cols], 1.0 / 49.0, rtol=1e-6)


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_one_cell_lands_on_its_field_centre(shapes: ModelHandle, mapping: str) -> None:
    rf = receptive_field(shapes, "conv4")
    py, px = projection_matrices(rf, (58, 58), (128, 128), (128, 128), mapping)
    for i in (6, 28, 51):  # cells whose fields lie where every pixel is seen by 7 cells
        one = np.zeros((58, 58), np.float32)
        one[i, 57 - i] = 1.0
        y, x = peak(project(one, py, px))
        centre = (rf.center(i, 57 - i)[0] - 0.5, rf.center(i, 57 - i)[1] - 0.5)  # as pixel indices
        if mapping == "bilinear":  # the plain resize puts cell i at (i + 0.5) * 128 / 58
            resized = ((i + 0.5) * 128 / 58 - 0.5, (57 - i + 0.5) * 128 / 58 - 0.5)
            assert (y, x) == pytest.approx(resized, abs=0.5)
            if i != 28:
                assert abs(y - centre[0]) > 4 and abs(x - centre[1]) > 4, "misplaced by several pixels"
        else:
            assert (y, x) == pytest.approx(centre, abs=0.01)


def test_heatmap_lies_on_the_photos_own_grid(shapes: ModelHandle) -> None:
    photo = rng_image((256, 256, 3), 6)
    big = cam(shapes, photo, target=0, layer="conv4")
    assert big.heatmap.shape == (256, 256) and big.model_shape == (128, 128)
    rf = big.field
    py, px = projection_matrices(rf, (58, 58), (128, 128), (256, 256), "roi")
    one = np.zeros((58, 58), np.float32)
    one[10, 40] = 1
    rows, cols = np.nonzero(project(one, py, px))
    assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (40, 160, 68, 188)  # the field, x2
    odd = cam(shapes, rng_image((200, 90, 3), 7), layer="conv4", mapping="gaussian")
    assert odd.heatmap.shape == (200, 90) and np.isfinite(odd.heatmap).all()
    grey = cam(shapes, rng_image((64, 64, 1), 8), layer="conv4", mapping="center")
    assert grey.heatmap.shape == (64, 64)


def test_photo_at_twice_the_size_gives_the_map_upsampled_by_blocks() -> None:
    rf = type("F", (), {"size": (3, 3), "stride": (2, 2), "offset": (-1, -1)})()
    cam_map = np.random.default_rng(0).random((5, 5)).astype(np.float32)
    small = project(cam_map, *projection_matrices(rf, (5, 5), (10, 10), (10, 10), "roi"))
    big = project(cam_map, *projection_matrices(rf, (5, 5), (10, 10), (20, 20), "roi"))
    np.testing.assert_allclose(big, np.kron(small, np.ones((2, 2))), rtol=1e-6)


# ----------------------------------------------------------------------------- targets
@pytest.fixture(scope="module")
def sigmoid_model() -> ModelHandle:
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1, activation="sigmoid", name="out", bias_initializer="ones")(x)
    return handle(keras.Model(inp, out, name="binary"))


def test_sigmoid_single_output_positive_and_negative(sigmoid_model: ModelHandle) -> None:
    h = sigmoid_model
    assert h.binary and h.num_classes == 2
    img = rng_image((16, 16, 3), 9)
    logit = float(np.asarray(keras.Model(h.flat_input, h.logits)(img[None]))[0, 0])
    pos = cam(h, img, target="positive", layer="conv")
    neg = cam(h, img, target="negative", layer="conv")
    assert (pos.target, neg.target) == (1, 0) and (pos.target_name, neg.target_name) == (
        "positive",
        "negative",
    )
    assert pos.score == pytest.approx(logit, rel=1e-5) and neg.score == pytest.approx(-logit, rel=1e-5)
    np.testing.assert_allclose(neg.cam, -pos.cam, rtol=1e-5, atol=1e-7)
    p = 1 / (1 + np.exp(-logit))
    np.testing.assert_allclose(pos.probabilities, [1 - p, p], rtol=1e-5)
    assert cam(h, img, layer="conv").target == (1 if logit > 0 else 0)
    np.testing.assert_allclose(cam(h, img, target=1, layer="conv").cam, pos.cam)
    with pytest.raises(EngineError, match="positive"):
        cam(h, img, target="maybe")


def test_class_names_and_bad_targets(shapes: ModelHandle) -> None:
    img = rng_image((128, 128, 3), 10)
    assert cam(shapes, img, target="star").target == 3
    assert cam(shapes, img, target="Triangle").target_name == "triangle"
    for bad, match in (
        (4, "out of range"),
        (-2, "out of range"),
        ("positive", "single sigmoid"),
        (1.5, "index"),
    ):
        with pytest.raises(EngineError, match=match):
            cam(shapes, img, target=bad)


def test_bad_method_mapping_and_layer(shapes: ModelHandle) -> None:
    img = rng_image((128, 128, 3), 11)
    with pytest.raises(EngineError, match="gradcam"):
        cam(shapes, img, method="occlusion")
    with pytest.raises(EngineError, match="roi"):
        cam(shapes, img, mapping="nearest")
    with pytest.raises(EngineError, match="no spatial extent"):
        cam(shapes, img, layer="dense1")
    with pytest.raises(LayerNotFound):
        cam(shapes, img, layer="conv9")


# ----------------------------------------------------------------------------- nested models
def test_nested_models_inner_layer_matches_a_flat_copy() -> None:
    keras.utils.set_random_seed(4)
    binp = keras.Input((20, 20, 3))
    c1 = layers.Conv2D(6, 3, activation="relu", name="c1")
    c2 = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")
    backbone = keras.Model(binp, c2(c1(binp)), name="backbone")
    gap = layers.GlobalAveragePooling2D()
    dense = layers.Dense(3, activation="softmax", name="head")
    outer_in = keras.Input((20, 20, 3))
    nested = handle(keras.Model(outer_in, dense(gap(backbone(outer_in))), name="nested"))
    flat_in = keras.Input((20, 20, 3))
    flat = handle(keras.Model(flat_in, dense(gap(c2(c1(flat_in)))), name="flat"))
    img = rng_image((20, 20, 3), 12)
    assert nested.default_cam_layer() == "backbone/c2"
    for method in ("gradcam", "scorecam"):
        a = cam(nested, img, target=1, layer="backbone/c2", method=method, precision="float32")
        b = cam(flat, img, target=1, layer="c2", method=method, precision="float32")
        assert a.layer == "backbone/c2"
        np.testing.assert_allclose(a.cam, b.cam, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-6)
    assert cam(nested, img, layer="c1").layer == "backbone/c1"  # a unique inner name is enough
    assert cam(nested, img).layer == "backbone/c2"


# ----------------------------------------------------------------------------- Score-CAM, Eigen-CAM
def _scorecam_by_hand(h: ModelHandle, img: np.ndarray, layer: str, target: int) -> np.ndarray:
    """One masked image at a time, masks projected with the roi mapping and scaled to [0, 1]."""
    acts = activations(h, layer, img).astype(np.float64)
    rf = receptive_field(h, layer)
    py, px = projection_matrices(rf, acts.shape[:2], img.shape[:2], img.shape[:2], "roi")
    model = keras.Model(h.flat_input, h.logits)

    def prob(x: np.ndarray) -> float:
        z = np.asarray(model(x[None].astype(np.float32)), np.float64)[0]
        e = np.exp(z - z.max())
        return float(e[target] / e.sum())

    base = prob(np.zeros_like(img))
    weights = np.zeros(acts.shape[-1])
    for k in range(acts.shape[-1]):
        m = project(acts[..., k], py, px).astype(np.float64)
        if m.max() - m.min() <= 0:
            continue
        m = (m - m.min()) / (m.max() - m.min())
        weights[k] = prob(img * m[..., None]) - base
    return acts @ weights


def test_scorecam_batched_equals_one_at_a_time(shapes: ModelHandle) -> None:
    img = rng_image((128, 128, 3), 13)
    kw = {"target": 3, "layer": "conv4", "method": "scorecam", "mapping": "roi", "precision": "float32"}
    one = cam(shapes, img, batch_size=1, **kw)
    many = cam(shapes, img, batch_size=13, **kw)
    assert many.settings["precision"] == "float32"
    np.testing.assert_allclose(one.cam, many.cam, rtol=1e-4, atol=1e-7)
    by_hand = _scorecam_by_hand(shapes, img, "conv4", 3)
    np.testing.assert_allclose(many.cam, by_hand, rtol=1e-3, atol=1e-6 * np.abs(by_hand).max())


def test_scorecam_in_bfloat16_matches_float32(shapes: ModelHandle) -> None:
    """The bf16 passes (engine.precision) round, but batching still changes nothing and the map agrees."""
    img = rng_image((128, 128, 3), 13)
    kw = {"target": 3, "layer": "conv4", "method": "scorecam", "mapping": "roi"}
    one = cam(shapes, img, batch_size=1, precision="bfloat16", **kw)
    many = cam(shapes, img, batch_size=13, precision="bfloat16", **kw)
    exact = cam(shapes, img, batch_size=13, precision="float32", **kw)
    assert many.settings["precision"] == "bfloat16"
    np.testing.assert_allclose(one.cam, many.cam, rtol=1e-3, atol=1e-3 * np.abs(many.cam).max())
    assert np.corrcoef(many.cam.ravel(), exact.cam.ravel())[0, 1] > 0.999
    assert not np.array_equal(many.cam, exact.cam)  # it really ran in another precision


def test_scorecam_masks_follow_the_mapping(shapes: ModelHandle) -> None:
    img = rng_image((128, 128, 3), 14)
    roi = cam(shapes, img, target=0, layer="conv4", method="scorecam", mapping="roi")
    bil = cam(shapes, img, target=0, layer="conv4", method="scorecam", mapping="bilinear")
    assert not np.allclose(roi.cam, bil.cam)


def test_scorecam_reports_progress_and_can_be_cancelled(shapes: ModelHandle) -> None:
    img = rng_image((128, 128, 3), 15)
    seen: list[tuple[int, int]] = []
    cam(
        shapes,
        img,
        layer="conv4",
        method="scorecam",
        batch_size=10,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] and len(seen) >= 3

    def cancel(done: int, total: int) -> None:
        if done:
            raise Cancelled()

    with pytest.raises(Cancelled):
        cam(shapes, img, layer="conv4", method="scorecam", batch_size=4, progress=cancel)
    gen = iter_cam(shapes, img, layer="conv4", method="gradcam")
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert isinstance(stop.value.value, CamResult)


def test_eigencam_of_one_channel_is_that_channel(gap_model: ModelHandle) -> None:
    keras.utils.set_random_seed(5)
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(1, 3, activation="relu", name="one", bias_initializer="ones")(inp)
    x = layers.GlobalAveragePooling2D()(x)
    h = handle(keras.Model(inp, layers.Dense(2, activation="softmax")(x), name="single"))
    img = rng_image((12, 12, 3), 16)
    a = activations(h, "one", img)[..., 0]
    res = cam(h, img, layer="one", method="eigencam")
    scale = res.cam.sum() / a.sum()
    assert scale > 0
    np.testing.assert_allclose(res.cam, a * scale, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_finite_maps(shapes: ModelHandle, method: str) -> None:
    res = cam(shapes, rng_image((100, 140, 3), 17), method=method)
    assert res.layer == "pool2" and res.cam.shape == (29, 29) and res.heatmap.shape == (100, 140)
    assert np.isfinite(res.heatmap).all() and np.isfinite(res.score)
    assert res.method == method and res.settings["mapping"] == DEFAULT_MAPPING == "gaussian"


def test_grad_function_is_compiled_once(shapes: ModelHandle) -> None:
    from engine.attribution.cam import _grad_fn

    img = rng_image((128, 128, 3), 18)
    cam(shapes, img, layer="conv3")
    fn = _grad_fn(shapes, "conv3")
    before = fn.experimental_get_tracing_count()
    for t in range(4):
        cam(shapes, rng_image((64 + t, 80, 3), t), target=t, layer="conv3")
    assert fn.experimental_get_tracing_count() == before
    assert isinstance(fn, tf.types.experimental.PolymorphicFunction)


# ----------------------------------------------------------------------------- the "cam" job
@pytest.fixture(scope="module")
def shapes_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cam") / "shapes.keras"
    shapes_stack(seed=7).save(path)
    return str(path)


def test_cam_job_streams_progress_and_returns_plain_data(shapes_file: str) -> None:
    from engine.jobs import Finished, Progress, Request, run

    img = rng_image((90, 120, 3), 19)
    req = Request(
        "cam",
        {
            "model": shapes_file,
            "image": img,
            "method": "scorecam",
            "layer": "pool2",
            "target": "2",
            "compare": 0,
            "mapping": "center",
            "batch_size": 8,
        },
    )
    events = list(run(req))
    assert isinstance(events[-1], Finished) and events[-1].reason == "done", events[-1]
    assert sum(isinstance(e, Progress) for e in events) >= 4
    out = events[-1].result
    assert out.result.target == 2 and out.compare.target == 0
    assert out.result.heatmap.shape == (90, 120) and out.photo.shape == (90, 120, 3)
    assert [p.index for p in out.predictions] == list(np.argsort(-out.result.probabilities)[:4])
    assert out.model_shape == (128, 128)


def test_cam_job_cancel_and_failure(shapes_file: str) -> None:
    from engine.jobs import CancelToken, Failed, Finished, Progress, Request, run

    img = rng_image((128, 128, 3), 20)
    token = CancelToken()
    events = []
    for event in run(
        Request(
            "cam",
            {"model": shapes_file, "image": img, "method": "scorecam", "layer": "conv4", "batch_size": 2},
        ),
        token,
    ):
        events.append(event)
        if isinstance(event, Progress) and event.step >= 2:
            token.cancel()
    assert isinstance(events[-1], Finished) and events[-1].reason == "cancelled"
    bad = list(run(Request("cam", {"model": shapes_file, "image": img, "method": "nope"})))
    assert isinstance(bad[-1], Failed) and "unknown CAM method" in bad[-1].message


# ----------------------------------------------------------------------------- figures
def test_figures_signed_relu_and_shared_scale() -> None:
    from engine import render
    from engine.attribution import figures

    photo = np.full((4, 6, 3), 0.8, np.float32)
    heat = np.zeros((4, 6), np.float32)
    heat[0, 0], heat[3, 5] = 2.0, -2.0
    signed = figures.overlay(photo, heat, "signed", alpha=1.0, dim=0.5)
    assert signed.dtype == np.uint8 and signed.shape == (4, 6, 3)
    red, blue, zero = signed[0, 0], signed[3, 5], signed[1, 1]
    assert red[0] > red[2] and blue[2] > blue[0]  # strong evidence for: red, against: blue
    assert zero.tolist() == [102] * 3  # zero leaves the photo, dimmed to half
    np.testing.assert_array_equal(signed, render.overlay(photo, heat, signed=True, alpha=1.0, dim=0.5))
    relu = figures.overlay(photo, heat, "relu", "gray", alpha=1.0)
    assert relu[0, 0].tolist() == [255] * 3 and relu[3, 5].tolist() == [0] * 3  # negatives show as zero
    assert figures.overlay(photo, heat, "relu", alpha=0.0)[1, 1].tolist() == [204] * 3
    pair = figures.compare_overlays(photo, [heat, heat / 2], "relu", "gray", alpha=1.0)
    gap = figures.GAP
    assert pair.shape == (4 + 2 * gap, 6 * 2 + 3 * gap, 3)
    first, second = pair[gap, gap, 0], pair[gap, 2 * gap + 6, 0]
    assert first == 255 and abs(int(second) - 128) <= 1  # one scale: half the evidence, half as bright
    assert figures.panel_at(2, (4, 6), gap + 1, 2 * gap + 6 + 2) == (1, 1, 2)
    assert figures.panel_at(2, (4, 6), 0, 0) is None
    coarse = figures.coarse_image(heat, cell=5, style="signed")
    assert coarse.shape == (20, 30, 3) and coarse[2, 2, 0] > coarse[2, 2, 2]
    with pytest.raises(EngineError, match="colormap"):
        figures.overlay(photo, heat, "relu", "jet")
    with pytest.raises(EngineError, match="photo"):
        figures.overlay(photo, np.zeros((3, 3)), "relu")
    with pytest.raises(EngineError, match="style"):
        figures.overlay(photo, heat, "fancy")
