"""engine.common: the helpers written once (drain, unit_to_uint8, SEP)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import render
from engine.common import SEP, drain, unit_to_uint8


def _counting(n: int):
    yield from range(n)
    return f"done after {n}"


def test_drain_returns_the_generator_return_value_and_shows_each_item():
    seen: list[int] = []
    assert drain(_counting(3), seen.append) == "done after 3"
    assert seen == [0, 1, 2]
    assert drain(_counting(0)) == "done after 0"


def test_drain_lets_the_generator_exception_through():
    def broken():
        yield 1
        raise ValueError("bad step")

    with pytest.raises(ValueError, match="bad step"):
        drain(broken())


def test_unit_to_uint8_clips_rounds_and_keeps_shape():
    a = np.array([[-0.5, 0.0, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf]], np.float32)
    out = unit_to_uint8(a)
    assert out.dtype == np.uint8 and out.shape == a.shape
    assert out.tolist() == [[0, 0, 128, 255, 255, 0, 255, 0]]
    batch = np.random.default_rng(0).random((2, 5, 4, 3)).astype(np.float32)
    assert unit_to_uint8(batch).shape == (2, 5, 4, 3)
    u8 = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert unit_to_uint8(u8) is u8


def test_unit_to_uint8_agrees_with_render_to_uint8_on_finite_rgb():
    img = np.random.default_rng(1).random((7, 9, 3)).astype(np.float32) * 1.4 - 0.2
    np.testing.assert_array_equal(unit_to_uint8(img), render.to_uint8(img))


def test_sep_is_the_nested_layer_separator():
    assert SEP == "/"
