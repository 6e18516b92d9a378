"""A contact sheet a person can look at: ground truth row above, our reconstruction below.

One sheet per object (:func:`make_contact_sheet`); the run's sheet stacks every object's, in run order
(:func:`stack_contact_sheets`). Each column is one held-out view; both rows are composited over the metric background (mid grey) so
missing or extra surface shows. Small renders are enlarged with nearest-neighbour sampling to at least
``min_cell`` pixels so a 64² render is still readable; a caption under each column gives that view's
PSNR and IoU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..errors import BadInputError
from .metrics import composite

LABEL_WIDTH = 96
CAPTION_HEIGHT = 14
TEXT_COLOUR = (20, 20, 20)
PAPER_COLOUR = (245, 245, 245)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def make_contact_sheet(ground_truth: Sequence[tuple[np.ndarray, np.ndarray]],  # per view: rgb [H,W,3], alpha [H,W]
                       ours: Sequence[tuple[np.ndarray, np.ndarray]],
                       captions: Sequence[str] | None = None, title: str = "",
                       min_cell: int = 128) -> np.ndarray:  # [H', W', 3] uint8
    """Two rows (ground truth, ours) of composites, one column per view, labelled."""
    if len(ground_truth) != len(ours) or not ground_truth:
        raise BadInputError(f"contact sheet needs the same non-zero number of views, got {len(ground_truth)} "
                            f"and {len(ours)}")
    height, width = ground_truth[0][0].shape[:2]
    zoom = max(1, -(-min_cell // max(height, width)))
    cell_h, cell_w = height * zoom, width * zoom
    title_h = CAPTION_HEIGHT + 4 if title else 0
    sheet = Image.new("RGB", (LABEL_WIDTH + cell_w * len(ours), title_h + 2 * cell_h + CAPTION_HEIGHT + 4),
                      PAPER_COLOUR)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title, fill=TEXT_COLOUR)
    for row, (label, views) in enumerate((("ground truth", ground_truth), ("ours", ours))):
        top = title_h + row * cell_h
        draw.text((4, top + cell_h // 2 - 6), label, fill=TEXT_COLOUR)
        for col, (rgb, alpha) in enumerate(views):
            if rgb.shape[:2] != (height, width):
                raise BadInputError(f"view {col} is {rgb.shape[:2]}, expected {(height, width)}")
            tile = Image.fromarray(_to_uint8(composite(rgb, alpha))).resize((cell_w, cell_h), Image.NEAREST)
            sheet.paste(tile, (LABEL_WIDTH + col * cell_w, top))
    if captions:
        for col, caption in enumerate(captions):
            draw.text((LABEL_WIDTH + col * cell_w + 2, title_h + 2 * cell_h + 2), caption, fill=TEXT_COLOUR)
    return np.asarray(sheet)


SHEET_GAP = 8  # white rows between two objects' sheets


def stack_contact_sheets(sheets: Sequence[np.ndarray]) -> np.ndarray:  # each [H_i, W_i, 3] uint8 → [ΣH_i + gaps, max W, 3]
    """Every object's sheet, top to bottom in the given order, left-aligned on white, SHEET_GAP rows apart."""
    if not sheets:
        raise BadInputError("no contact sheets to stack")
    width = max(s.shape[1] for s in sheets)
    padded = [np.pad(s, ((0, SHEET_GAP), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    return np.concatenate(padded, axis=0)
