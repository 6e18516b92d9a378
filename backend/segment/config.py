"""Settings of one segmentation run (documented defaults; checked on construction)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BadInputError
from ..models.catalog import DEFAULT_SAM_VARIANT, SAM_VARIANTS
from ..models.mode import ModelMode
from .sam3_config import DEFAULT_SEGMENTER, Sam3SegmentConfig, check_segmenter

# CLIPSeg heatmap cut (sigmoid probability) that makes the binary region C. 0.4 rather than 0.5: CLIPSeg's
# probabilities are soft and fall off well inside an object's border, so 0.5 tends to cover only its core;
# SAM supplies the exact border anyway, and in paper mode C only has to cover most of a SAM mask. It is a
# chosen value, not one tuned here: `eval-phrasecut --threshold …` is the way to tune it on real weights.
DEFAULT_THRESHOLD = 0.4
MAX_PROMPT_CHARS = 1000


@dataclass(frozen=True)
class SegmentConfig:
    mode: str = "fast"  # "fast" (SAM prompted from the heatmap) or "paper" (automatic masks + fusion)
    sam_variant: str = DEFAULT_SAM_VARIANT  # one of SAM_VARIANTS
    threshold: float = DEFAULT_THRESHOLD  # heatmap > threshold → C (see DEFAULT_THRESHOLD)
    paper_keep: float = 0.5  # paper mode keeps a SAM mask S when |S ∩ C| / |S| > paper_keep (strictly)
    models: ModelMode | None = None  # None → $IMAGE_TO_3D_MODELS, else real
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    half: bool = True  # half precision on CUDA (ignored on CPU): fp16 weights, or fp16 autocast (half_weights)
    # CUDA speed-ups (ignored on CPU, where the models run as loaded). All three off gives the earlier path
    # (fp32 weights under autocast, hand-written attention, eager), kept for A/B timing: scripts/profile_segment.py
    half_weights: bool = True  # with half: weights converted to fp16 once, at load; False: fp32 weights + autocast
    sdpa_attention: bool = True  # SAM's image-encoder attention through F.scaled_dot_product_attention
    cuda_graphs: bool = True  # CLIPSeg's forward and SAM's image encoder replayed from CUDA graphs (not with
    #                           autocast: graphs run with fp16 weights, or fp32 weights when half is off); with
    #                           segmenter sam3, its vision pass, text encoder and decoding (sam3_static)
    model_dir: str | None = None  # folder holding model files (see backend.models.hub.fetch_snapshot)
    max_side: int = 1024  # working resolution: photos are downscaled to this longest side for the models;
    #                       SAM sees 1024 px anyway, so more only costs time. The mask is returned full size.
    # paper mode: SAM's automatic grid. 16x16 = 256 points instead of SAM's 32x32: 4x fewer decoder runs
    # for the ≤ 1 s budget; objects a person names in a photo are rarely smaller than a 1/16 grid cell.
    points_per_side: int = 16
    points_per_batch: int = 128  # grid points per decoder call
    pred_iou_thresh: float | None = None  # SAM's own mask-quality filters; None → SAM's defaults (0.88 /
    stability_score_thresh: float | None = None  # 0.95) for real weights, 0 (off) for random weights
    box_nms_thresh: float = 0.7  # SAM's default duplicate suppression
    max_masks: int | None = None  # keep at most this many candidates (highest predicted IoU) before upsampling
    #                               them; None: every one that passes the filters. The benchmark pins the count.
    # fast mode: prompts taken from the heatmap
    positive_points: int = 3  # heatmap peaks inside the main region
    negative_points: int = 2  # lowest-score spots, well away from the region
    # which model family cuts the object out: "clipseg-sam" (everything above) or "sam3" (settings in `sam3`;
    # of the above only models, device, half, model_dir and max_side apply)
    segmenter: str = DEFAULT_SEGMENTER
    sam3: Sam3SegmentConfig = field(default_factory=Sam3SegmentConfig)

    def __post_init__(self) -> None:
        check_segmenter(self.segmenter)
        if self.mode not in ("fast", "paper"):
            raise BadInputError(f"unknown segmentation mode {self.mode!r} (choose fast or paper)")
        if self.sam_variant not in SAM_VARIANTS:
            raise BadInputError(f"unknown SAM variant {self.sam_variant!r} (choose {', '.join(SAM_VARIANTS)})")
        if not 0.0 <= self.threshold <= 1.0:
            raise BadInputError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.paper_keep < 1.0:
            raise BadInputError(f"paper_keep must be in [0, 1), got {self.paper_keep}")
        if self.max_side < 64:
            raise BadInputError(f"max_side must be at least 64 px, got {self.max_side}")
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise BadInputError(f"points_per_side/points_per_batch must be ≥ 1, got "
                                f"{self.points_per_side}/{self.points_per_batch}")
        if self.max_masks is not None and self.max_masks < 1:
            raise BadInputError(f"max_masks must be ≥ 1 (or None for no cap), got {self.max_masks}")
        if self.positive_points < 1 or self.negative_points < 0:
            raise BadInputError(f"need ≥ 1 positive and ≥ 0 negative points, got "
                                f"{self.positive_points}/{self.negative_points}")


def check_prompts(prompts) -> list[str]:
    """Prompts as a list of stripped strings; BadInputError for none, empty or over-long ones."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise BadInputError("no prompt given")
    checked = []
    for prompt in prompts:
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadInputError(f"empty prompt: {prompt!r}")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadInputError(f"prompt too long: {len(prompt)} characters (at most {MAX_PROMPT_CHARS})")
        try:  # bytes that are not UTF-8 reach us from argv as lone surrogates, which nothing can encode
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            shown = prompt.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
            raise BadInputError(f"the prompt is not valid UTF-8 text: {shown[:80]}") from None
        checked.append(prompt.strip())
    return checked
