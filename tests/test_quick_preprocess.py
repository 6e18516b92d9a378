"""TripoSR's input framing against the official run.py path (facts in tests/facts/, see its README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.errors import BadInputError
from backend.quick.config import FOREGROUND_RATIO
from backend.quick.preprocess import BACKGROUND_GREY, frame_foreground, prepare_triposr_input

FACTS = Path(__file__).parent / "facts"


@pytest.mark.parametrize(("ratio", "size"), [(0.85, 64), (0.6, 48)])
def test_framing_and_resize_match_the_official_preprocessing(ratio, size):
    facts = np.load(FACTS / f"triposr_preprocess_ratio{ratio}_size{size}.npz")
    rgba = facts["rgba"].astype(np.float32) / 255.0
    composited, _ = frame_foreground(rgba[..., :3], rgba[..., 3], ratio)
    assert composited.shape == facts["composited"].shape
    np.testing.assert_array_equal(composited, facts["composited"])
    result = prepare_triposr_input(rgba[..., :3], rgba[..., 3], size, ratio)
    np.testing.assert_allclose(result.image, facts["model_input"], atol=1e-6)


def test_defaults_are_triposrs():
    assert FOREGROUND_RATIO == 0.85 and BACKGROUND_GREY == 0.5


def test_object_fills_the_foreground_ratio_over_grey_and_the_square_maps_back_to_the_photo():
    rgb = np.zeros((100, 200, 3), np.float32)
    alpha = np.zeros((100, 200), np.float32)
    alpha[20:61, 50:91] = 1.0  # a 41-px square: the box is rows 20..60, the official crop keeps 40 of them
    rgb[alpha > 0] = (1.0, 0.0, 0.0)
    composited, (x0, y0, side) = frame_foreground(rgb, alpha)
    assert side == int(40 / 0.85) == composited.shape[0]
    red = np.all(composited == (1.0, 0.0, 0.0), axis=-1)
    rows, cols = np.nonzero(red)
    assert rows.max() - rows.min() + 1 == 40 and cols.max() - cols.min() + 1 == 40
    assert np.allclose(composited[0, 0], 127 / 255)  # grey 0.5 after the 8-bit round trip
    # photo pixel (50, 20) (the crop's corner) sits at (50 - x0, 20 - y0) in the framed image
    assert red[20 - y0, 50 - x0] and not red[20 - y0 - 1, 50 - x0]


def test_empty_mask_is_bad_input():
    with pytest.raises(BadInputError, match="empty"):
        prepare_triposr_input(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.float32), 16)
