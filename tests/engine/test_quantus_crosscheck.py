"""Cross-check of our attribution scores against Quantus (an independent implementation), on the same maps.

Quantus 0.6 runs here with Keras 3 / TF 2.21: its TensorFlowModel wrapper predicts through
`keras.Model.predict` and clones models with `keras.models.clone_model`, both fine with Keras 3.
Inputs go in channels-last with `channel_first=False` (that flag also tells the wrapper the
model's layout); attributions and masks go in channel-first, (N, 1, H, W).

The exact correspondences, and the definitional differences, one per pair:

- pointing_game(tolerance=0) == quantus.PointingGame when the map has one maximum. Ours with a
  tolerance t == PointingGame with the mask dilated by t px (Euclidean): both ask whether the
  peak lies within t px of the object. Difference: on a plateau (several pixels share the
  maximum) Quantus scores a hit when ANY of them lies in the mask, ours takes their centroid.
- energy_pointing_game == quantus.AttributionLocalisation(abs=False, positive_attributions=True):
  the share of the positive mass inside the box. Differences: Quantus's default abs=True counts
  |negative| evidence as mass; a map with no positive mass scores 0 there (0 / (0 + 1e-9)),
  the box's area share here (a map with no evidence counts as uniform).
- deletion_auc's curve == quantus.PixelFlipping's curve (Bach et al. 2015, the per-pixel ancestor
  of RISE's deletion; RegionPerturbation and Selectivity are the same with patches of pixels
  ranked by their summed attribution, so only their patch_size=1 form is this metric):
  pixels in decreasing map order, `features_in_step` = pixels / steps at a time, the target's
  probability after each step. Quantus's curve lacks the unmodified image's point, so it is our
  `scores[1:]`; its AUC (np.trapz with dx=1, which NumPy 2.4 no longer has, so
  return_auc_per_sample fails here) relates to ours, on fractions 0..1, by
  auc = ((s0 + q1) / 2 + trapezoid(q)) / steps. Baselines: our "black" is Quantus's
  perturb_baseline=0.0 (Quantus's "black" is the image's minimum); our blur has no Quantus
  counterpart, so Quantus gets a perturb_func that copies the blurred pixels in (its order,
  stepping and prediction, our baseline image). Insertion is the same PixelFlipping run from
  the baseline image with the photo's pixels copied in. Quantus's argsort breaks ties in its
  own order and ours by a seeded permutation, so the maps here have no ties.
- randomization (engine.attribution.sanity) vs quantus.MPRT: both report the Spearman rank
  correlation of the absolute maps against the original map, step by step, top layer first,
  cascading. Our `similarity.spearman` and Quantus's `correlation_spearman` agree to 1e-9 on the
  same pairs of maps (ours from our run, Quantus's from its run). The randomizations differ:
  Quantus permutes each weight array along its first axis (same seed for every layer), ours
  draws fresh values from each weight's initializer, so the per-step values are not comparable;
  end to end the two must give the same verdict: Grad-CAM of this model falls below PASS_BELOW
  (0.5) with all layers random in both, and an edge detector of the input stays at 1.0 in both.

Tolerances: 1e-9 for Spearman (the same float64 ranks); 1e-6 for energy (the same float64 sums,
but Quantus adds 1e-9 to the positive mass, an error of 1e-9 / mass: the Grad-CAM maps here have
a mass of ~0.3, so ~4e-9, and a mass above 1e-3 stays within 1e-6); 1e-5 for
probabilities, which both sides get from the same float32 model but in different batches
(oneDNN kernels may round differently by batch size; observed differences are ~1e-7).

Importing Quantus imports OpenCV (opencv-python), whose config points QT_QPA_PLATFORM_PLUGIN_PATH
at its own Qt plugins; the import below restores the environment so Qt tests later in the same
run still load PySide6's plugins.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

_QT_VARS = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")


def _import_quantus():
    saved = {k: os.environ.get(k) for k in _QT_VARS}
    try:
        return pytest.importorskip("quantus")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


quantus = _import_quantus()

SIZE = 16
STEPS = 8  # 256 pixels, 32 per step (each step is one keras predict call in Quantus)
PROB_TOL = 1e-5
EXACT_TOL = 1e-9
ENERGY_TOL = 1e-6  # Quantus adds 1e-9 to the positive mass (>= 1e-3 for these maps)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def gap():
    """A 16x16x1 conv net (two convs, global average pooling, softmax head) whose class 0 has
    positive head weights, so its Grad-CAM is positive; a test image and the class-0 maps."""
    import keras
    from keras import layers

    import engine
    from engine.models import ModelHandle

    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model(inp, out, name="gap1")
    kernel, bias = model.get_layer("out").get_weights()
    kernel[:, 0] = np.abs(kernel[:, 0]) + 0.2
    model.get_layer("out").set_weights([kernel, bias])
    h = ModelHandle(model, name="gap1", spec="memory:gap1")
    img = np.random.default_rng(0).random((SIZE, SIZE, 1)).astype(np.float32)
    cam = engine.cam(h, img, 0, method="gradcam")
    return h, img, cam


def _boxes(rng, n, size):
    out = []
    for _ in range(n):
        top, left = rng.integers(0, size - 4, 2)
        bottom = rng.integers(top + 2, size + 1)
        right = rng.integers(left + 2, size + 1)
        out.append((int(top), int(left), int(bottom), int(right)))
    return out


def _mask(box, size):
    m = np.zeros((size, size), bool)
    m[box[0] : box[2], box[1] : box[3]] = True
    return m


def _dilate(mask, tol):
    """Pixels within `tol` px (Euclidean) of the mask."""
    rows, cols = np.nonzero(mask)
    yy, xx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
    d2 = (yy[..., None] - rows) ** 2 + (xx[..., None] - cols) ** 2
    return d2.min(axis=-1) <= tol**2


def _quantus_pointing(maps, masks):
    metric = quantus.PointingGame(disable_warnings=True)
    x = np.zeros((len(maps), *maps[0].shape, 1), np.float32)
    return _quiet(
        metric,
        model=None,
        x_batch=x,
        y_batch=np.zeros(len(maps), int),
        a_batch=np.stack(maps)[:, None],
        s_batch=np.stack(masks)[:, None].astype(float),
        channel_first=False,
    )


# ----------------------------------------------------------------------------- pointing game
def test_pointing_game_at_zero_tolerance_is_quantus_pointing_game(gap):
    from engine.attribution.metrics import pointing_game

    _, _, cam = gap
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(SIZE, SIZE)) for _ in range(30)] + [cam.heatmap.astype(np.float64)] * 6
    boxes = _boxes(rng, 30, SIZE) + [(0, 0, 8, 8), (0, 8, 8, 16), (8, 0, 16, 8), (8, 8, 16, 16)]
    boxes += [(4, 4, 12, 12), (0, 0, 2, 2)]
    masks = [_mask(b, SIZE) for b in boxes]
    theirs = _quantus_pointing(maps, masks)
    ours = [pointing_game(m, b, tolerance=0) for m, b in zip(maps, boxes)]
    assert [bool(t) for t in theirs] == ours
    assert 0 < sum(ours) < len(ours)  # both outcomes are exercised


def test_pointing_game_tolerance_is_quantus_with_a_dilated_mask():
    from engine.attribution.metrics import TOLERANCE, pointing_game

    size = 48
    rng = np.random.default_rng(2)
    maps = [rng.normal(size=(size, size)) for _ in range(24)]
    boxes = [(top, left, top + 6, left + 6) for top, left in rng.integers(0, size - 6, (24, 2))]
    dilated = [_dilate(_mask(b, size), TOLERANCE) for b in boxes]
    theirs = _quantus_pointing(maps, dilated)
    ours = [pointing_game(m, b) for m, b in zip(maps, boxes)]
    assert [bool(t) for t in theirs] == ours
    assert 0 < sum(ours) < len(ours)


def test_pointing_game_plateau_is_where_the_two_differ():
    """Two equal maxima, one in the box and one in the far corner: Quantus counts any maximum
    in the box as a hit; ours points at their centroid, > 15 px from the box: a miss."""
    from engine.attribution.metrics import pointing_game

    m = np.zeros((48, 48))
    m[2, 2] = m[45, 45] = 1.0
    box = (0, 0, 6, 6)
    assert bool(_quantus_pointing([m], [_mask(box, 48)])[0]) is True
    assert pointing_game(m, box) is False
    m[45, 45] = 0.999  # one maximum again: both hit
    assert bool(_quantus_pointing([m], [_mask(box, 48)])[0]) is True
    assert pointing_game(m, box, tolerance=0) is True


# ----------------------------------------------------------------------------- energy
def _quantus_energy(maps, masks, **options):
    options = {"abs": False, "positive_attributions": True, "normalise": False, **options}
    metric = quantus.AttributionLocalisation(disable_warnings=True, **options)
    x = np.zeros((len(maps), *maps[0].shape, 1), np.float32)
    return np.array(
        _quiet(
            metric,
            model=None,
            x_batch=x,
            y_batch=np.zeros(len(maps), int),
            a_batch=np.stack(maps)[:, None],
            s_batch=np.stack(masks)[:, None].astype(float),
            channel_first=False,
        ),
        np.float64,
    )


def test_energy_pointing_game_is_quantus_attribution_localisation(gap):
    from engine.attribution.metrics import energy_pointing_game

    _, _, cam = gap
    rng = np.random.default_rng(3)
    maps = [rng.normal(size=(SIZE, SIZE)) for _ in range(20)]
    maps += [cam.heatmap.astype(np.float64), cam.heatmap_relu.astype(np.float64)] * 3
    boxes = _boxes(rng, len(maps), SIZE)
    theirs = _quantus_energy(maps, [_mask(b, SIZE) for b in boxes])
    ours = np.array([energy_pointing_game(m, b) for m, b in zip(maps, boxes)])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=ENERGY_TOL)


def test_energy_definitional_differences_with_quantus_defaults():
    from engine.attribution.metrics import energy_pointing_game

    box = (0, 0, 8, 16)  # the top half
    signed = np.zeros((SIZE, SIZE))
    signed[:8] = 1.0
    signed[8:] = -1.0  # negative evidence outside the box
    mask = _mask(box, SIZE)
    assert energy_pointing_game(signed, box) == pytest.approx(1.0)
    # Quantus's default abs=True counts |negative| mass: half of it lies outside
    default = _quantus_energy([signed], [mask], abs=True, positive_attributions=False)
    assert default[0] == pytest.approx(0.5)
    # no positive evidence at all: ours = the box's area share (as a uniform map), Quantus 0
    # (Quantus refuses a map that is all zero or all negative, so one pixel is 0)
    none = -np.ones((SIZE, SIZE))
    none[0, 0] = 0.0
    assert energy_pointing_game(none, box) == pytest.approx(0.5)
    assert _quantus_energy([none], [mask])[0] == 0.0


# ----------------------------------------------------------------------------- deletion / insertion
def _fill_from(source):
    """A Quantus perturb_func: copy `source`'s values (a (1, H*W) row) into the chosen pixels."""
    flat = np.asarray(source, np.float32).reshape(1, -1)

    def perturb(arr, indices, **kwargs):
        out = np.array(arr, copy=True)
        rows = np.arange(out.shape[0])[:, None]
        out[rows, indices] = flat[np.zeros_like(rows), indices]
        return out

    return perturb


def _pixel_flipping(model, start, a, target, **options):
    metric = quantus.PixelFlipping(
        features_in_step=SIZE * SIZE // STEPS, normalise=False, abs=False, disable_warnings=True, **options
    )
    curves = _quiet(
        metric,
        model=model,
        x_batch=np.asarray(start, np.float32)[None],
        y_batch=np.array([target]),
        a_batch=a[None, None],
        channel_first=False,
        softmax=True,
    )
    return np.asarray(curves[0], np.float64)


def _no_ties(heatmap):
    """The Grad-CAM map with its ties broken by a fixed tiny offset (the same map goes to both)."""
    m = np.asarray(heatmap, np.float64)
    return m + 1e-9 * np.abs(m).max() * np.random.default_rng(4).random(m.shape)


def test_deletion_curve_is_quantus_pixel_flipping(gap):
    from engine.attribution.metrics import baseline_image, deletion_auc

    h, img, cam = gap
    m = _no_ties(cam.heatmap)
    assert np.unique(m).size == m.size
    ours = deletion_auc(h, img, m, 0, steps=STEPS, baseline="black")
    theirs = _pixel_flipping(h.model, img, m, 0, perturb_baseline=0.0)
    assert theirs.shape == (STEPS,)
    np.testing.assert_allclose(ours.scores[1:], theirs, rtol=0, atol=PROB_TOL)
    auc = ((ours.scores[0] + theirs[0]) / 2 + np.trapezoid(theirs)) / STEPS
    assert ours.auc == pytest.approx(auc, abs=PROB_TOL)

    blurred = baseline_image(img, "blur")
    ours = deletion_auc(h, img, m, 0, steps=STEPS, baseline="blur")
    theirs = _pixel_flipping(h.model, img, m, 0, perturb_func=_fill_from(blurred))
    np.testing.assert_allclose(ours.scores[1:], theirs, rtol=0, atol=PROB_TOL)


def test_insertion_curve_is_quantus_pixel_flipping_from_the_baseline(gap):
    from engine.attribution.metrics import baseline_image, insertion_auc

    h, img, cam = gap
    m = _no_ties(cam.heatmap)
    blurred = baseline_image(img, "blur")
    ours = insertion_auc(h, img, m, 0, steps=STEPS, baseline="blur")
    theirs = _pixel_flipping(h.model, blurred, m, 0, perturb_func=_fill_from(img))
    np.testing.assert_allclose(ours.scores[1:], theirs, rtol=0, atol=PROB_TOL)
    assert theirs[-1] == pytest.approx(float(h.model.predict(img[None], verbose=0)[0, 0]), abs=PROB_TOL)


# ----------------------------------------------------------------------------- randomization
def _explainer(h, method, record):
    """A Quantus explain_func over our maps: keras model (original or Quantus's randomized clone,
    channel-first or -last input) -> (N, 1, H, W) absolute maps; every call's maps go to `record`."""
    from engine.models import ModelHandle

    handles = {id(h.model): h}

    def explain(model, inputs, targets, **kwargs):
        key = id(model)
        if key not in handles:
            handles[key] = ModelHandle(model, name="randomized", spec="memory:randomized")
        x = np.asarray(inputs, np.float32)
        if x.shape[-1] != h.input_shape[-1]:
            x = np.moveaxis(x, 1, -1)
        maps = np.stack([method(handles[key], xi, int(t)) for xi, t in zip(x, targets)])
        record.append(maps)
        return np.abs(maps)[:, None]

    return explain


def _gradcam(h, photo, target):
    import engine

    return engine.cam(h, photo, target, method="gradcam").heatmap


def _sobel(h, photo, target):
    """An edge detector of the input: a "method" that ignores the model."""
    g = np.pad(np.asarray(photo, np.float64)[..., 0], 1, mode="edge")
    gx = (g[:-2, 2:] + 2 * g[1:-1, 2:] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[1:-1, :-2] + g[2:, :-2])
    gy = (g[2:, :-2] + 2 * g[2:, 1:-1] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[:-2, 1:-1] + g[:-2, 2:])
    return np.hypot(gx, gy).astype(np.float32)


def _mprt(h, img, method):
    record: list[np.ndarray] = []
    explain = _explainer(h, method, record)
    metric = quantus.MPRT(disable_warnings=True)
    a = explain(h.model, img[None], [0])
    scores = _quiet(
        metric,
        model=h.model,
        x_batch=img[None],
        y_batch=np.array([0]),
        a_batch=a,
        channel_first=False,
        explain_func=explain,
    )
    return {k: float(v[0]) for k, v in scores.items()}, [r[0] for r in record]


def test_randomization_spearman_is_quantus_spearman_on_the_same_maps(gap):
    from quantus.functions.similarity_func import correlation_spearman

    from engine.attribution.sanity import randomization
    from engine.attribution.similarity import spearman

    h, img, _ = gap
    ours = randomization(h, img, "gradcam", 0)
    assert ours.steps == ("original", "out", "conv2", "conv1")
    for k, m in enumerate(ours.maps):  # our run's maps, Quantus's Spearman
        rho = correlation_spearman(
            np.abs(ours.maps[0]).reshape(1, -1).astype(np.float64),
            np.abs(m).reshape(1, -1).astype(np.float64),
            batched=True,
        )[0]
        assert ours.spearman[k] == pytest.approx(rho, abs=EXACT_TOL)

    theirs, maps = _mprt(h, img, _gradcam)  # Quantus's run's maps, our Spearman
    assert list(theirs) == ["original", "out", "conv2", "conv1"]  # top down, as ours
    for k, (name, rho) in enumerate(theirs.items()):
        assert spearman(maps[0], maps[k + 1]) == pytest.approx(rho, abs=EXACT_TOL), name

    # different randomizations (permuted vs re-initialized weights), the same verdict
    from engine.attribution.sanity import PASS_BELOW

    assert ours.passed
    assert ours.spearman[-1] < PASS_BELOW
    assert theirs["conv1"] < PASS_BELOW


def test_randomization_of_an_edge_detector_is_flat_in_both(gap):
    from engine.attribution.sanity import randomization

    h, img, _ = gap
    ours = randomization(h, img, _sobel, 0)
    theirs, _ = _mprt(h, img, _sobel)
    np.testing.assert_allclose(ours.spearman, 1.0, atol=EXACT_TOL)
    np.testing.assert_allclose(list(theirs.values()), 1.0, atol=EXACT_TOL)
    assert not ours.passed
