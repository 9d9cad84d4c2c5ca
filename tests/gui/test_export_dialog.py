"""File → Export View…: the dialog, its preview, and what Save writes (figure or raw, sidecar, command).

Most tests run the window on FakeEngineClient (no TensorFlow): the Feature maps view shows the
recorded conv1 maps and the dialog exports them. The last test runs the real window on the tiny
model and re-runs the sidecar's command through the CLI: the PNG it writes is byte-identical.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from fake_engine import FakeEngineClient, fake_window, recorded_answers, wait_until, write_digits
from PIL import Image

from engine.export import sidecar_path
from gui.export_choice import ExportChoice, export_command
from gui.export_dialog import ExportDialog

pytest.importorskip("matplotlib")

PX = ExportChoice(
    mode="figure", fmt=".png", style="paper", size_mode="wh", width=600, height=400, unit="px", dpi=100
)


@pytest.fixture
def window(qapp, tmp_path):
    fake = FakeEngineClient(recorded_answers())
    with fake_window(fake, write_digits(tmp_path)) as w:
        w.layer_tree.select("conv1")
        view = w.view("feature_maps")
        w.tabs.setCurrentIndex(w.views.index(view))
        wait_until(lambda: view.maps_layer == "conv1" and view.maps is not None and not fake.busy())
        yield w


def open_dialog(w, choice: ExportChoice | None = None) -> ExportDialog:
    w.export_view_dialog()
    dialog = w.export_dialog
    assert isinstance(dialog, ExportDialog) and dialog.isVisible()
    if choice is not None:
        dialog.set_choice(choice)
    wait_until(lambda: not dialog.preview_busy() and dialog.preview_image is not None, 20_000)
    return dialog


def formats(dialog: ExportDialog) -> list[str]:
    return [dialog.format_box.itemData(i) for i in range(dialog.format_box.count())]


def sidecar(path: Path) -> dict:
    return json.loads(sidecar_path(path).read_text())


def test_the_dialog_opens_for_feature_maps_with_a_preview_of_the_requested_size(window):
    dialog = open_dialog(window, PX)
    assert dialog.windowTitle().endswith("Feature maps")
    assert dialog.figure_radio.isEnabled() and dialog.figure_radio.isChecked()
    assert formats(dialog) == [".png", ".tif", ".svg", ".pdf"]
    assert dialog.preview_image.shape == (400, 600, 3)  # the file's pixels, aspect 3:2
    assert "600 × 400 px" in dialog.size_info.text()
    assert not dialog.preview.pixmap().isNull()
    # a taller request changes the preview's aspect (debounced, off the main thread)
    dialog.height_spin.setValue(900)
    wait_until(lambda: not dialog.preview_busy() and dialog.preview_image.shape[0] == 900, 20_000)
    assert dialog.preview_image.shape == (900, 600, 3)
    dialog.reject()


def test_a_style_preset_sets_its_default_size(window):
    dialog = open_dialog(window, PX)
    dialog.style_box.setCurrentIndex(dialog.style_box.findData("slide"))
    choice = dialog.choice()
    assert choice.size_mode == "default" and choice.dpi == 192
    wait_until(lambda: not dialog.preview_busy() and dialog.preview_image.shape[:2] == (1080, 1920), 30_000)
    dialog.reject()


def test_save_writes_the_png_at_the_requested_pixels_and_a_sidecar_with_the_command(window, tmp_path):
    dialog = open_dialog(window, PX)
    out = tmp_path / "maps.png"
    written = dialog.save_to(out)
    assert written[0] == out and sidecar_path(out) in written
    with Image.open(out) as im:
        assert im.size == (600, 400)
    meta = sidecar(out)
    command = meta["command"]
    assert command.startswith("python main.py export featuremaps --model fake/tiny.keras")
    words = shlex.split(command)
    for flag, value in (("--layer", "conv1"), ("--size", "600x400px"), ("--dpi", "100"), ("--out", str(out))):
        assert words[words.index(flag) + 1] == value
    assert words[words.index("--style") + 1] == "paper"
    assert meta["settings"]["figure"] == "featuremaps" and meta["settings"]["pixels"] == [600, 400]
    # the choices are remembered for the next export
    again = open_dialog(window)
    assert again.choice() == PX
    again.reject()


def test_raw_is_export_image_bit_for_bit_plus_the_values(window, tmp_path):
    view = window.view("feature_maps")
    dialog = open_dialog(window, ExportChoice(mode="raw", fmt=".png"))
    assert formats(dialog) == [".png", ".tif", ".npy"]
    image, _ = view.export_image()
    assert np.array_equal(dialog.preview_image, image)
    out = tmp_path / "raw.png"
    dialog.save_to(out)
    assert np.array_equal(np.asarray(Image.open(out)), image)
    assert np.array_equal(np.load(out.with_suffix(".npy"), allow_pickle=False), view.maps)
    assert shlex.split(sidecar(out)["command"])[-3:] == ["--raw", "--out", str(out)]


def test_save_never_overwrites_without_asking(window, tmp_path):
    out = tmp_path / "fig.png"
    out.write_bytes(b"keep me")
    questions: list[str] = []
    window.ask = lambda q: questions.append(q) or False
    dialog = open_dialog(window, PX)
    assert dialog.save_to(out) == [] and out.read_bytes() == b"keep me"
    assert questions and "Overwrite" in questions[0] and dialog.isVisible()
    window.ask = lambda q: True
    assert dialog.save_to(out)[0] == out
    assert out.read_bytes().startswith(b"\x89PNG")


def test_a_view_with_nothing_to_export_offers_raw_only_and_says_why(window):
    window.tabs.setCurrentIndex(window.views.index(window.view("dream")))
    window.export_view_dialog()
    dialog = window.export_dialog
    wait_until(lambda: not dialog.preview_busy())
    assert not dialog.figure_radio.isEnabled() and dialog.raw_radio.isChecked()
    assert "press Run" in dialog.error.text()
    dialog.reject()


def test_the_command_of_a_view_without_one_is_left_out():
    choice = ExportChoice()
    assert export_command({"kind": "maximize", "model": "m"}, choice, "x.png") is None
    given = {"command": "python main.py export topk --model m --source s --layer l --out FILE.png"}
    assert export_command(given, choice, "a b.png").endswith("--style paper --dpi 300 --out 'a b.png'")


def test_the_sidecar_command_reproduces_the_png_byte_for_byte(tiny_win, tmp_path):
    """The real window on the tiny model: the figure the dialog saves equals the CLI's, byte for byte."""
    from engine.cli import main

    w = tiny_win
    view = w.view("feature_maps")
    w.layer_tree.select("conv1")
    w.tabs.setCurrentIndex(w.views.index(view))
    wait_until(lambda: view.maps_layer == "conv1" and view.maps is not None and not w.client.busy(), 60_000)
    dialog = open_dialog(w, PX)
    out = tmp_path / "gui.png"
    dialog.save_to(out)
    words = shlex.split(sidecar(out)["command"])
    again = tmp_path / "cli.png"
    words[words.index("--out") + 1] = str(again)
    assert main(words[2:]) == 0
    assert again.read_bytes() == out.read_bytes()
