"""The Attribution tab on the real engine thread: maps over the photo, targets, compare, hover, scores, export.

The view is built standalone on its own AppState and EngineClient with the tiny 28x28 grey
fixture model (conv1, pool1, block/inner_conv, dense1, probs) loaded through "load_model".
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer
from PySide6.QtTest import QTest

from engine.jobs import Finished, Request


def _process_until(predicate, timeout_ms: int = 60_000) -> None:
    timer = QElapsedTimer()
    timer.start()
    while not predicate():
        QTest.qWait(20)
        if timer.elapsed() > timeout_ms:
            raise TimeoutError("timed out waiting for the engine")


@pytest.fixture(scope="module")
def setup(qapp, assets):
    from engine.images import load_image
    from gui.engine_thread import EngineClient
    from gui.state import AppState

    client = EngineClient()
    client.start()
    _process_until(lambda: client.is_ready)
    done: list[Finished] = []
    client.finished.connect(lambda e: done.append(e) if isinstance(e, Finished) else None)
    request = Request("load_model", {"spec": str(assets["model"])}, owner="test")
    client.submit(request)
    _process_until(lambda: any(e.job_id == request.job_id for e in done))
    client.finished.disconnect()
    state = AppState()
    state.set_model(next(e for e in done if e.job_id == request.job_id).result)
    state.set_layer("conv1")
    path = str(assets["images"][0])
    state.set_image(path, load_image(path))
    yield state, client
    client.shutdown()


@pytest.fixture
def view(setup, qtbot):
    from gui.views.attribution import AttributionView

    state, client = setup
    done: list[Finished] = []
    client.finished.connect(lambda e: done.append(e))
    request = Request(
        "load_model", {"spec": state.model["spec"]}, owner="test"
    )  # others may have loaded another
    client.submit(request)
    qtbot.waitUntil(lambda: any(e.job_id == request.job_id for e in done), timeout=60_000)
    client.finished.disconnect()
    state.set_layer("conv1")
    v = AttributionView(state, client)
    qtbot.addWidget(v)
    v.resize(1000, 600)
    v.show()
    v.set_active(True)
    qtbot.waitUntil(lambda: v.overlay_image() is not None, timeout=60_000)
    yield v
    qtbot.waitUntil(lambda: not client.busy(), timeout=30_000)


def _wait_new(qtbot, v, before) -> None:
    qtbot.waitUntil(lambda: v.rendered is not None and v.rendered is not before, timeout=60_000)


def test_gradcam_overlay_on_the_photo_and_targets(view, qtbot) -> None:
    res = view.result["result"]
    assert res.method == "gradcam" and res.layer == "conv1" and res.mapping == "gaussian"
    assert view.overlay_image().shape == (28, 28, 3) and view.overlay_image().dtype == np.uint8
    assert view.photo_pane.image_shape == (28, 28)
    # top-1, the 5 predictions, then the other classes of this 10-class model
    assert view.target_box.count() == 1 + 10 and view.target_box.itemData(0) is None
    assert view.target_box.itemData(1) == int(np.argmax(res.probabilities))
    assert "conv1" in view.info.text() and "field 3×3" in view.info.text()


def test_non_spatial_layer_falls_back_and_nested_layer_works(view, qtbot) -> None:
    before = view.rendered
    view.state.set_layer("dense1")
    _wait_new(qtbot, view, before)
    assert view.result["result"].layer == "block/inner_conv"
    before = view.rendered
    view.state.set_layer("pool1")
    _wait_new(qtbot, view, before)
    assert view.result["result"].layer == "pool1" and view.result["result"].cam.shape == (13, 13)


def test_hovering_a_cell_outlines_its_field(view, qtbot) -> None:
    cell = view.rendered[2]
    box = view.cell_box(5 * cell + 1, 7 * cell + 1)
    assert box == ((5, 7), (5.0, 7.0, 8.0, 10.0))  # conv1: 3x3 valid field at (5, 7)
    view._on_coarse_hovered(5 * cell + 1, 7 * cell + 1)
    assert view.photo_pane.box.isVisible() and "cell (5, 7)" in view.cell_label.text()
    view._on_coarse_hovered(-1, -1)
    assert not view.photo_pane.box.isVisible()


def test_compare_two_targets_side_by_side(view, qtbot) -> None:
    before = view.rendered
    view.set_target(2, compare=7)
    _wait_new(qtbot, view, before)
    qtbot.waitUntil(lambda: view.result.get("compare") is not None, timeout=30_000)
    from engine.attribution.figures import GAP

    qtbot.waitUntil(lambda: view.overlay_image().shape[1] == 28 * 2 + 3 * GAP, timeout=30_000)
    assert view.result["result"].target == 2 and view.result["compare"].target == 7
    image, meta = view.export_image()
    assert [t["index"] for t in meta["targets"]] == [2, 7]
    np.testing.assert_array_equal(image, view.overlay_image())
    cell = view.rendered[2]
    second = GAP + 26 * cell + GAP  # the second coarse panel's left edge
    (i, j), rect = view.cell_box(GAP + 1, second + 2 * cell + 1)
    assert (i, j) == (0, 2) and rect == (GAP + 0.0, GAP + 2.0, GAP + 3.0, GAP + 5.0)
    assert view.cell_box(0, 0) is None  # the margin


def test_scorecam_mapping_look_and_saliency(view, qtbot) -> None:
    before = view.rendered
    view.set_method("scorecam")
    view.set_mapping("gaussian")
    _wait_new(qtbot, view, before)
    qtbot.waitUntil(
        lambda: view.result["result"].method == "scorecam" and view.result["result"].mapping == "gaussian",
        timeout=60_000,
    )
    ran = view.result["result"].settings["precision"]
    assert ran in ("float32", "bfloat16") and f"scorecam ({ran})" in view.info.text()
    assert view.export_image()[1]["precision"] == ran  # the sidecar says which precision ran
    before = view.rendered
    view.style_box.setCurrentIndex(view.style_box.findData("signed"))
    _wait_new(qtbot, view, before)
    assert view.rendered_look["style"] == "signed" and not view.cmap_box.isEnabled()
    before = view.rendered
    view.set_method("integrated")
    _wait_new(qtbot, view, before)
    qtbot.waitUntil(lambda: view.kind == "saliency" and "map" in view.result, timeout=60_000)
    assert not view.mapping_box.isEnabled() and view.coarse_pane.image_shape is None
    assert view.export_image()[1]["kind"] == "saliency"


def test_scores_plot_deletion_and_insertion(view, qtbot) -> None:
    view.score()
    qtbot.waitUntil(lambda: view.scores is not None, timeout=60_000)
    x, y = view.deletion_curve.getData()
    assert len(x) == 25 and x[0] == 0 and x[-1] == 1 and ((0 <= y) & (y <= 1)).all()
    assert "deletion AUC" in view.score_label.text()
    _, meta = view.export_image()
    assert 0 <= meta["scores"]["insertion_auc"] <= 1


def test_no_image_message(setup, qtbot) -> None:
    from gui.state import AppState
    from gui.views.attribution import AttributionView

    state, client = setup
    empty = AppState()
    empty.set_model(state.model)
    v = AttributionView(empty, client)
    qtbot.addWidget(v)
    v.set_active(True)
    assert v.photo_pane.text.toPlainText().startswith("no image")
    with pytest.raises(Exception, match="nothing|no attribution"):
        v.export_image()


def test_a_new_model_resets_the_targets(view, qtbot) -> None:
    before = view.rendered
    view.set_target(7)
    _wait_new(qtbot, view, before)
    assert view.result["result"].target == 7
    original = view.state.model
    try:
        before = view.rendered
        view.state.set_model({**original, "spec": original["spec"] + "#copy"})  # as if another model loaded
        _wait_new(qtbot, view, before)
        assert view.target_box.currentData() is None and view.compare_box.currentData() is None
        assert view.result["result"].target == int(np.argmax(view.result["result"].probabilities))
    finally:
        view.state.model = original
