"""Text-guided segmentation of one image for one or many prompts (docs/design.md §1).

Per image, whatever the number of prompts: the photo is scaled once to the working resolution, CLIPSeg
runs once over all prompts (one batched forward), SAM's image encoder runs once, and in paper mode SAM's
automatic masks are generated once (they do not depend on the prompt). Only the fusion (paper) or the
mask decoder call (fast; all prompts in one call) is per prompt. Loaded models stay in memory
(``backend.models.loaded``), so a second call skips loading.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor

from ..device import resolve_device
from ..errors import NothingMatchedError
from ..images import LoadedImage, fit_within, resize_mask, resize_rgb, to_uint8
from ..job_control import JobControl, ensure_control
from ..models.mode import ModelMode, resolve_model_mode
from ..out_of_memory import out_of_memory_error
from .config import SegmentConfig, check_prompts
from .fast_prompts import derive_prompts
from .fusion import fuse_paper, pick_best_candidate
from .heatmap import compute_heatmaps
from .loading import Precision, load_clipseg_cached, load_sam_cached
from .result import FastPrompts, SegmentationResult
from .sam_masks import SAM_DEFAULT_PRED_IOU, SAM_DEFAULT_STABILITY, embed_image, generate_masks, predict_from_prompts
from .slug import unique_slugs

PROMPT_HEATMAP_SIDE = 256  # fast mode derives its points on the heatmap scaled to this longest side


@dataclass(frozen=True)
class ModelInfo:
    """Which weights produced a result (written to segment.json)."""

    mode: ModelMode
    clipseg_id: str
    clipseg_revision: str
    sam_variant: str
    sam_id: str
    sam_sha256: str
    device: str
    half: bool  # half precision on CUDA (fp16 weights, or fp16 autocast over fp32 weights)


def segment_image(image: LoadedImage, prompts: Sequence[str], config: SegmentConfig,
                  control: JobControl | None = None) -> list[SegmentationResult]:
    """Segment ``image`` for every prompt; one result per prompt, in order.

    Raises NothingMatchedError (exit 3) naming each prompt nothing matched, with its best score; the call
    fails as a whole so that a folder of outputs never holds only some of the prompts.
    """
    results, _ = run_segmentation(image, prompts, config, control)
    return results


def run_segmentation(image: LoadedImage, prompts: Sequence[str], config: SegmentConfig,
                     control: JobControl | None = None, allow_empty: bool = False,
                     ) -> tuple[list[SegmentationResult], ModelInfo]:
    """:func:`segment_image` plus a description of the models used.

    ``allow_empty`` (for evaluation): a prompt nothing matched gets an all-False mask and score 0 instead
    of failing the call. CUDA out of memory in any step becomes exit 5 naming the step, with the cached
    models dropped so a retry starts from a free card.
    """
    control = ensure_control(control)
    try:
        if config.segmenter == "sam3":
            from .sam3_path import run_sam3_segmentation

            return run_sam3_segmentation(image, prompts, config, control, allow_empty)
        return _run_segmentation(image, prompts, config, control, allow_empty)
    except torch.cuda.OutOfMemoryError as exc:
        raise out_of_memory_error(f"segmentation ({control.stage or 'start'})") from exc


def _run_segmentation(image: LoadedImage, prompts: Sequence[str], config: SegmentConfig, control: JobControl,
                      allow_empty: bool) -> tuple[list[SegmentationResult], ModelInfo]:
    # 1. check inputs, pick device and precision
    prompts = check_prompts(prompts)
    mode = resolve_model_mode(str(config.models) if config.models else None)
    device = resolve_device(config.device)
    precision = Precision.of(config, device)
    autocast = precision.decoder_autocast  # SAM's decoder; CLIPSeg and SAM's encoder: precision.encoder_autocast
    clock = _Clock(device)

    # 2. models (cached across calls; on CUDA converted and patched once, see loading.py)
    control.report("load models", 0.0)
    clipseg = load_clipseg_cached(mode, config, device)
    sam = load_sam_cached(mode, config, device)
    info = ModelInfo(mode, clipseg.model_id, clipseg.revision, sam.variant, sam.model_id, sam.sha256,
                     str(device), autocast)
    shared = {"load_models": clock.lap()}

    # 3. the working image: the photo scaled down once, early, for both models
    height, width = image.size
    work_h, work_w = fit_within(height, width, config.max_side)
    work = resize_rgb(image.rgb, work_h, work_w)
    image_t = torch.from_numpy(np.ascontiguousarray(work)).permute(2, 0, 1).to(device)
    shared["prepare_image"] = clock.lap()

    # 4. CLIPSeg heatmaps for all prompts: one batched forward
    control.report("clipseg", 0.0, f"{len(prompts)} prompt(s)")
    heatmaps = compute_heatmaps(clipseg, image_t, prompts, precision.encoder_autocast)  # [P, h, w]
    shared["clipseg"] = clock.lap()

    # 5. SAM image embedding, once
    control.report("sam embedding", 0.0)
    predictor = SamPredictor(sam.model)
    embed_image(predictor, to_uint8(work), precision.encoder_autocast)
    shared["sam_embedding"] = clock.lap()

    # 6. masks per prompt
    sam_masks = None
    if config.mode == "paper":
        outcomes, sam_masks = _paper_masks(predictor, heatmaps, config, mode, autocast, control, clock, shared)
    else:
        outcomes = _fast_masks(predictor, heatmaps, config, autocast, clock, (height, width))

    # 7. nothing matched → one error naming every such prompt
    failed = [f"{prompt!r} ({outcome})" for prompt, outcome in zip(prompts, outcomes, strict=True) if isinstance(outcome, str)]
    if failed and not allow_empty:
        raise NothingMatchedError("nothing in the image matched " + "; ".join(failed))

    # 8. full-resolution masks and result records
    results = []
    amortised = {name: seconds / len(prompts) for name, seconds in shared.items()}
    for prompt, slug, heatmap, outcome in zip(prompts, unique_slugs(prompts), heatmaps, outcomes, strict=True):
        if isinstance(outcome, str):  # only with allow_empty
            outcome = (torch.zeros(heatmap.shape, dtype=torch.bool), 0.0, {}, {})
        mask_work, score, extras, own_seconds = outcome
        clock.lap()
        mask = resize_mask(mask_work.cpu().numpy(), height, width)
        timings = {**amortised, **own_seconds, "upsample_mask": clock.lap()}
        timings["total"] = sum(timings.values())
        results.append(SegmentationResult(
            prompt=prompt, slug=slug, mode=config.mode, mask=mask, score=score,
            heatmap=heatmap.cpu().numpy().astype(np.float32), working_size=(work_h, work_w),
            sam_masks=sam_masks, timings=timings, **extras,
        ))
    control.report("segment", 1.0)
    return results, info


def _paper_masks(predictor, heatmaps, config: SegmentConfig, mode: ModelMode, autocast: bool,
                 control: JobControl, clock, shared: dict) -> tuple[list, int]:
    """SAM's automatic masks once, then the fusion rule per prompt (see fusion.py); also how many masks SAM gave."""
    random_weights = mode.meaningless  # random quality heads: SAM's filters would drop every mask
    pred_iou = config.pred_iou_thresh if config.pred_iou_thresh is not None else (
        0.0 if random_weights else SAM_DEFAULT_PRED_IOU)
    stability = config.stability_score_thresh if config.stability_score_thresh is not None else (
        0.0 if random_weights else SAM_DEFAULT_STABILITY)
    control.report("sam masks", 0.0)
    automatic = generate_masks(
        predictor, config.points_per_side, config.points_per_batch, pred_iou, stability, config.box_nms_thresh,
        autocast, on_batch=lambda fraction: control.report("sam masks", fraction), max_masks=config.max_masks,
    )
    shared["sam_automatic_masks"] = clock.lap()
    outcomes = []
    mask_size = tuple(automatic.masks.shape[1:])
    for heatmap in heatmaps:
        if tuple(heatmap.shape) != mask_size:  # C at the masks' resolution
            heatmap = F.interpolate(heatmap[None, None], size=mask_size, mode="bilinear", align_corners=False)[0, 0]
        clip_region = heatmap > config.threshold
        fusion = fuse_paper(automatic.masks, clip_region, config.paper_keep)
        seconds = {"fusion": clock.lap()}
        if fusion.kept.numel() == 0:
            found = f"{len(automatic.masks)} SAM masks" if len(automatic.masks) else "SAM found no masks"
            outcomes.append(f"best score {fusion.best_score:.3f}, needs > {config.paper_keep}; {found}")
            continue
        extras = {
            "kept_masks": automatic.masks[fusion.kept].cpu().numpy(),
            "kept_scores": fusion.scores[fusion.kept].cpu().numpy().astype(np.float32),
        }
        outcomes.append((fusion.mask, fusion.union_score, extras, seconds))
    return outcomes, len(automatic.masks)


def _fast_masks(predictor, heatmaps, config: SegmentConfig, autocast: bool, clock,
                original_size: tuple[int, int]) -> list:
    """Box + points per prompt from its heatmap, SAM's decoder once for all prompts, best candidate by IoU."""
    work_h, work_w = heatmaps.shape[1:]
    small_h, small_w = fit_within(work_h, work_w, PROMPT_HEATMAP_SIDE)
    small = F.interpolate(heatmaps[:, None], size=(small_h, small_w), mode="area")[:, 0].cpu().numpy()
    to_work = (work_w / small_w, work_h / small_h)
    to_original = (original_size[1] / small_w, original_size[0] / small_h)
    derived: list[FastPrompts | None] = [
        derive_prompts(s, config.threshold, config.positive_points, config.negative_points) for s in small
    ]
    derive_seconds = clock.lap() / len(heatmaps)
    valid = [i for i, p in enumerate(derived) if p is not None]
    candidates = None
    if valid:
        candidates, _ = predict_from_prompts(predictor, [derived[i].scaled(*to_work) for i in valid], autocast)
    decode_seconds = clock.lap() / max(1, len(valid))
    outcomes = []
    for i, heatmap in enumerate(heatmaps):
        if derived[i] is None:
            outcomes.append(f"best heatmap score {float(heatmap.max()):.3f}, needs > {config.threshold}")
            continue
        clip_region = heatmap > config.threshold
        best, iou = pick_best_candidate(candidates[valid.index(i)], clip_region)
        mask = candidates[valid.index(i)][best]
        seconds = {"derive_prompts": derive_seconds, "sam_decode": decode_seconds, "pick_mask": clock.lap()}
        if not bool(mask.any()):
            outcomes.append("SAM's mask for it is empty")
            continue
        extras = {"prompts_used": derived[i].scaled(*to_original)}
        outcomes.append((mask, iou, extras, seconds))
    return outcomes


class _Clock:
    """Wall-clock laps that wait for queued GPU work, so each stage is charged its own time."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.last = time.perf_counter()

    def lap(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds
