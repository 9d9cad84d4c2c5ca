"""The Attribution tab against FakeEngineClient: a recorded CamOutput, no engine thread, no TensorFlow.

The real "cam" job end to end stays in tests/gui/test_attribution_view.py; here the view is fed
the typed answer of engine.attribution.contract and must ask with a valid CamParams.
"""

from __future__ import annotations

import numpy as np
import pytest
from fake_engine import fake_attribution_window

from engine.attribution import contract  # noqa: E402

pytestmark = pytest.mark.usefixtures("tensorflow_free")


@pytest.fixture
def window(qapp, fake, tmp_path):
    """The fake window on the Attribution tab, its first map drawn (fake_engine.fake_attribution_window)."""
    with fake_attribution_window(fake, tmp_path) as w:
        yield w


def test_cam_on_the_default_layer_is_drawn_and_described(window, fake):
    w = window
    view = w.view("attribution")
    assert w.tabs.currentIndex() == w.views.index(view)  # the fixture opened the tab: the map is drawn
    assert view.result is not None and view.overlay_image() is not None and not fake.busy()
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


def test_fast_score_cam_asks_for_the_most_varied_channels(window, fake):
    """The menu's "Score-CAM, fast" is Score-CAM with max_channels = engine's FAST_CHANNELS; the
    sanity check of that map and the sidecar command keep the setting."""
    from engine.attribution.commands import cam_command
    from engine.attribution.methods import FAST_CHANNELS
    from gui.views.sanity_dialog import sanity_params

    view = window.view("attribution")
    view.set_method("scorecam-fast")
    params = view.job_params()
    assert isinstance(params, contract.CamParams)
    assert (params.method, params.max_channels) == ("scorecam", FAST_CHANNELS)
    assert sanity_params(params, "cascade").method_options["max_channels"] == FAST_CHANNELS
    view.set_method("scorecam")
    assert view.job_params().max_channels is None  # exact stays the plain entry
    line = cam_command({"model": "m.keras", "image": "x.png", "method": "scorecam", "max_channels": 0.25})
    assert "--method scorecam" in line and "--max-channels 0.25" in line
