"""The Attribution tab against FakeEngineClient: a recorded CamOutput, no engine thread, no TensorFlow.

The real "cam" job end to end stays in tests/gui/test_attribution_view.py; here the view is fed
the typed answer of engine.attribution.contract and must ask with a valid CamParams.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from fake_engine import FakeEngineClient, fake_window, recorded_answers, wait_until, write_digits

from engine.attribution import contract  # noqa: E402


@pytest.fixture(autouse=True)
def no_tensorflow():
    """Nothing a test here does may import TensorFlow or Keras. Checked in the fresh process that
    test_views_fake.py's subprocess test starts (in a whole-suite run an earlier real-engine test's
    thread may still be importing it in the background)."""
    yield
    if os.environ.get("CONVSCOPE_FAKE_CHILD"):
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules


@pytest.fixture
def fake(qapp):
    return FakeEngineClient(recorded_answers())


@pytest.fixture
def window(qapp, fake, tmp_path):
    with fake_window(fake, write_digits(tmp_path)) as w:
        yield w


def test_cam_on_the_default_layer_is_drawn_and_described(window, fake):
    w = window
    view = w.view("attribution")
    w.tabs.setCurrentIndex(w.views.index(view))
    wait_until(lambda: view.result is not None and view.overlay_image() is not None and not fake.busy())
    params = contract.CamParams.parse(fake.requests_of("cam")[-1].params)
    assert params.layer is None and params.method == "gradcam" and params.image is w.state.image
    out = view.result
    assert isinstance(out, contract.CamOutput) and out.layer == "block/inner_conv"
    assert out.predictions[0] == contract.Prediction(0, "0", pytest.approx(out.predictions[0].probability))
    overlay = view.overlay_image()
    assert overlay.dtype == np.uint8 and overlay.shape[:2] == (28, 28)
    text = view.info.text()
    assert "block/inner_conv [auto] (11×11 cells, field 8×8 px, stride 2)" in text
    assert w.message_bar.isHidden() and fake.unanswered == []
