"""engine.attribution.evaluate on the tiny fixture model and small folders with VOC boxes."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.attribution.evaluate import evaluate, iter_evaluate
from engine.attribution.evaluate_jobs import EvaluateParams
from engine.dataset.boxes import Box, write_shapes_folder, write_voc
from engine.errors import EngineError
from engine.jobs import CancelToken, Finished, Progress, Request, run, run_sync


def _folder(root: Path, n: int = 3, size: tuple[int, int] = (20, 18), whole: bool = True) -> Path:
    """n random images of size (w, h), each with a VOC file: a box of the whole image (class i % 3)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")
        box = Box(str(i % 3), 0, 0, w, h) if whole else Box(str(i % 3), 0, 0, 2, 2)
        write_voc(root / f"img{i}.xml", f"img{i}.png", (w, h), [box])
    return root


def test_rows_per_method_and_mapping_with_values_in_range(tiny, tmp_path: Path) -> None:
    folder = write_shapes_folder(tmp_path / "shapes", 3)[0].parent
    result = evaluate(tiny, folder, "gradcam,gradcampp,scorecam", ("gaussian", "roi"), steps=4)
    assert [(r.method, r.mapping) for r in result.rows] == [
        (m, p) for m in ("gradcam", "gradcam++", "scorecam") for p in ("gaussian", "roi")
    ]
    for r in result.rows:
        assert r.images == 3
        for share in (r.pointing, r.energy, r.deletion, r.insertion):
            assert 0.0 <= share <= 1.0
        assert r.sanity is None and r.sanity_images == 0
    assert len(result.scores) == 3 * 3 * 2
    assert result.evaluated == 3 and result.skipped == 0
    # the shapes' class names are not the tiny model's: scored for its top-1, said once
    assert any("no label the model knows" in p for p in result.problems)
    assert result.settings["methods"] == ["gradcam", "gradcam++", "scorecam"]


def test_whole_image_box_gives_pointing_100(tiny, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "whole", 3)
    result = evaluate(tiny, folder, ["gradcam", "layercam"], ["gaussian", "center"], steps=2)
    for r in result.rows:
        assert r.pointing == 1.0
        assert r.energy == pytest.approx(1.0)
    assert [s.target for s in result.scores[::4]] == [0, 1, 2]  # target "label": the box's class
    assert not result.problems


def test_small_corner_box_misses_with_no_tolerance(tiny, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "corner", 2, whole=False)
    result = evaluate(tiny, folder, "gradcam", "gaussian", steps=2, tolerance=0.0, target="top1")
    r = result.rows[0]
    assert 0.0 <= r.pointing <= 1.0 and r.energy < 0.5  # 4 of 360 pixels


def test_bad_files_are_reported_and_the_rest_is_evaluated(tiny, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "mixed", 3)
    (folder / "img1.xml").write_text("<annotation><object>")  # malformed: img1 has no boxes
    write_voc(folder / "ghost.xml", "ghost.png", (20, 18), [Box("0", 0, 0, 5, 5)])
    write_voc(folder / "img2.xml", "img2.png", (20, 18), [Box("2", 10, 10, 40, 40)])
    result = evaluate(tiny, folder, "gradcam", "gaussian", steps=2, limit=5)
    assert result.evaluated == 2 and result.skipped == 1
    text = "\n".join(result.problems)
    assert "img1.xml: malformed XML" in text
    assert "ghost.xml: no image ghost.* beside it" in text
    assert "img2.xml: box 1 2 (10, 10)-(40, 40) reaches outside the 20x18 image; clipped" in text
    assert "1 image(s) have no boxes and were not scored (e.g. img1.png)" in text


def test_bad_input_is_one_clear_error(tiny, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "ok", 1)
    with pytest.raises(EngineError, match="unknown CAM method|unknown method"):
        evaluate(tiny, folder, "nosuchcam")
    with pytest.raises(EngineError, match="unknown target"):
        evaluate(tiny, folder, target="best")
    empty = tmp_path / "noboxes"
    empty.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(empty / "a.png")
    with pytest.raises(EngineError, match="no boxes for any image"):
        evaluate(tiny, empty)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(EngineError, match="no images"):
        evaluate(tiny, tmp_path / "nothing")


def test_sanity_column_when_the_check_exists(tiny, tmp_path: Path) -> None:
    from engine.attribution.evaluate import sanity_available

    folder = _folder(tmp_path / "sanity", 3)
    result = evaluate(tiny, folder, "gradcam", ("gaussian", "roi"), steps=2, sanity_every=2)
    for r in result.rows:
        if sanity_available():
            assert r.sanity_images == 2 and 0.0 <= r.sanity <= 1.0  # images 0 and 2
        else:
            assert r.sanity is None
    if not sanity_available():
        assert any("sanity check" in p for p in result.problems)


def test_params_match_iter_evaluate() -> None:
    sig = inspect.signature(iter_evaluate).parameters
    fields = EvaluateParams().run_kwargs()
    assert set(fields) == set(sig) - {"h", "source"}
    for name, value in fields.items():
        default = sig[name].default
        assert value == (tuple(default) if isinstance(default, tuple | list) else default), name


def test_job_progress_per_image_and_cancel(tiny_cnn_path, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "job", 3)
    params = EvaluateParams(model=str(tiny_cnn_path), source=str(folder), steps=2)
    events = list(run(params.request("test")))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(e.step, e.total) for e in progress] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert isinstance(events[-1], Finished) and events[-1].result.evaluated == 3
    assert not math.isnan(run_sync(Request("evaluate", params.as_dict())).rows[0].energy)
    token = CancelToken()
    seen = []
    for event in run(params.request("test"), token):
        seen.append(event)
        if isinstance(event, Progress) and event.step == 1:
            token.cancel()
    assert isinstance(seen[-1], Finished) and seen[-1].reason == "cancelled"
    assert max(e.step for e in seen if isinstance(e, Progress)) == 1  # stopped between images
