"""What a segmentation call returns: one frozen record per prompt."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FastPrompts:
    """SAM prompts derived from a heatmap, in pixel coordinates (x right, y down) of the image they refer to."""

    box: tuple[float, float, float, float]  # XYXY around the main high-score region (inclusive pixel bounds)
    positive: np.ndarray  # [P, 2] float32 (x, y): heatmap peaks inside that region
    negative: np.ndarray  # [N, 2] float32 (x, y): low-score spots; N may be 0

    def scaled(self, sx: float, sy: float) -> FastPrompts:
        scale = np.array([sx, sy], dtype=np.float32)
        x0, y0, x1, y1 = self.box
        return FastPrompts((x0 * sx, y0 * sy, x1 * sx, y1 * sy), self.positive * scale, self.negative * scale)


@dataclass(frozen=True)
class SegmentationResult:
    prompt: str
    slug: str  # file-name stem for this prompt's outputs (see slugify)
    mode: str  # "fast" | "paper" | "sam3" (SegmentConfig.segmenter "sam3")
    mask: np.ndarray  # [H, W] bool at the original image size (after EXIF rotation)
    score: float  # paper: |U ∩ C| / |U| of the returned union U; fast: IoU of the chosen SAM mask with C;
    #               sam3: SAM 3's score of the chosen instance (of the best one for a union)
    heatmap: np.ndarray  # [h, w] float32 CLIPSeg probability at the working resolution (see working_size);
    #                      sam3: SAM 3's semantic (all-instances) probability
    working_size: tuple[int, int]  # (h, w) the models worked at: the photo scaled to SegmentConfig.max_side
    kept_masks: np.ndarray | None = None  # paper: [K, hs, ws] bool, the SAM masks kept, at SAM's mask
    #                                        resolution (the working image scaled to SAM's input, ≤ 1024 px)
    kept_scores: np.ndarray | None = None  # paper: [K] float32, their scores |S ∩ C| / |S|
    #                                         sam3: kept_masks / kept_scores are every instance, best first,
    #                                         at the working resolution
    sam_masks: int | None = None  # paper: how many automatic SAM masks the fusion chose from (after SAM's
    #                               filters, SegmentConfig.max_masks and NMS); the same for every prompt
    prompts_used: FastPrompts | None = None  # fast: box and points, in ORIGINAL image pixel coordinates
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage; shared stages amortised
