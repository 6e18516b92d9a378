"""The segment path with ``SegmentConfig.segmenter == "sam3"``: SAM 3's answer as the usual records.

``run_segmentation`` hands over here, so ``segment``, ``generate``, the batch runner and ``eval-phrasecut``
all get SAM 3 through the one entry point. Each :class:`SegmentationResult` carries the chosen mask, its
score, SAM 3's semantic probability as the heatmap, and every instance as ``kept_masks`` / ``kept_scores``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..device import resolve_device
from ..errors import NothingMatchedError
from ..images import LoadedImage
from ..job_control import JobControl
from ..models.mode import resolve_model_mode
from .config import SegmentConfig, check_prompts
from .result import SegmentationResult
from .sam3_segmenter import segment_concepts
from .slug import unique_slugs


def run_sam3_segmentation(image: LoadedImage, prompts: Sequence[str], config: SegmentConfig, control: JobControl,
                          allow_empty: bool = False):
    """(results, ModelInfo) like ``backend.segment.api.run_segmentation``, by SAM 3 (with ``config.sam3.boxes``)."""
    from .api import ModelInfo  # api imports this module lazily; importing it back here avoids a cycle

    prompts = check_prompts(prompts)
    mode = resolve_model_mode(str(config.models) if config.models else None)
    device = resolve_device(config.device)
    control.report("sam3", 0.0, f"{len(prompts)} prompt(s)")
    run = segment_concepts(image, prompts, config.sam3, mode, device, config.half, config.max_side,
                           config.model_dir, config.sam3.boxes, graphs=config.cuda_graphs)
    failed = [f"{p!r} ({why})" for p, why in zip(prompts, run.failures, strict=True) if why]
    if failed and not allow_empty:
        raise NothingMatchedError("nothing in the image matched " + "; ".join(failed))
    amortised = {name: seconds / len(prompts) for name, seconds in run.shared_seconds.items()}
    amortised["sam3_decode"] = run.decode_seconds / len(prompts)
    results = []
    for prompt, slug, seg, mask, score in zip(prompts, unique_slugs(prompts), run.segmentations, run.masks,
                                              run.scores, strict=True):
        if mask is None:  # only with allow_empty
            mask = np.zeros(image.size, dtype=bool)
        timings = {**amortised, "total": sum(amortised.values())}
        kept = np.stack([i.mask for i in seg.instances]) if seg.instances else None
        results.append(SegmentationResult(
            prompt=prompt, slug=slug, mode="sam3", mask=mask, score=score, heatmap=seg.semantic,
            working_size=seg.working_size, kept_masks=kept,
            kept_scores=np.array([i.score for i in seg.instances], dtype=np.float32) if seg.instances else None,
            timings=timings,
        ))
    control.report("segment", 1.0)
    dtype_half = device.type == "cuda" and config.half
    info = ModelInfo(mode, "", "", "sam3", _model_id(mode), "", str(device), dtype_half)
    return results, info


def _model_id(mode) -> str:
    from ..models.sam3 import SAM3_REPO_ID, SAM3_REVISION

    return f"{SAM3_REPO_ID}@{SAM3_REVISION}" if not mode.meaningless else f"sam3 {mode.value} (random weights)"
