"""prepare_reference: crop to the mask, recentre, fixed border."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import BadInputError
from backend.preprocess import mask_bounding_box, prepare_reference


def _synthetic(height=120, width=200, box=(30, 50, 70, 130), color=(0.9, 0.2, 0.1)):
    """A red rectangle (top, left, bottom, right) on a green background, with its mask."""
    rgb = np.zeros((height, width, 3), np.float32)
    rgb[...] = (0.0, 1.0, 0.0)
    top, left, bottom, right = box
    rgb[top:bottom, left:right] = color
    alpha = np.zeros((height, width), bool)
    alpha[top:bottom, left:right] = True
    return rgb, alpha


def test_mask_bounding_box_is_exact():
    _, alpha = _synthetic()
    assert mask_bounding_box(alpha.astype(np.float32)) == (30, 50, 70, 130)


@pytest.mark.parametrize("size,border_ratio", [(64, 0.2), (100, 0.1), (256, 0.2)])
def test_object_is_centred_with_the_requested_border(size, border_ratio):
    rgb, alpha = _synthetic()  # box 40 tall, 80 wide: the width is the longer side
    ref = prepare_reference(rgb, alpha, size=size, border_ratio=border_ratio)
    assert ref.rgb.shape == (size, size, 3) and ref.alpha.shape == (size, size)
    assert ref.rgb.dtype == np.float32 and ref.alpha.dtype == np.float32

    top, left, bottom, right = mask_bounding_box(ref.alpha)
    expected_long = int((1 - border_ratio) * size)  # DreamGaussian's process.py layout
    assert abs((right - left) - expected_long) <= 1
    assert abs((bottom - top) - expected_long / 2) <= 1  # aspect ratio kept
    # centred: equal margins left/right and top/bottom (±1 px rounding)
    assert abs(left - (size - right)) <= 1
    assert abs(top - (size - bottom)) <= 1
    # the background colour (green) never leaks in; the object keeps its colour
    inside = ref.alpha > 0.99
    # (enlarging 2.55x at 256 px, the edge's unpremultiplied float32 mix is off by 2e-4)
    np.testing.assert_allclose(ref.rgb[inside].mean(axis=0), (0.9, 0.2, 0.1), atol=5e-4)
    assert ref.rgb[..., 1][ref.alpha > 0.05].max() < 0.21


def test_composited_puts_the_object_on_white():
    rgb, alpha = _synthetic()
    ref = prepare_reference(rgb, alpha, size=64)
    comp = ref.composited()
    np.testing.assert_allclose(comp[0, 0], (1.0, 1.0, 1.0))
    np.testing.assert_allclose(comp[32, 32], (0.9, 0.2, 0.1), atol=1e-4)


def test_small_objects_are_enlarged():
    rgb, alpha = _synthetic(box=(10, 10, 14, 18))  # 4 x 8 px
    ref = prepare_reference(rgb, alpha, size=128, border_ratio=0.2)
    top, left, bottom, right = mask_bounding_box(ref.alpha)
    assert abs((right - left) - round(0.8 * 128)) <= 2


def test_empty_mask_is_bad_input():
    rgb, alpha = _synthetic()
    with pytest.raises(BadInputError, match="empty"):
        prepare_reference(rgb, np.zeros_like(alpha), size=64)


def test_mismatched_shapes_are_bad_input():
    rgb, alpha = _synthetic()
    with pytest.raises(BadInputError, match="shape"):
        prepare_reference(rgb, alpha[:10], size=64)
