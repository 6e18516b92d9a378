"""SAM 3's answer for a batch of prompts, from the device to the host in as few copies as possible.

Every copy from the GPU is a wait: the host stops until the graphs replayed before it have run. The static path
(``ConceptSegmenter`` with ``Sam3SegmentConfig.static_decoding``) therefore reads everything a prompt needs in
one copy on CUDA: presence, the best ``K`` scores and boxes, the semantic map (float16) and the best ``K`` masks,
scaled to the working size, thresholded and packed eight to a byte (``np.packbits``' order), one whole number of
bytes per mask. The host then unpacks only the masks it keeps. On the CPU nothing is copied, but scaling masks
that are not kept costs time, so there the scores are read first and only the kept masks scaled after
(``masks_with_scores=False``); both ways give the same bools (tests/test_segment_sam3_static.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .sam3_static import PromptDecoding


@dataclass(frozen=True)
class PromptAnswer:
    """The best ``K`` instances of each of P prompts, scores on the host (best first)."""

    presence: torch.Tensor  # [P] float32, CPU: sigmoid(presence logit)
    scores: torch.Tensor  # [P, K] float32, CPU: sigmoid(logit) × presence, best first
    boxes: torch.Tensor  # [P, K, 4] float32, CPU: XYXY in [0, 1] of the square model input
    semantic: np.ndarray  # [P, h, w] float32 semantic probability at the working size
    size: tuple[int, int]  # (h, w) the working size
    threshold: float  # a mask pixel is in where sigmoid(logit) > this
    mask_bits: np.ndarray | None  # [P·K, ceil(h·w / 8)] uint8: every top mask packed (read with the scores)
    top_masks: torch.Tensor | None  # [P, K, m, m] mask logits on the device (when mask_bits is None)

    def kept_masks(self, keep: torch.Tensor) -> np.ndarray:
        """keep [P, K] bool (CPU) → [N, h, w] bool: the kept masks in row order."""
        rows = keep.flatten().nonzero()[:, 0]  # on the CPU: a bool index on the device would read its count back
        if not len(rows):
            return np.zeros((0, *self.size), dtype=bool)
        if self.mask_bits is not None:
            height, width = self.size
            bits = np.unpackbits(self.mask_bits[rows.numpy()], axis=1, count=height * width)
            return bits.view(bool).reshape(len(rows), height, width)
        logits = self.top_masks.flatten(0, 1).index_select(0, rows.to(self.top_masks.device))
        return bools_to_host(threshold_masks(logits, self.size, self.threshold), packed=logits.device.type == "cuda")


def read_answer(raw: PromptDecoding, count: int, size: tuple[int, int], threshold: float,
                masks_with_scores: bool) -> PromptAnswer:
    """The best ``count`` queries per prompt of ``raw``, in one copy to the host.

    Scores are SAM 3's: sigmoid(logit) × presence. The semantic map travels as float16 (a probability: 5e-4 at
    worst). ``masks_with_scores``: the top masks travel in the same copy, packed (see the module doc);
    otherwise they stay on the device for :meth:`PromptAnswer.kept_masks`.
    """
    presence = raw.presence_logits.float().sigmoid()
    scores, index = (raw.logits.float().sigmoid() * presence[:, None]).topk(count, dim=1)  # sorted, best first
    boxes = raw.boxes.float().gather(1, index[..., None].expand(-1, -1, 4))
    masks = raw.masks.gather(1, index[..., None, None].expand(-1, -1, *raw.masks.shape[-2:]))
    semantic = F.interpolate(raw.semantic.float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    parts = [presence, scores, boxes, semantic.sigmoid().half()]
    if masks_with_scores:
        parts.append(pack_bits(threshold_masks(masks.flatten(0, 1), size, threshold)))
    host = to_host(torch.cat([part.contiguous().view(torch.uint8).reshape(-1) for part in parts]))
    unpacked, offset = [], 0
    for part in parts:
        size_bytes = part.numel() * part.element_size()
        unpacked.append(host[offset:offset + size_bytes].view(part.dtype).reshape(part.shape))
        offset += size_bytes
    bits = unpacked.pop().numpy() if masks_with_scores else None
    presence, scores, boxes, semantic = (part.float() for part in unpacked)
    return PromptAnswer(presence, scores, boxes, semantic.numpy(), size, threshold, bits,
                        None if masks_with_scores else masks)


def threshold_masks(logits: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """Mask logits [N, m, m] → [N, h, w] bool on their device: scaled to ``size`` bilinearly and cut at
    probability ``threshold`` (compared as a logit, so no sigmoid over the full-size masks)."""
    scaled = F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return scaled > math.log(threshold / (1 - threshold))


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """[N, ...] bool → [N, ceil(values / 8)] uint8 on the same device, ``np.packbits``' order (the first value
    in the highest bit), each row padded with zero bits to whole bytes, as ``np.packbits(axis=1)`` does."""
    flat = bits.reshape(bits.shape[0], -1).view(torch.uint8)
    if flat.shape[1] % 8:
        flat = F.pad(flat, (0, -flat.shape[1] % 8))
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=flat.device)
    return (flat.view(flat.shape[0], -1, 8) << shifts).sum(dim=2, dtype=torch.uint8)  # the bits are disjoint: sum = or


def bools_to_host(bits: torch.Tensor, packed: bool) -> np.ndarray:
    """A bool tensor [N, ...] → the same bools as a NumPy array. ``packed``: eight to a byte on the tensor's
    device, copied as bytes, unpacked on the CPU; a device → host copy of 20 masks of 683 × 1024 shrinks from
    14 MB to 1.7 MB."""
    if not packed:
        return bits.cpu().numpy()
    if not bits.shape[0]:
        return np.zeros(bits.shape, dtype=bool)
    per_row = math.prod(bits.shape[1:])
    unpacked = np.unpackbits(to_host(pack_bits(bits)).numpy(), axis=1, count=per_row)
    return unpacked.view(bool).reshape(bits.shape)


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor.cpu()``, through page-locked memory from CUDA: a copy from the device into pageable memory
    is staged through a driver buffer in pieces and runs at a fraction of the bus's speed."""
    if tensor.device.type != "cuda":
        return tensor.cpu()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)  # torch caches pinned blocks
    return host.copy_(tensor)  # blocking: the bytes are here when it returns
