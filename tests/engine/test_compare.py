"""Attribution methods compared on one image (engine.attribution.compare), its job and its figure,
on the tiny fixture CNN: real Keras weights, real maps, real curves."""

from __future__ import annotations

import numpy as np
import pytest

from engine.attribution import metrics
from engine.attribution.compare import (
    ALL_METHODS,
    check_methods,
    compare,
    describe_step,
    iter_compare,
)
from engine.attribution.contract import CompareMethodsOutput, CompareMethodsParams
from engine.errors import EngineError
from engine.jobs import CancelToken, Failed, Finished, Progress, Request, run
from engine.plot.compare import compare_figure, rows_image, score_lines

FAST = ("gradcam", "eigencam", "gradient")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A bright square on a dim noisy background, 20x24 (not the model's 16x16)."""
    rng = np.random.default_rng(1)
    img = (0.2 + 0.1 * rng.random((20, 24, 3))).astype(np.float32)
    img[4:12, 12:20] = [0.9, 0.8, 0.2]
    return img


@pytest.fixture(scope="module")
def with_sanity(tiny, photo):
    return compare(tiny, photo, ("gradcam", "gradient"), steps=4, sanity=True, box=(4, 12, 12, 20))


def test_a_row_per_method_with_finite_scores(tiny, photo) -> None:
    seen: list[tuple[int, int]] = []
    res = compare(
        tiny, photo, ",".join(FAST), steps=4, sanity=False, progress=lambda d, t: seen.append((d, t))
    )
    assert res.methods == FAST and [r.kind for r in res.rows] == ["cam", "cam", "saliency"]
    assert res.maps.shape == (3, 20, 24) and res.layer == "conv2" and res.steps == 4
    for row in res.rows:
        assert row.map.shape == (20, 24) and np.isfinite(row.map).all() and not row.map.flags.writeable
        assert 0.0 <= row.deletion.auc <= 1.0 and 0.0 <= row.insertion.auc <= 1.0
        assert len(row.deletion.scores) == 5 and row.deletion.baseline == "blur"
        assert row.pointing is None and row.energy is None  # no box
        assert row.sanity_passed is None and row.sanity_verdict is None and row.sanity_rho is None
    # every method explains the model's top-1 on the unmodified image
    import engine

    probs = np.asarray(engine.predict(tiny, photo)).reshape(-1)
    assert res.target == int(np.argmax(probs)) and res.probability == pytest.approx(float(probs.max()), 1e-4)
    # progress: per stage (map, deletion, insertion) of each method, ending at total
    assert seen[0] == (0, 9) and seen[-1] == (9, 9)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the Grad-CAM row is the map engine.cam gives, scored as metrics scores it
    cam = engine.cam(tiny, photo, res.target, "conv2", "gradcam")
    np.testing.assert_allclose(res.row("gradcam").map, cam.heatmap, rtol=1e-5, atol=1e-7)
    direct = metrics.deletion_auc(tiny, photo, cam.heatmap, res.target, steps=4)
    assert res.row("gradcam").deletion.auc == pytest.approx(direct.auc, abs=1e-6)
    assert res.settings()["scores"][2]["method"] == "gradient"


def test_sanity_verdicts_and_box_scores(tiny, with_sanity, photo) -> None:
    res = with_sanity
    assert res.sanity and res.box == (4, 12, 12, 20)
    for row in res.rows:
        assert isinstance(row.sanity_passed, bool) and row.sanity_verdict
        assert -1.0 <= row.sanity_rho <= 1.0
        assert row.sanity_passed == (row.sanity_rho < 0.5)
        assert isinstance(row.pointing, bool) and 0.0 <= row.energy <= 1.0
        assert row.pointing == metrics.pointing_game(row.map, (4, 12, 12, 20))
        assert row.energy == pytest.approx(metrics.energy_pointing_game(row.map, (4, 12, 12, 20)))
    # the same check run on its own gives the same verdict
    from engine.attribution.sanity import randomization

    alone = randomization(tiny, photo, "gradient", res.target, "cascade")
    assert alone.passed == res.row("gradient").sanity_passed
    assert alone.spearman[-1] == pytest.approx(res.row("gradient").sanity_rho, abs=1e-6)


def test_a_mask_and_a_box_outside_the_image(tiny, photo) -> None:
    mask = np.zeros((20, 24), bool)
    mask[4:12, 12:20] = True
    res = compare(tiny, photo, "eigencam", steps=2, sanity=False, box=mask)
    assert res.box is None and isinstance(res.rows[0].pointing, bool)
    with pytest.raises(EngineError, match="does not overlap"):
        compare(tiny, photo, "eigencam", steps=2, sanity=False, box=(30, 30, 40, 40))
    with pytest.raises(EngineError, match="4 numbers"):
        compare(tiny, photo, "eigencam", steps=2, sanity=False, box=(1, 2, 3))
    with pytest.raises(EngineError, match="does not match"):
        compare(tiny, photo, "eigencam", steps=2, sanity=False, box=np.ones((5, 5), bool))


def test_methods_are_checked_by_name_and_alias() -> None:
    assert check_methods("Grad-CAM, ig,gradcam") == (("gradcam", "cam"), ("integrated", "saliency"))
    assert [m for m, _ in check_methods(ALL_METHODS)] == list(ALL_METHODS)
    with pytest.raises(EngineError, match="unknown attribution method 'sobel'; choose from: gradcam"):
        check_methods("gradcam,sobel")
    with pytest.raises(EngineError, match="no attribution method"):
        check_methods(" , ")
    assert describe_step("gradcam,gradient", True, 0) == "Grad-CAM (1/2): map"
    assert describe_step("gradcam,gradient", True, 7) == "Gradient (2/2): sanity check"
    assert describe_step("gradcam,gradient", False, 6) == "done"


def test_bad_arguments_fail_before_any_work(tiny, photo) -> None:
    for kwargs, message in (
        ({"steps": 0}, "steps must be at least 1"),
        ({"baseline": "grey"}, "unknown baseline"),
        ({"mapping": "nearest"}, "mapping"),
        ({"layer": "fc"}, "no spatial extent"),
        ({"target": "zebra"}, "zebra"),
    ):
        gen = iter_compare(tiny, photo, "gradcam", **kwargs)
        with pytest.raises(EngineError, match=message):
            next(gen)


def test_the_job_reports_each_stage_and_answers_typed(tiny_cnn_path, photo) -> None:
    params = CompareMethodsParams(
        model=str(tiny_cnn_path), image=photo, methods=("eigencam", "gradient"), steps=2, sanity=False
    )
    events = list(run(params.request("compare")))
    done = events[-1]
    assert isinstance(done, Finished) and done.reason == "done"
    out = done.result
    assert isinstance(out, CompareMethodsOutput) and out.kind == "compare_methods"
    assert out.maps.shape == (2, 20, 24) and out.photo.shape == (20, 24, 3) and out.model_name == "tiny"
    assert out.settings()["methods"] == ["eigencam", "gradient"]
    messages = [e.message for e in events if isinstance(e, Progress)]
    assert "Eigen-CAM (1/2): map" in messages and "Gradient (2/2): insertion" in messages
    bad = list(run(CompareMethodsParams(model=str(tiny_cnn_path), image=photo, methods="sobel").request()))
    assert isinstance(bad[-1], Failed) and "unknown attribution method 'sobel'" in bad[-1].message
    typo = list(run(Request("compare_methods", {"model": str(tiny_cnn_path), "image": photo, "metods": "x"})))
    assert isinstance(typo[-1], Failed) and typo[-1].kind == "invalid_request"


def test_the_job_is_cancelled_between_passes(tiny_cnn_path, photo) -> None:
    token = CancelToken()
    params = CompareMethodsParams(model=str(tiny_cnn_path), image=photo, methods=FAST, steps=4, sanity=True)
    stages = []
    for event in run(params.request(), token):
        if isinstance(event, Progress):
            stages.append(event.message)
            if event.step >= 1:  # the first map is done: cancel during the deletion curve
                token.cancel()
        last = event
    assert isinstance(last, Finished) and last.reason == "cancelled" and last.result is None
    assert stages and not any("Gradient" in m for m in stages)  # it stopped long before the last method


def test_the_figure_names_methods_scores_and_verdicts(with_sanity, photo) -> None:
    fig = compare_figure(photo, with_sanity, "tiny", "square.png")
    assert fig.kind == "compare" and len(fig.panels) == 3 and fig.cols is None
    assert compare_figure(photo, with_sanity, "tiny", cols=3).cols == 3
    assert fig.panels[0].label == "photo" and "box" in fig.panels[0].note
    assert fig.panels[0].image.shape == (20, 24, 3) and fig.panels[0].image.dtype == np.uint8
    assert [p.label for p in fig.panels[1:]] == ["Grad-CAM", "Gradient"]
    for panel, row in zip(fig.panels[1:], with_sanity.rows):
        assert panel.image.shape == (20, 24, 3)
        lines = panel.note.split("\n")
        assert lines[0].startswith("del ") and " · ins " in lines[0]
        assert lines[1].startswith("pointing " + ("hit" if row.pointing else "miss"))
        assert lines[2].startswith("sanity: " + ("passes ρ" if row.sanity_passed else "fails ρ"))
    assert "tiny" in fig.title and "square.png" in fig.title and "conv2" in fig.title
    assert "Adebayo" in fig.caption and "deletion" in fig.caption
    raw = rows_image(photo, with_sanity)
    assert raw.dtype == np.uint8 and raw.shape[1] > 2 * 24 and raw.shape[0] > 2 * 20


def test_score_lines_without_box_or_sanity(tiny, photo) -> None:
    res = compare(tiny, photo, "eigencam", steps=2, sanity=False)
    assert len(score_lines(res.rows[0])) == 1
    fig = compare_figure(photo, res, "tiny")
    assert "pointing" not in fig.caption and "sanity" not in fig.caption and fig.panels[0].note == ""
