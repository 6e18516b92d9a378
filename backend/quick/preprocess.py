"""The image TripoSR reads: the cut-out framed and composited the way the official ``run.py`` does it.

1. Crop to the box of pixels with alpha > 0. The official code takes rows ``min:max`` and columns
   ``min:max`` of that box, which leaves out its last row and column; we do the same, so the object lands
   on exactly the pixels the model saw in training-style inputs.
2. Pad to a square (object centred, the odd pixel after it), then pad to ``int(side / foreground_ratio)``
   so the object's longer side fills ``foreground_ratio`` (0.85) of the image.
3. Composite over grey 0.5 and round-trip through 8 bits (the official path writes a uint8 image).
4. Resize to the model's input size (512 for the published model): bilinear, antialiased.

Pinned against the official functions by tests/test_quick_preprocess.py (facts in tests/facts/).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError
from .config import FOREGROUND_RATIO

BACKGROUND_GREY = 0.5


@dataclass(frozen=True)
class TripoSRInput:
    """What the model reads, and where it came from in the photo.

    image:  [S, S, 3] float32 in [0, 1], object over grey (S = the model's cond_image_size)
    square: (x0, y0, side) of the photo square the image shows, in photo pixels (may reach past the edges)
    """

    image: np.ndarray
    square: tuple[int, int, int]

    def as_batch(self, device, dtype=torch.float32) -> torch.Tensor:  # → [1, 3, S, S]
        return torch.as_tensor(self.image, device=device, dtype=dtype).permute(2, 0, 1)[None].contiguous()


def frame_foreground(rgb: np.ndarray, alpha: np.ndarray, foreground_ratio: float = FOREGROUND_RATIO
                     ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Steps 1–3: (composited [N, N, 3] float32, photo square (x0, y0, side)).

    rgb: [H, W, 3] float32 in [0, 1]; alpha: [H, W] float32 in [0, 1] or bool.
    """
    rgb = np.asarray(rgb, np.float32)
    alpha = np.asarray(alpha).astype(np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or alpha.shape != rgb.shape[:2]:
        raise BadInputError(f"expected rgb [H, W, 3] and alpha [H, W], got {rgb.shape} and {alpha.shape}")
    if not 0.0 < foreground_ratio <= 1.0:
        raise BadInputError(f"foreground ratio must be in (0, 1], got {foreground_ratio}")
    rows, cols = np.nonzero(alpha > 0)
    if rows.size == 0:
        raise BadInputError("the object mask is empty: nothing to reconstruct")
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    crop = np.concatenate([rgb, alpha[..., None]], axis=-1)[top:bottom, left:right]
    h, w = crop.shape[:2]
    if h == 0 or w == 0:
        raise BadInputError("the object is a single row or column of pixels: nothing to reconstruct")
    side = max(h, w)
    pad_top, pad_left = (side - h) // 2, (side - w) // 2
    framed_side = int(side / foreground_ratio)
    margin = (framed_side - side) // 2
    canvas = np.zeros((framed_side, framed_side, 4), np.float32)
    y0, x0 = margin + pad_top, margin + pad_left
    canvas[y0:y0 + h, x0:x0 + w] = crop
    a = canvas[..., 3:4]
    composited = canvas[..., :3] * a + (1 - a) * BACKGROUND_GREY
    composited = (composited * 255.0).astype(np.uint8).astype(np.float32) / 255.0  # the official 8-bit image
    return composited, (int(left - x0), int(top - y0), int(framed_side))


def resize_to_input(image: np.ndarray, size: int) -> np.ndarray:
    """Step 4: [N, N, 3] → [size, size, 3], bilinear with antialiasing (the model's own preprocessor)."""
    t = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    out = F.interpolate(t, (size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).numpy()


def prepare_triposr_input(rgb: np.ndarray, alpha: np.ndarray, size: int,
                          foreground_ratio: float = FOREGROUND_RATIO) -> TripoSRInput:
    """Steps 1–4 (module docstring)."""
    composited, square = frame_foreground(rgb, alpha, foreground_ratio)
    return TripoSRInput(image=resize_to_input(composited, size), square=square)
