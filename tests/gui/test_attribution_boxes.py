"""The user's own boxes in the Attribution tab (gui/views/attribution_boxes.py), on FakeEngineClient.

Boxes are drawn with QTest mouse events on the photo pane's viewport, at the positions the
pane maps known photo pixels to; their pointing game and energy share must be the engine's
(engine.attribution.metrics) on the view's heatmap, Clear removes them, the metrics job and the
export sidecar get them. No TensorFlow: the maps are the fake's recorded CamOutputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_engine import (
    fake_attribution_window,
    recorded_answers,
    wait_until,
)
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from engine.attribution import contract, metrics
from engine.attribution.metrics import CurveScore
from gui.views import attribution_boxes

pytestmark = pytest.mark.usefixtures("tensorflow_free")


@pytest.fixture
def view(qapp, fake, tmp_path):
    """The Attribution tab of the fake window, its first map drawn (fake_engine.fake_attribution_window)."""
    with fake_attribution_window(fake, tmp_path) as w:
        yield w.view("attribution")


def viewport_point(view, x: float, y: float) -> QPoint:
    """Where the photo pane's viewport shows photo pixel corner (x, y)."""
    pane = view.photo_pane
    return pane.mapFromScene(pane.view.mapViewToScene(QPointF(x, y)))


def drag(view, start: tuple[float, float], end: tuple[float, float], shift: bool = False) -> None:
    """A left press at `start`, two moves and a release at `end` (photo pixels (x, y))."""
    port = view.photo_pane.viewport()
    mod = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    a, b = viewport_point(view, *start), viewport_point(view, *end)
    QTest.mousePress(port, Qt.MouseButton.LeftButton, mod, a)
    QTest.mouseMove(port, (a + b) / 2)
    QTest.mouseMove(port, b)
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, mod, b)


def engine_scores(view, mask: np.ndarray) -> tuple[bool, float]:
    heat = view.result.heatmap
    return metrics.pointing_game(heat, mask), metrics.energy_pointing_game(heat, mask)


def shown_boxes(view) -> list:
    return [i.rect() for i in view.user_boxes._items if i.isVisible()]


def test_boxes_drawn_with_the_mouse_score_as_the_engine_does(view):
    boxes = view.user_boxes
    assert boxes.boxes == [] and view.box_label.text() == "" and not view.clear_boxes_button.isEnabled()
    view.draw_boxes_button.setChecked(True)
    drag(view, (2, 3), (12, 15))
    assert boxes.boxes == [(2, 3, 12, 15)]
    # one box: the engine's own box form (top, left, bottom, right) gives the same answer
    heat = view.result.heatmap
    expected = metrics.pointing_game(heat, (3, 2, 15, 12)), metrics.energy_pointing_game(heat, (3, 2, 15, 12))
    assert (boxes.pointing, boxes.energy) == (expected[0], pytest.approx(expected[1]))
    assert "your box" in view.box_label.text() and f"{100 * expected[1]:.1f}%" in view.box_label.text()
    assert [(r.x(), r.y(), r.width(), r.height()) for r in shown_boxes(view)] == [(2, 3, 10, 12)]
    assert view.clear_boxes_button.isEnabled()

    # a second box, drawn backwards with Shift+drag and the toggle off: the union is scored
    view.draw_boxes_button.setChecked(False)
    drag(view, (27, 26), (20, 18), shift=True)
    assert boxes.boxes == [(2, 3, 12, 15), (20, 18, 27, 26)]
    mask = np.zeros(heat.shape, bool)
    mask[3:15, 2:12] = True
    mask[18:26, 20:27] = True
    pointing, energy = engine_scores(view, mask)
    assert boxes.pointing == pointing and boxes.energy == pytest.approx(energy)
    assert "your 2 boxes" in view.box_label.text() and len(shown_boxes(view)) == 2

    # without the toggle or Shift a drag pans, as before: no box
    drag(view, (5, 5), (9, 9))
    assert len(boxes.boxes) == 2
    # a click (no extent) is no box either
    view.draw_boxes_button.setChecked(True)
    drag(view, (6, 6), (6, 6))
    assert len(boxes.boxes) == 2

    view.clear_boxes_button.click()
    assert boxes.boxes == [] and boxes.pointing is None and view.box_label.text() == ""
    assert shown_boxes(view) == [] and not view.clear_boxes_button.isEnabled()


def test_a_box_far_from_the_peak_misses_and_scores_follow_the_map(view, fake):
    boxes = view.user_boxes
    heat = view.result.heatmap
    py, px = metrics.peak(heat)
    # the corner farthest from the peak, 4 px square: more than 15 px away on a 28 px photo
    x0 = 0 if px > 14 else 24
    y0 = 0 if py > 14 else 24
    view.draw_boxes_button.setChecked(True)
    drag(view, (x0, y0), (x0 + 4, y0 + 4))
    assert boxes.boxes == [(x0, y0, x0 + 4, y0 + 4)]
    mask = attribution_boxes.union_mask(boxes.boxes, heat.shape)
    assert (boxes.pointing, boxes.energy) == (
        engine_scores(view, mask)[0],
        pytest.approx(engine_scores(view, mask)[1]),
    )
    assert boxes.pointing is False and "miss" in view.box_label.text()

    # another layer: another map; the boxes stay (same photo) and are scored on the new map
    old = view.result
    view.set_layer("conv1")
    wait_until(lambda: view.result is not old and view.result is not None and not fake.busy())
    assert view.result.layer == "conv1" and boxes.boxes == [(x0, y0, x0 + 4, y0 + 4)]
    pointing, energy = engine_scores(view, mask)
    assert boxes.pointing == pointing and boxes.energy == pytest.approx(energy)


def test_a_new_image_clears_the_boxes(view, fake):
    view.user_boxes.set_boxes([(1, 1, 9, 9)])
    assert view.user_boxes.pointing is not None
    old = view.result
    photo = np.random.default_rng(1).random((28, 28, 1)).astype(np.float32)
    view.state.set_image("another.png", photo)
    wait_until(lambda: view.result is not old and view.result is not None and not fake.busy())
    assert view.user_boxes.boxes == [] and view.box_label.text() == "" and shown_boxes(view) == []


def test_score_this_map_sends_the_boxes_and_shows_the_jobs_answer(view, fake):
    sent = []

    def answer(p):
        sent.append(p)
        curve = CurveScore(0.25, np.linspace(0, 1, 3), np.array([0.9, 0.4, 0.1]), p.baseline)
        pointing = energy = None
        if p.mask is not None:
            pointing = metrics.pointing_game(p.heatmap, p.mask)
            energy = metrics.energy_pointing_game(p.heatmap, p.mask)
        return contract.MetricsOutput(curve, curve, p.baseline, pointing, energy)

    fake.answer("metrics", answer)
    view.score()
    wait_until(lambda: view.scores is not None)
    assert (
        sent[-1].mask is None and view.scores.pointing is None and "your boxes" not in view.score_label.text()
    )

    view.user_boxes.set_boxes([(2, 3, 12, 15), (20, 18, 27, 26)])
    view.score()
    wait_until(lambda: view.scores is not None)
    p = sent[-1]
    assert isinstance(p, contract.MetricsParams) and p.box is None
    np.testing.assert_array_equal(p.mask, attribution_boxes.union_mask(view.user_boxes.boxes, (28, 28)))
    assert view.scores.pointing == view.user_boxes.pointing
    assert view.scores.energy == pytest.approx(view.user_boxes.energy)
    assert "your boxes: pointing" in view.score_label.text()


def test_the_export_sidecar_records_the_boxes(view, tmp_path):
    from gui.export_choice import ExportChoice, export_view

    _, meta = view.export_image()
    assert "boxes" not in meta
    view.user_boxes.set_boxes([(2, 3, 12, 15), (20, 18, 27, 26)])
    paths = export_view(view, tmp_path / "map.png", ExportChoice(mode="raw"))
    sidecar = json.loads(next(p for p in paths if p.name == "map.png.json").read_text())["settings"]
    assert sidecar["boxes"] == [[2, 3, 12, 15], [20, 18, 27, 26]]
    assert sidecar["box_scores"] == {
        "pointing": view.user_boxes.pointing,
        "energy": pytest.approx(view.user_boxes.energy),
    }


def test_a_large_map_is_scored_in_the_background(view, monkeypatch):
    monkeypatch.setattr(attribution_boxes, "SYNC_PIXELS", 0)
    boxes = view.user_boxes
    boxes.set_boxes([(2, 3, 12, 15)])
    assert boxes.scoring and "scoring" in view.box_label.text()
    wait_until(lambda: not boxes.scoring)
    pointing, energy = engine_scores(view, attribution_boxes.union_mask(boxes.boxes, (28, 28)))
    assert boxes.pointing == pointing and boxes.energy == pytest.approx(energy)


def test_drag_box_and_panels():
    assert attribution_boxes.drag_box((12.4, 15.2), (1.6, 2.9), (28, 28)) == (2, 3, 12, 15)
    assert attribution_boxes.drag_box((-5, -5), (40, 50), (28, 30)) == (0, 0, 30, 28)
    assert attribution_boxes.drag_box((3, 3), (3.2, 9), (28, 28)) is None
    mask = attribution_boxes.union_mask([(0, 0, 2, 2), (1, 1, 3, 3)], (4, 4))
    assert mask.sum() == 7


def test_boxes_on_the_compared_panel_are_in_photo_pixels(view, fake):
    """With a second target shown beside the first, a box drawn on either copy of the photo is in
    the photo's own pixels and is outlined on both."""
    import dataclasses

    cam = recorded_answers()["cam"]
    fake.answer("cam", lambda p: dataclasses.replace(out := cam(p), compare=out.result))
    old = view.result
    view.set_target(None, compare=1)
    wait_until(lambda: view.result is not old and view.overlay_image() is not None and not fake.busy())
    wait_until(lambda: view.overlay_image().shape[1] > 2 * 28)
    origins = attribution_boxes.panel_origins(view.result)
    assert len(origins) == 2
    top, left = origins[1]
    view.draw_boxes_button.setChecked(True)
    drag(view, (left + 5, top + 6), (left + 11, top + 14))
    assert view.user_boxes.boxes == [(5, 6, 11, 14)]
    rects = sorted((r.x(), r.y()) for r in shown_boxes(view))
    assert rects == sorted((ox + 5, oy + 6) for oy, ox in origins)
    mask = attribution_boxes.union_mask(view.user_boxes.boxes, (28, 28))
    assert view.user_boxes.pointing == engine_scores(view, mask)[0]
