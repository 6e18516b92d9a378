"""The reference image stage 1 fits: the object cut out, recentred and scaled into a square (docs/design.md §1).

Image-to-3D methods trained on Objaverse renders (Zero123, DreamGaussian) expect the object centred with a
fixed margin: the longer side of its bounding box spans ``1 - border_ratio`` of the square, as DreamGaussian's
``process.py`` lays it out (``int(size * (1 - border_ratio))`` pixels, each side ``int(side * scale)``): with
the default 0.2 the object's long side is 204 of 256 pixels, 80 % (Zero-1-to-3's own renders put it near 78 %). Colour is kept straight (not premultiplied); the renderer and
the losses composite it over whatever background they need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import BadInputError


@dataclass(frozen=True)
class ReferenceImage:
    """The recentred reference view.

    rgb:   [S, S, 3] float32 in [0, 1], straight colour (meaningless where alpha is 0; zero there)
    alpha: [S, S]    float32 in [0, 1]
    """

    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def size(self) -> int:
        return self.alpha.shape[0]

    def composited(self, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """[S, S, 3] float32: the object over a plain background (white by default, as Zero123 expects)."""
        a = self.alpha[..., None]
        return (self.rgb * a + np.asarray(background, np.float32) * (1 - a)).astype(np.float32)


def mask_bounding_box(alpha: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive, of the pixels with alpha > threshold."""
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    if rows.size == 0:
        raise BadInputError(f"the object mask is empty (no pixel has alpha > {threshold})")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def prepare_reference(rgb: np.ndarray, alpha: np.ndarray, size: int = 256, border_ratio: float = 0.2) -> ReferenceImage:
    """Crop ``rgb``/``alpha`` to the mask's box and recentre them into a ``size``² square.

    rgb:   [H, W, 3] float32 in [0, 1]
    alpha: [H, W] float32 in [0, 1] or bool
    The box's longer side becomes ``int((1 - border_ratio) * size)`` pixels; the aspect ratio is kept and the
    resize is area-averaged (antialiased) when shrinking, bilinear when enlarging (DreamGaussian resizes with
    OpenCV's INTER_AREA, which does the same).
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    alpha = np.asarray(alpha).astype(np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BadInputError(f"reference rgb must be [H, W, 3], got shape {rgb.shape}")
    if alpha.shape != rgb.shape[:2]:
        raise BadInputError(f"reference alpha has shape {alpha.shape}, expected {rgb.shape[:2]}")
    if not 0.0 <= border_ratio < 1.0:
        raise BadInputError(f"border_ratio must be in [0, 1), got {border_ratio}")
    if size < 8:
        raise BadInputError(f"reference size must be at least 8 pixels, got {size}")

    top, left, bottom, right = mask_bounding_box(alpha)
    h, w = bottom - top, right - left
    new_h, new_w, y0, x0 = _square_layout(h, w, size, border_ratio)

    # Premultiply before resampling so colour from outside the mask does not bleed into the edges.
    crop_alpha = alpha[top:bottom, left:right]
    crop = np.concatenate([rgb[top:bottom, left:right] * crop_alpha[..., None], crop_alpha[..., None]], axis=-1)
    resized = _resize(crop, new_h, new_w)

    canvas = np.zeros((size, size, 4), np.float32)
    canvas[y0:y0 + new_h, x0:x0 + new_w] = resized
    out_alpha = np.clip(canvas[..., 3], 0.0, 1.0)
    out_rgb = np.where(out_alpha[..., None] > 1e-6, canvas[..., :3] / np.maximum(out_alpha[..., None], 1e-6), 0.0)
    return ReferenceImage(rgb=np.clip(out_rgb, 0.0, 1.0).astype(np.float32), alpha=out_alpha.astype(np.float32))


def _square_layout(h: int, w: int, size: int, border_ratio: float) -> tuple[int, int, int, int]:
    """Where a ``h`` x ``w`` box lands in the ``size``² reference: (new_h, new_w, top, left) in its pixels."""
    target_long = max(1, int(size * (1 - border_ratio)))
    scale = target_long / max(h, w)
    # int() as DreamGaussian's, with a guard against float error truncating the long side (204.0 → 203).
    new_h, new_w = max(1, int(h * scale + 1e-6)), max(1, int(w * scale + 1e-6))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


@dataclass(frozen=True)
class ReferenceCrop:
    """The square of the photo that the reference image shows, in photo pixels (x right, y down).

    The reference pixel (u, v) of a ``size``² reference sees the photo point
    ``(x0 + u * side / size, y0 + v * side / size)``; the square may reach past the photo's edges.
    """

    x0: float  # left edge
    y0: float  # top edge
    side: float  # side length

    def as_list(self) -> list[float]:
        return [round(self.x0, 4), round(self.y0, 4), round(self.side, 4)]


def reference_crop(alpha: np.ndarray, size: int = 256, border_ratio: float = 0.2) -> ReferenceCrop:
    """The photo square :func:`prepare_reference` maps onto its ``size``² output, for the same arguments.

    alpha: [H, W] float32 or bool, the mask given to prepare_reference.
    prepare_reference scales the mask's box (top, left, h, w) by new_w / w horizontally and new_h / h
    vertically (equal up to rounding) and puts its corner at (x_ref, y_ref) in the reference. Inverting
    that: one reference pixel is ``w / new_w`` photo pixels, so side = size * w / new_w and the square's
    corner is the box corner minus the margin, x0 = left - x_ref * w / new_w (y likewise, with h / new_h).
    The longer side sets the scale; its factor is the one used for both axes (the other differs by < 1 px
    of rounding over the whole reference).
    """
    top, left, bottom, right = mask_bounding_box(np.asarray(alpha).astype(np.float32))
    h, w = bottom - top, right - left
    new_h, new_w, y_ref, x_ref = _square_layout(h, w, size, border_ratio)
    photo_per_ref = w / new_w if w >= h else h / new_h
    return ReferenceCrop(x0=left - x_ref * photo_per_ref, y0=top - y_ref * photo_per_ref, side=size * photo_per_ref)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w, C] float32 → [height, width, C]: area averaging when shrinking, bilinear when enlarging."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    if height <= image.shape[0] and width <= image.shape[1]:
        out = F.interpolate(t, size=(height, width), mode="area")
    else:
        out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).numpy()
