"""Fast mode's SAM prompts from a CLIPSeg heatmap (docs/design.md §1).

From the region C = heatmap > threshold we take its main connected component (the one with the most
heatmap mass, so a large confident blob beats a stray speck), put a box around it, place positive points on
the heatmap's highest peaks inside it, and negative points on the lowest-score spots outside the box (well
below the threshold). Coordinates are continuous pixel coordinates of the heatmap given: pixel (row r,
column c) covers x in [c, c+1), y in [r, r+1), so scaling to another resolution is a plain multiply.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max

from .result import FastPrompts


def derive_prompts(
    heatmap: np.ndarray,  # [H, W] float32 probabilities in [0, 1]
    threshold: float,
    positive_points: int = 3,
    negative_points: int = 2,
) -> FastPrompts | None:
    """Box, positive and negative points for SAM; None when no pixel is above ``threshold``."""
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be [H, W], got {heatmap.shape}")
    region = heatmap > threshold
    if not region.any():
        return None
    main = _main_component(heatmap, region)
    rows, cols = np.nonzero(main)
    box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
    # peaks at least ~1/16 of the image apart, so the points spread over the object instead of one blob
    spacing = max(1, min(heatmap.shape) // 16)
    positive = _extreme_points(np.where(main, heatmap, 0.0), main, positive_points, spacing)
    negative = np.zeros((0, 2), dtype=np.float32)
    if negative_points > 0:
        low = heatmap < threshold * 0.5
        x0, y0, x1, y1 = (int(v) for v in box)
        low[y0:y1, x0:x1] = False
        if low.any():
            negative = _extreme_points(1.0 - heatmap, low, negative_points, spacing)
    return FastPrompts(box, positive, negative)


def _main_component(heatmap: np.ndarray, region: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(region)
    if count == 1:
        return region
    mass = ndimage.sum_labels(heatmap, labels, index=np.arange(1, count + 1))
    return labels == (int(np.argmax(mass)) + 1)


def _extreme_points(score: np.ndarray, allowed: np.ndarray, count: int, spacing: int) -> np.ndarray:
    """Up to ``count`` local maxima of ``score`` within ``allowed``, best first, as [n, 2] (x, y) centres."""
    peaks = peak_local_max(score, min_distance=spacing, labels=allowed.astype(np.int32), num_peaks=count,
                           exclude_border=False)
    if len(peaks) == 0:  # a plateau has no strict local maximum: fall back to its best pixel
        flat = np.where(allowed, score, -np.inf)
        peaks = np.array([np.unravel_index(int(np.argmax(flat)), score.shape)])
    peaks = peaks[np.argsort(-score[peaks[:, 0], peaks[:, 1]], kind="stable")][:count]
    return np.stack([peaks[:, 1] + 0.5, peaks[:, 0] + 0.5], axis=1).astype(np.float32)
