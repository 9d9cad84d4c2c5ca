"""The attribution jobs' typed contract: params mirror the engine functions, results are typed.

CamParams, SaliencyParams and MetricsParams declare each default once; the fields that pass
through to iter_cam, iter_saliency and deletion_curve/insertion_curve must keep those
functions' names and defaults, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest

from engine.attribution import contract as ac
from engine.errors import EngineError
from engine.jobs import Failed, Request, run, run_sync

IMAGE_FIELDS = {"image", "model", "trust", "scaling"}  # engine.contract.ImageParams: the job's input


def _defaults(fn) -> dict[str, object]:
    """The parameters of `fn` that have a default, with it (the model and the image have none)."""
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _keyword_only(fn) -> set[str]:
    return {
        n for n, p in inspect.signature(fn).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _check_mirror(params_cls, fn, extra: set[str]) -> None:
    """Every defaulted argument of fn is a field with the same default; every other field is
    the image/model or one of `extra` (the job's own); the option() fields are fn's keyword-only ones."""
    want = _defaults(fn)
    have = {f.name: f.default for f in fields(params_cls)}
    for name, default in want.items():
        assert name in have, f"{params_cls.__name__} lacks {fn.__name__}'s {name!r}"
        assert have[name] == default, (
            f"{params_cls.__name__}.{name} = {have[name]!r}, {fn.__name__}: {default!r}"
        )
    assert set(have) - set(want) == IMAGE_FIELDS | extra
    assert set(params_cls.option_names()) == _keyword_only(fn)


def test_cam_params_mirror_iter_cam() -> None:
    from engine.attribution.cam import iter_cam

    _check_mirror(ac.CamParams, iter_cam, {"compare", "top_k"})


def test_saliency_params_mirror_iter_saliency() -> None:
    from engine.attribution.gradients import iter_saliency

    _check_mirror(ac.SaliencyParams, iter_saliency, set())
    p = ac.SaliencyParams()
    assert (p.samples, p.noise, p.steps, p.batch_size) == (25, 0.15, 32, 16)


def test_metrics_params_mirror_the_curves() -> None:
    from engine.attribution import metrics

    _check_mirror(ac.MetricsParams, metrics.deletion_curve, {"heatmap", "box", "mask"})
    assert _defaults(metrics.insertion_curve) == _defaults(metrics.deletion_curve)
    assert ac.MetricsParams().baseline == metrics.DEFAULT_BASELINE


def test_sanity_params_mirror_iter_randomization() -> None:
    from engine.attribution.sanity import iter_randomization

    _check_mirror(ac.SanityParams, iter_randomization, {"layer", "method_options"})
    p = ac.SanityParams(layer="conv2", method_options={"mapping": "roi"})
    assert p.request().kind == "sanity" and p.method_kwargs() == {"mapping": "roi", "layer": "conv2"}
    assert ac.SanityParams().method_kwargs() == {} and ac.SanityOutput.kind == "sanity"
    with pytest.raises(EngineError, match="unknown parameter.*ordr.*sanity"):
        ac.SanityParams.parse({"ordr": "cascade"})


def test_compare_methods_params_mirror_iter_compare() -> None:
    from engine.attribution.compare import ALL_METHODS, iter_compare

    _check_mirror(ac.CompareMethodsParams, iter_compare, set())
    p = ac.CompareMethodsParams(methods="gradcam,scorecam", box=(1, 2, 3, 4), sanity=False)
    assert p.request().kind == "compare_methods" and ac.CompareMethodsParams.parse(p.request().params) == p
    assert (
        ac.CompareMethodsParams().methods == ALL_METHODS and ac.CompareMethodsOutput.kind == "compare_methods"
    )
    with pytest.raises(EngineError, match="unknown parameter.*method.*compare_methods"):
        ac.CompareMethodsParams.parse({"method": "gradcam"})


def test_params_are_frozen_typed_requests() -> None:
    p = ac.CamParams(image="builtin:shape_star", method="scorecam", compare=3)
    with pytest.raises(FrozenInstanceError):
        p.method = "gradcam"  # type: ignore[misc]
    request = p.request("attribution")
    assert request.kind == "cam" and request.owner == "attribution"
    assert ac.CamParams.parse(request.params) == p
    assert ac.SaliencyParams().request().kind == "saliency" and ac.MetricsParams().request().kind == "metrics"
    assert p.options() == {"sigma": None, "batch_size": 32, "precision": "auto", "max_channels": None}
    with pytest.raises(EngineError, match="unknown parameter.*sampels.*saliency"):
        ac.SaliencyParams.parse({"sampels": 4})


def test_the_contract_imports_no_tensorflow() -> None:
    code = (
        "import sys, engine.attribution.contract; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jobs_answer_with_typed_results(tiny_cnn_path) -> None:
    model, image = str(tiny_cnn_path), np.random.default_rng(0).random((16, 16, 3), np.float32)
    cam = run_sync(ac.CamParams(model=model, image=image, compare=1, top_k=2).request())
    assert isinstance(cam, ac.CamOutput) and cam.compare is not None and cam.compare.target == 1
    assert len(cam.predictions) == 2 and all(isinstance(p, ac.Prediction) for p in cam.predictions)
    assert cam.predictions[0].index == int(np.argmax(cam.result.probabilities))
    assert cam.heatmap is cam.result.heatmap and cam.target == cam.result.target
    assert len(cam.heatmaps("relu")) == len(cam.cams) == 2 and cam.model_shape == (16, 16)
    assert cam.settings()["targets"][1]["index"] == 1
    sal = run_sync(
        ac.SaliencyParams(model=model, image=image, method="integrated", steps=4, target=2).request()
    )
    assert isinstance(sal, ac.SaliencyOutput) and sal.signed and sal.target == 2
    assert sal.heatmap.shape == (16, 16) and sal.cams is None and sal.photo.shape == (16, 16, 3)
    scores = run_sync(
        ac.MetricsParams(model=model, image=image, heatmap=cam.heatmap, target=cam.target, steps=4).request()
    )
    assert isinstance(scores, ac.MetricsOutput) and scores.baseline == "blur" and scores.pointing is None
    assert len(scores.deletion.scores) == 5 and scores.settings()["baseline"] == "blur"
    # a misspelt or missing parameter fails as one invalid request
    bad = list(run(Request("saliency", {"model": model, "image": image, "sample": 3})))
    assert isinstance(bad[-1], Failed) and bad[-1].kind == "invalid_request" and "sample" in bad[-1].message
    missing = list(run(ac.MetricsParams(model=model, image=image).request()))
    assert isinstance(missing[-1], Failed) and "heatmap" in missing[-1].message
