"""The Attribution tab on the real engine thread: maps over the photo, targets, compare, hover, scores, export.

Most tests build the view standalone on its own AppState and EngineClient with the tiny 28x28
grey fixture model (conv1, pool1, block/inner_conv, dense1, probs) loaded through "load_model";
the first-map tests use the shared window on builtin:shapes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
from PySide6.QtTest import QTest

from engine.attribution.contract import CamOutput, SaliencyOutput, SaliencyParams
from engine.contract import LoadModelParams, ModelSummary
from engine.jobs import Finished


def _process_until(predicate, timeout_ms: int = 60_000) -> None:
    """Pump the event loop (a QEventLoop with a single-shot timer: QTest.qWait starves the engine thread)."""
    timer = QElapsedTimer()
    timer.start()
    while not predicate():
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()
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
    request = LoadModelParams(str(assets["model"])).request("test")
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
    request = LoadModelParams(state.model.spec).request("test")  # others may have loaded another
    client.submit(request)
    qtbot.waitUntil(lambda: any(e.job_id == request.job_id for e in done), timeout=60_000)
    client.finished.disconnect()
    state.set_layer("conv1", by_user=True)  # as a click in the layer tree
    v = AttributionView(state, client)
    qtbot.addWidget(v)
    v.resize(1000, 600)
    v.show()
    v.set_active(True)
    qtbot.waitUntil(lambda: v.overlay_image() is not None, timeout=60_000)
    yield v
    qtbot.waitUntil(lambda: not client.busy(), timeout=30_000)


def _summary(spec: str, layers) -> ModelSummary:
    """A ModelSummary of a model with these layers and no classes (the layer tree needs no more)."""
    return ModelSummary(
        name=spec,
        spec=spec,
        input_shape=(8, 8, 3),
        scaling="unit",
        class_names=None,
        num_classes=0,
        output_activation=None,
        layers=tuple(layers),
        params=0,
    )


def _wait_new(qtbot, v, before) -> None:
    qtbot.waitUntil(lambda: v.rendered is not None and v.rendered is not before, timeout=60_000)


def test_gradcam_overlay_on_the_photo_and_targets(view, qtbot) -> None:
    assert isinstance(view.result, CamOutput) and view.kind == "cam"
    res = view.result.result
    assert res.method == "gradcam" and res.layer == "conv1" and res.mapping == "gaussian"
    assert [p.index for p in view.result.predictions] == list(np.argsort(-res.probabilities)[:5])
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
    assert view.result.result.layer == "block/inner_conv"
    before = view.rendered
    view.state.set_layer("pool1")
    _wait_new(qtbot, view, before)
    assert view.result.result.layer == "pool1" and view.result.result.cam.shape == (13, 13)


def test_hovering_a_cell_outlines_its_field(view, qtbot) -> None:
    cell = view.rendered[2]
    box = view.cell_box(5 * cell + 1, 7 * cell + 1)
    assert box == ((5, 7), (5.0, 7.0, 8.0, 10.0))  # conv1: 3x3 valid field at (5, 7)
    view._on_coarse_hovered(5 * cell + 1, 7 * cell + 1)
    assert view.photo_pane.box.isVisible() and "cell (5, 7)" in view.cell_label.text()
    assert "global context" not in view.cell_label.text()
    view._on_coarse_hovered(-1, -1)
    assert not view.photo_pane.box.isVisible()


def test_hover_note_names_global_context(view, qtbot) -> None:
    res = view.result.result
    if not hasattr(res.field, "global_context"):
        pytest.skip("ReceptiveField has no global_context flag in this engine")
    # a field fed by a global branch (as after a squeeze-and-excitation block): same box, plus the flag
    view.result = dataclasses.replace(
        view.result,
        result=dataclasses.replace(res, field=dataclasses.replace(res.field, global_context=True)),
    )
    cell = view.rendered[2]
    view._on_coarse_hovered(5 * cell + 1, 7 * cell + 1)
    text = view.cell_label.text()
    assert "receptive field 3×3 px of the photo plus global context" in text


def test_opens_on_the_default_layer_until_the_user_picks_one(view, qtbot) -> None:
    state = view.state
    state.set_model(state.model)  # opened again: only the window's own selection, no pick yet
    state.set_layer("conv1")
    qtbot.waitUntil(lambda: view.result.result.layer == "block/inner_conv", timeout=60_000)
    assert not state.layer_by_user and view.layer_for_cam() is None
    assert [view.layer_box.itemText(i) for i in range(view.layer_box.count())] == [
        "block/inner_conv (auto: last spatial layer)",
        "conv1",
        "pool1",
        "block/inner_conv",
    ]
    assert view.layer_box.currentIndex() == 0 and "block/inner_conv [auto]" in view.info.text()
    # a pick in the tree: the tab follows it, and the field names it
    state.set_layer("pool1", by_user=True)
    qtbot.waitUntil(lambda: view.result.result.layer == "pool1", timeout=60_000)
    assert view.layer_box.currentText() == "pool1" and "[auto]" not in view.info.text()
    # the tab's own field wins until the next pick in the tree
    view.set_layer("conv1")
    qtbot.waitUntil(lambda: view.result.result.layer == "conv1", timeout=60_000)
    assert view.layer_box.currentText() == "conv1"
    view.layer_box.activated.emit(0)  # the user chooses "auto" in the field
    qtbot.waitUntil(lambda: view.result.result.layer == "block/inner_conv", timeout=60_000)
    assert view.layer_box.currentIndex() == 0
    # a tree pick without spatial extent: the default layer, and the note says why
    state.set_layer("dense1", by_user=True)
    qtbot.waitUntil(lambda: "dense1 has no spatial extent" in view.info.text(), timeout=60_000)
    assert view.result.result.layer == "block/inner_conv" and view.layer_box.currentIndex() == 0
    state.set_layer("pool1", by_user=True)
    qtbot.waitUntil(lambda: view.result.result.layer == "pool1", timeout=60_000)
    with pytest.raises(Exception, match="no spatial extent"):
        view.set_layer("dense1")


def test_compare_two_targets_side_by_side(view, qtbot) -> None:
    before = view.rendered
    view.set_target(2, compare=7)
    _wait_new(qtbot, view, before)
    qtbot.waitUntil(lambda: view.result.compare is not None, timeout=30_000)
    from engine.attribution.figures import GAP

    qtbot.waitUntil(lambda: view.overlay_image().shape[1] == 28 * 2 + 3 * GAP, timeout=30_000)
    assert view.result.result.target == 2 and view.result.compare.target == 7
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
        lambda: view.result.result.method == "scorecam" and view.result.result.mapping == "gaussian",
        timeout=60_000,
    )
    ran = view.result.result.settings["precision"]
    assert ran in ("float32", "bfloat16") and f"scorecam ({ran})" in view.info.text()
    assert view.export_image()[1]["precision"] == ran  # the sidecar says which precision ran
    before = view.rendered
    view.style_box.setCurrentIndex(view.style_box.findData("signed"))
    _wait_new(qtbot, view, before)
    assert view.rendered_look["style"] == "signed" and not view.cmap_box.isEnabled()
    before = view.rendered
    view.set_method("integrated")
    _wait_new(qtbot, view, before)
    qtbot.waitUntil(
        lambda: view.kind == "saliency" and isinstance(view.result, SaliencyOutput), timeout=60_000
    )
    assert not view.mapping_box.isEnabled() and view.coarse_pane.image_shape is None
    # the tab asks with the engine's own defaults (declared once, in SaliencyParams)
    asked = view.job_params()
    assert isinstance(asked, SaliencyParams) and asked.options() == SaliencyParams().options()
    assert view.result.method == "integrated" and view.result.signed
    assert view.export_image()[1]["kind"] == "saliency"


def test_scores_plot_deletion_and_insertion(view, qtbot) -> None:
    assert view.baseline == "blur"  # the default
    view.score()
    qtbot.waitUntil(lambda: view.scores is not None, timeout=60_000)
    x, y = view.deletion_curve.getData()
    assert len(x) == 25 and x[0] == 0 and x[-1] == 1 and ((0 <= y) & (y <= 1)).all()
    d = view.scores.deletion
    assert f"deletion AUC {d.auc:.3f} (blur" in view.score_label.text()
    _, meta = view.export_image()
    assert 0 <= meta["scores"]["insertion_auc"] <= 1 and meta["scores"]["baseline"] == "blur"
    # another baseline rescores the map at once and is named beside the AUC
    view.set_baseline("black")
    qtbot.waitUntil(
        lambda: view.scores is not None and view.scores.deletion.baseline == "black", timeout=60_000
    )
    d = view.scores.deletion
    assert f"deletion AUC {d.auc:.3f} (black" in view.score_label.text()
    assert "insertion AUC" in view.score_label.text() and "(black" in view.score_label.text().split("·")[1]
    assert view.export_image()[1]["scores"]["baseline"] == "black"


def test_baseline_is_saved_in_the_settings(view, tmp_path) -> None:
    from PySide6.QtCore import QSettings

    from gui.views.attribution import AttributionView

    s = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    view.set_baseline("noise")
    view.save_settings(s)
    other = AttributionView(view.state, view.client)
    try:
        assert other.baseline == "blur"
        other.restore_settings(s)
        assert other.baseline == "noise"
    finally:
        other.deleteLater()


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
    assert view.result.result.target == 7
    original = view.state.model
    try:
        before = view.rendered
        view.state.set_model(
            dataclasses.replace(original, spec=original.spec + "#copy")
        )  # as if another model loaded
        _wait_new(qtbot, view, before)
        assert view.target_box.currentData() is None and view.compare_box.currentData() is None
        assert view.result.result.target == int(np.argmax(view.result.result.probabilities))
    finally:
        view.state.model = original


# ----------------------------------------------------------------------------- the window on builtin:shapes
@pytest.fixture
def shapes_win(qtbot, shared_window, idle):
    """The shared window freshly opened on builtin:shapes with the star sample, Attribution tab current."""
    w = shared_window
    idle(w)
    w.state.model = None
    w.open_model("builtin:shapes")  # opened again: only the window's own layer selection
    qtbot.waitUntil(lambda: w.state.model_spec == "builtin:shapes", timeout=60_000)
    if w.state.image_spec != "builtin:shape_star":
        w.select_image("builtin:shape_star")
        qtbot.waitUntil(lambda: w.state.image_spec == "builtin:shape_star", timeout=10_000)
    w.message_bar.dismiss()
    w.ask = lambda question: False
    idle(w)
    view = w.view("attribution")
    w.tabs.setCurrentIndex(w.views.index(view))
    yield w, view
    idle(w)
    w.tabs.setCurrentIndex(0)


def test_first_map_on_builtin_shapes_is_on_the_engine_default_layer(qtbot, shapes_win) -> None:
    import engine

    w, view = shapes_win
    default = engine.load_model("builtin:shapes").default_cam_layer()  # pool2 on the shipped model
    assert not w.state.layer_by_user and w.state.layer == w.state.default_layer()  # the tree: conv1
    qtbot.waitUntil(lambda: view.result is not None and view.rendered is not None, timeout=60_000)
    res = view.result.result
    assert res.layer == default == w.state.cam_layer()
    assert view.layer_box.currentText() == f"{default} (auto: last spatial layer)"
    assert f"{default} [auto]" in view.info.text()
    assert float(np.ptp(res.heatmap)) > 0  # a real map, not a flat one

    # a user's click on a row of the layer tree: the tab follows it
    tree = w.layer_tree
    pick = next(p for p in w.state.spatial_layers() if p not in (default, w.state.layer))
    tree.filter.clear()
    index = tree.proxy.mapFromSource(tree._items[pick].index())
    tree.tree.scrollTo(index)
    QTest.mouseClick(
        tree.tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.tree.visualRect(index).center()
    )
    qtbot.waitUntil(lambda: w.state.layer == pick and w.state.layer_by_user, timeout=10_000)
    qtbot.waitUntil(lambda: view.result.result.layer == pick, timeout=60_000)
    assert view.layer_box.currentText() == pick and "[auto]" not in view.info.text()


def test_scores_on_builtin_shapes_name_the_baseline(qtbot, shapes_win) -> None:
    w, view = shapes_win
    qtbot.waitUntil(lambda: view.result is not None and view.rendered is not None, timeout=60_000)
    view.set_baseline("blur")
    view.score()
    qtbot.waitUntil(lambda: view.scores is not None, timeout=60_000)
    d, i = view.scores.deletion, view.scores.insertion
    text = view.score_label.text()
    assert f"deletion AUC {d.auc:.3f} (blur" in text and f"insertion AUC {i.auc:.3f} (blur" in text
    assert d.baseline == i.baseline == "blur" and d.scores[0] > 0.5


def test_layer_tree_tells_a_users_pick_from_the_windows_selection(qtbot) -> None:
    from engine.models import LayerInfo
    from gui.layer_tree import LayerTree
    from gui.state import AppState

    infos = [
        LayerInfo("conv1", "conv1", "Conv2D", (8, 8, 4), 40, "conv"),
        LayerInfo("pool", "pool", "MaxPooling2D", (4, 4, 4), 0, "pool"),
        LayerInfo("flat", "flat", "Flatten", (64,), 0, "reshape"),
    ]
    state = AppState()
    tree = LayerTree()
    qtbot.addWidget(tree)
    tree.layer_selected.connect(state.set_layer)
    changes: list[tuple[str, bool]] = []
    state.layer_changed.connect(lambda: changes.append((state.layer, state.layer_by_user)))
    state.set_model(_summary("test", infos))
    tree.set_layers(infos)
    assert state.spatial_layers() == ["conv1", "pool"] and state.cam_layer() == "pool"
    tree.select("conv1")  # the window's own selection
    assert changes == [("conv1", False)] and not state.layer_by_user
    tree.pick("conv1")  # the user clicks the row that is already current: announced once
    assert changes[-1] == ("conv1", True) and len(changes) == 2
    tree.pick("conv1")
    assert len(changes) == 2
    tree.show()
    index = tree.proxy.mapFromSource(tree._items["flat"].index())
    QTest.mouseClick(
        tree.tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.tree.visualRect(index).center()
    )
    assert changes[-1] == ("flat", True)
    state.set_model(_summary("test2", infos))  # a new model: no pick yet
    assert not state.layer_by_user and state.layer is None
