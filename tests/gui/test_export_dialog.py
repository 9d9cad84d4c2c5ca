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
from gui.export_choice import ExportChoice, export_command, export_view
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


# ----- every tab's sidecar command writes the same file again --------------------------------------
FIG = ExportChoice(mode="figure", fmt=".png", style="paper", size_mode="width", width_px=700, dpi=200)
RAW = ExportChoice(mode="raw", fmt=".png")


def reproduce(view, tmp_path: Path, name: str) -> list[str]:
    """Export the view as a figure and raw through Save's code path (export_view), run each sidecar's
    command through the CLI in this process, and check that it writes the same PNG: byte for byte
    for the figure, the same pixels and values (FILE.npy) for raw. Returns the two commands."""
    from engine.cli import main

    commands = []
    for choice in (FIG, RAW):
        out = tmp_path / f"{name}-{choice.mode}.png"
        export_view(view, out, choice)
        command = sidecar(out)["command"]
        words = shlex.split(command)
        assert words[:4] == ["python", "main.py", "export", sidecar(out)["settings"]["kind"]], command
        again = tmp_path / f"{name}-{choice.mode}-cli.png"
        words[words.index("--out") + 1] = str(again)
        assert main(words[2:]) == 0, command
        if choice.raw:
            assert "--raw" in words
            assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out))), command
            gui_values, cli_values = (np.load(p.with_suffix(".npy")) for p in (out, again))
            assert gui_values.shape == cli_values.shape and np.array_equal(gui_values, cli_values), command
        else:
            assert again.read_bytes() == out.read_bytes(), command
        commands.append(command)
    return commands


def show(w, owner: str):
    """Make the tab of `owner` current (it refreshes when it needs to); returns its view."""
    view = w.view(owner)
    w.tabs.setCurrentIndex(w.views.index(view))
    return view


def settle(w, ready=lambda: True, timeout: int = 60_000) -> None:
    wait_until(lambda: ready() and not w.client.busy(), timeout)


@pytest.fixture
def real(tiny_win, monkeypatch):
    """The real window on the tiny model, conv1 selected; the CLI keeps fd 2 (CONVSCOPE_DEBUG)."""
    monkeypatch.setenv("CONVSCOPE_DEBUG", "1")
    tiny_win.layer_tree.select("conv1")
    return tiny_win


def test_feature_maps_and_filters_commands_reproduce_the_export(real, tmp_path):
    view = show(real, "feature_maps")
    settle(real, lambda: view.maps_layer == "conv1" and view.maps is not None)
    dialog = open_dialog(real, PX)  # the dialog's own Save
    out = tmp_path / "gui.png"
    dialog.save_to(out)
    words = shlex.split(sidecar(out)["command"])
    again = tmp_path / "cli.png"
    words[words.index("--out") + 1] = str(again)
    from engine.cli import main

    assert main(words[2:]) == 0
    assert again.read_bytes() == out.read_bytes()
    reproduce(view, tmp_path, "featuremaps")
    view = show(real, "filters")
    settle(real, lambda: view.weights_layer == "conv1" and view.weights is not None)
    reproduce(view, tmp_path, "filters")


def test_maximize_command_reproduces_the_run(real, tmp_path):
    view = show(real, "maximize")
    settle(real)
    view.set_mode("channel")
    view.channel_spin.setValue(2)
    view.steps_spin.setValue(6)
    view.seed_spin.setValue(3)
    view.start()
    settle(real, lambda: view.result is not None and view.images is not None)
    commands = reproduce(view, tmp_path, "maximize")
    words = shlex.split(commands[0])
    for flag, value in (("--layer", "conv1"), ("--channel", "2"), ("--steps", "6"), ("--seed", "3")):
        assert words[words.index(flag) + 1] == value
    assert "--objective" not in words and "--transforms" in words


def test_dream_command_reproduces_the_run(real, tmp_path):
    view = show(real, "dream")
    settle(real)
    view.layers_edit.setText("conv1 + 0.5*block/inner_conv")
    view.octaves_spin.setValue(2)
    view.steps_spin.setValue(3)
    view.start()
    settle(real, lambda: view.result is not None and view.image is not None)
    words = shlex.split(reproduce(view, tmp_path, "dream")[0])
    assert words[words.index("--layers") + 1] == "conv1 + 0.5*block/inner_conv"
    assert words[words.index("--octaves") + 1] == "2" and "--photo-size" not in words


def test_cam_and_saliency_commands_reproduce_the_maps(real, tmp_path):
    from engine.attribution.contract import CamOutput, SaliencyOutput

    view = show(real, "attribution")
    settle(real, lambda: isinstance(view.result, CamOutput))
    view.set_target(3, compare=5)
    settle(real, lambda: isinstance(view.result, CamOutput) and view.result.compare is not None)
    words = shlex.split(reproduce(view, tmp_path, "cam")[0])
    assert words[words.index("--target") + 1] == "3" and words[words.index("--compare") + 1] == "5"
    view.set_method("integrated")
    view.style_box.setCurrentIndex(view.style_box.findData("signed"))
    settle(real, lambda: isinstance(view.result, SaliencyOutput) and view.probs is not None)
    words = shlex.split(reproduce(view, tmp_path, "saliency")[0])
    assert words[words.index("--method") + 1] == "integrated"
    assert words[words.index("--map-style") + 1] == "signed"


def test_dataset_units_command_reproduces_the_page(real, tmp_path, assets):
    view = show(real, "dataset")
    view.set_source(str(assets["folder"]))
    view.set_layer("conv1")
    view.run_scan()
    settle(real, lambda: view.result is not None and view.units_image() is not None)
    reproduce(view, tmp_path, "topk")
