"""Fusing CLIPSeg's region C with SAM's masks (docs/design.md §1).

Paper mode, as we read it: the paper scores each SAM mask S against C with an IoU whose union is restricted
to S's own pixels, i.e. |S ∩ C| / |S ∪ C| with the union taken inside S, which is |S ∩ C| / |S ∩ S| =
|S ∩ C| / |S| — the fraction of S that CLIPSeg marks as the prompt. A mask is kept when that fraction is
strictly greater than ``keep`` (0.5: most of S lies in C), and the result is the union of the kept masks.
This does not penalise C for spilling outside S (CLIPSeg's blobs are coarse), only S for leaving C.

Fast mode: SAM proposes a few candidates for one prompt; we take the one with the best plain IoU with C.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def containment_scores(
    sam_masks: torch.Tensor,  # [K, H, W] bool
    clip_region: torch.Tensor,  # [H, W] bool, C
) -> torch.Tensor:  # [K] float32: |S ∩ C| / |S|; 0 for an empty S
    _check_shapes(sam_masks, clip_region)
    inside = (sam_masks & clip_region[None]).flatten(1).sum(1).float()
    area = sam_masks.flatten(1).sum(1).float()
    return torch.where(area > 0, inside / area.clamp(min=1), torch.zeros_like(area))


@dataclass(frozen=True)
class PaperFusion:
    mask: torch.Tensor  # [H, W] bool: union of the kept SAM masks (all False when none is kept)
    kept: torch.Tensor  # [K'] int64 indices of kept masks
    scores: torch.Tensor  # [K] float32 score of every SAM mask
    union_score: float  # |U ∩ C| / |U| of the union U (0 when nothing is kept)

    @property
    def best_score(self) -> float:
        return float(self.scores.max()) if self.scores.numel() else 0.0


def fuse_paper(sam_masks: torch.Tensor, clip_region: torch.Tensor, keep: float = 0.5) -> PaperFusion:
    """Keep every S with |S ∩ C| / |S| > keep (strictly); return their union."""
    scores = containment_scores(sam_masks, clip_region)
    kept = torch.nonzero(scores > keep).flatten()
    if kept.numel():
        union = sam_masks[kept].any(0)
        union_score = float(containment_scores(union[None], clip_region)[0])
    else:
        union = torch.zeros_like(clip_region, dtype=torch.bool)
        union_score = 0.0
    return PaperFusion(union, kept, scores, union_score)


def mask_iou(masks: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """[K, H, W] bool vs [H, W] bool → [K] float32 IoU (0 where both are empty)."""
    _check_shapes(masks, region)
    inter = (masks & region[None]).flatten(1).sum(1).float()
    union = (masks | region[None]).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def pick_best_candidate(candidates: torch.Tensor, clip_region: torch.Tensor) -> tuple[int, float]:
    """Index and IoU of the candidate mask [M, H, W] that agrees best with C."""
    ious = mask_iou(candidates, clip_region)
    best = int(torch.argmax(ious))
    return best, float(ious[best])


def _check_shapes(masks: torch.Tensor, region: torch.Tensor) -> None:
    if masks.ndim != 3 or region.ndim != 2 or masks.shape[1:] != region.shape:
        raise ValueError(f"masks must be [K, H, W] and region [H, W]; got {tuple(masks.shape)}, {tuple(region.shape)}")
    if masks.dtype != torch.bool or region.dtype != torch.bool:
        raise ValueError(f"masks and region must be bool, got {masks.dtype}, {region.dtype}")
