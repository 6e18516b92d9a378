"""Running SAM on one image: the embedding once, then automatic masks (paper) or prompted masks (fast).

``generate_masks`` follows segment-anything's ``SamAutomaticMaskGenerator`` with ``crop_n_layers=0``: a
regular grid of single-point prompts, three masks per point, SAM's predicted-IoU and stability filters, box
NMS. It differs only in bookkeeping, for speed: it reuses the embedding already computed for the image
(no second ``set_image``), drops masks by predicted IoU before upsampling them, and keeps masks as one bool
tensor on the device instead of round-tripping through RLE. Its crop-edge filter is a no-op with one crop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.utils.amg import batched_mask_to_box, build_point_grid, calculate_stability_score
from torchvision.ops import batched_nms

from .result import FastPrompts

SAM_DEFAULT_PRED_IOU = 0.88  # SamAutomaticMaskGenerator's defaults
SAM_DEFAULT_STABILITY = 0.95
MASK_MEMORY_BUDGET = {"cuda": 2 << 30, "cpu": 256 << 20}  # bytes of float masks per decoder batch


def embed_image(predictor: SamPredictor, image: np.ndarray, autocast: bool) -> None:
    """SAM's image encoder on ``image`` ([h, w, 3] uint8 RGB); the predictor keeps the embedding."""
    with torch.inference_mode(), torch.autocast(predictor.device.type, dtype=torch.float16, enabled=autocast):
        predictor.set_image(image)


@dataclass(frozen=True)
class AutomaticMasks:
    masks: torch.Tensor  # [K, h, w] bool at SAM's input resolution (or the image's, if smaller), on its device
    predicted_iou: torch.Tensor  # [K] float32
    stability: torch.Tensor  # [K] float32


def generate_masks(
    predictor: SamPredictor,
    points_per_side: int,
    points_per_batch: int,
    pred_iou_thresh: float,
    stability_thresh: float,
    box_nms_thresh: float,
    autocast: bool,
    on_batch: Callable[[float], None] | None = None,  # called with the fraction done after each batch
    max_masks: int | None = None,  # keep at most this many candidates, highest predicted IoU first (None: all)
) -> AutomaticMasks:
    """SAM's automatic masks for the image set on ``predictor`` (see module docstring).

    Two passes: the decoder over the whole grid first (low-resolution logits and predicted IoU, SAM's IoU filter
    applied), then ``max_masks``, then upsampling, the stability filter and NMS on what is left. Capping before
    upsampling keeps the cost proportional to the masks kept; it is how the benchmark pins a realistic count
    with random weights, whose predicted IoUs sit on either side of any fixed cut.
    """
    model = predictor.model
    device = predictor.device
    # masks at the resolution SAM itself saw (the image scaled to the encoder's input, 1024 px for real
    # weights), or the image's own if smaller: finer masks would only be interpolated from the same logits
    image_h, image_w = predictor.original_size
    h, w = predictor.input_size if predictor.input_size[0] * predictor.input_size[1] < image_h * image_w else (
        image_h, image_w)
    grid = build_point_grid(points_per_side) * np.array([w, h])[None]  # [n², 2] (x, y) in image pixels
    bytes_per_point = 3 * h * w * 4
    budget = MASK_MEMORY_BUDGET.get(device.type, MASK_MEMORY_BUDGET["cpu"])
    batch = max(1, min(points_per_batch, budget // bytes_per_point))

    # 1. decoder over the grid: [K, 1, 256, 256] float32 logits and [K] predicted IoU of the candidates kept
    low_res, ious = [], []
    for start in range(0, len(grid), batch):
        points = torch.as_tensor(grid[start:start + batch], dtype=torch.float32, device=device)
        coords = predictor.transform.apply_coords_torch(points, (h, w))[:, None, :]  # [B, 1, 2] input frame
        labels = torch.ones(coords.shape[0], 1, dtype=torch.int, device=device)
        with torch.inference_mode():
            with torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
                sparse, dense = model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
                logits, iou_pred = model.mask_decoder(
                    image_embeddings=predictor.features, image_pe=model.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True,
                )
            logits = logits.float().flatten(0, 1)[:, None]  # [B*3, 1, 256, 256]
            iou_pred = iou_pred.float().flatten()
            keep = iou_pred > pred_iou_thresh if pred_iou_thresh > 0 else torch.ones_like(iou_pred, dtype=torch.bool)
            low_res.append(logits[keep])
            ious.append(iou_pred[keep])
        if on_batch is not None:
            on_batch(min(1.0, (start + batch) / len(grid)) * 0.5)
    with torch.inference_mode():
        low_res_all, iou_all = torch.cat(low_res), torch.cat(ious)
        if max_masks is not None and len(iou_all) > max_masks:
            top = torch.topk(iou_all, max_masks).indices.sort().values  # grid order kept
            low_res_all, iou_all = low_res_all[top], iou_all[top]

    # 2. upsampling, stability filter, binarising, in batches that fit the memory budget
    masks, kept_ious, stabilities = [], [], []
    for start in range(0, len(iou_all), batch * 3):
        with torch.inference_mode():
            logits = model.postprocess_masks(low_res_all[start:start + batch * 3], predictor.input_size, (h, w))[:, 0]
            stability = calculate_stability_score(logits, model.mask_threshold, 1.0)
            stable = stability >= stability_thresh if stability_thresh > 0 else torch.ones_like(stability, dtype=torch.bool)
            binary = logits[stable] > model.mask_threshold
            nonempty = binary.flatten(1).any(1)
            masks.append(binary[nonempty])
            kept_ious.append(iou_all[start:start + batch * 3][stable][nonempty])
            stabilities.append(stability[stable][nonempty])
        if on_batch is not None:
            on_batch(0.5 + 0.5 * min(1.0, (start + batch * 3) / len(iou_all)))
    if sum(len(m) for m in masks) == 0:
        empty = torch.zeros(0, h, w, dtype=torch.bool, device=device)
        return AutomaticMasks(empty, torch.zeros(0, device=device), torch.zeros(0, device=device))

    # 3. duplicates
    with torch.inference_mode():
        all_masks = torch.cat(masks)
        all_ious = torch.cat(kept_ious)
        all_stability = torch.cat(stabilities)
        boxes = batched_mask_to_box(all_masks).float()
        keep = batched_nms(boxes, all_ious, torch.zeros_like(all_ious, dtype=torch.long), box_nms_thresh)
    return AutomaticMasks(all_masks[keep], all_ious[keep], all_stability[keep])


def predict_from_prompts(
    predictor: SamPredictor,
    prompts: list[FastPrompts],  # in the embedded image's pixel coordinates
    autocast: bool,
) -> tuple[torch.Tensor, torch.Tensor]:  # masks [B, 3, h, w] bool, predicted IoU [B, 3] float32
    """SAM's three candidate masks for each prompt set, all prompt sets in one decoder call.

    Prompt sets have different point counts; shorter ones are padded with SAM's "not a point" label (-1). The
    decoder runs under autocast when asked (its inputs mix float32 coordinates and the weights' dtype); the
    upsampling of its logits always runs in float32.
    """
    device = predictor.device
    h, w = predictor.original_size
    count = max(len(p.positive) + len(p.negative) for p in prompts)
    coords = torch.zeros(len(prompts), count, 2, dtype=torch.float32)
    labels = torch.full((len(prompts), count), -1, dtype=torch.int)
    boxes = torch.zeros(len(prompts), 4, dtype=torch.float32)
    for i, p in enumerate(prompts):
        points = np.concatenate([p.positive, p.negative]).astype(np.float32)
        coords[i, :len(points)] = torch.from_numpy(points)
        labels[i, :len(p.positive)] = 1
        labels[i, len(p.positive):len(points)] = 0
        boxes[i] = torch.tensor(p.box)
    coords = predictor.transform.apply_coords_torch(coords.to(device), (h, w))
    boxes = predictor.transform.apply_boxes_torch(boxes.to(device), (h, w))
    model = predictor.model
    with torch.inference_mode():
        with torch.autocast(device.type, dtype=torch.float16, enabled=autocast):  # SamPredictor.predict_torch's steps
            sparse, dense = model.prompt_encoder(points=(coords, labels.to(device)), boxes=boxes, masks=None)
            low_res, iou_pred = model.mask_decoder(
                image_embeddings=predictor.features, image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True,
            )
        # upsampled in float32: in fp16 the logits' sign, which is the mask, flips on faint borders
        masks = model.postprocess_masks(low_res.float(), predictor.input_size, predictor.original_size)
    return masks > model.mask_threshold, iou_pred.float()
