"""CLIPSeg heatmaps: every prompt of one image in one batched forward pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.clipseg import MAX_PROMPT_TOKENS, ClipSegModels, clipseg_logits


def compute_heatmaps(
    clipseg: ClipSegModels,
    image: torch.Tensor,  # [3, h, w] float32 in [0, 1], on the model's device
    prompts: Sequence[str],
    autocast: bool = False,  # fp16 autocast (CUDA, float32 weights: the earlier path; see SegmentConfig.half_weights)
) -> torch.Tensor:  # [P, h, w] float32 probabilities (sigmoid of CLIPSeg's logits)
    """One forward of CLIPSegForImageSegmentation over all prompts; logits upsampled to (h, w), then sigmoid.

    The image is squash-resized to the model's square input and normalised as its preprocessor_config says.
    Prompts longer than CLIP's 77-token context are truncated by the tokenizer (non-ASCII text is fine:
    CLIP's tokenizer is byte-level). Where the model has CUDA graphs (``prepare_clipseg``) the tokens are padded
    to the full 77, so each prompt count has one shape, and go without a padding mask: neither changes what the
    model computes, as CLIP's text attention is causal and CLIPSeg reads only the first end-of-text token.
    Elsewhere they are padded to the longest, with the mask, as before.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3, h, w], got {tuple(image.shape)}")
    _, height, width = image.shape
    device = image.device
    size = clipseg.image_size
    pixels = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(clipseg.image_mean, device=device, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(clipseg.image_std, device=device, dtype=pixels.dtype).view(1, 3, 1, 1)
    pixels = ((pixels - mean) / std).expand(len(prompts), -1, -1, -1).contiguous()
    graphed = clipseg.graphs is not None and device.type == "cuda" and not autocast
    tokens = clipseg.tokenizer(list(prompts), padding="max_length" if graphed else True, truncation=True,
                               max_length=MAX_PROMPT_TOKENS, return_tensors="pt")
    input_ids = tokens["input_ids"].to(device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
        if graphed:  # no padding mask needed (see clipseg_logits)
            logits = clipseg.graphs(input_ids, pixels)
        else:
            logits = clipseg_logits(clipseg.model, input_ids, pixels, tokens["attention_mask"].to(device))
    logits = logits.float().reshape(len(prompts), 1, logits.shape[-2], logits.shape[-1])
    logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return torch.sigmoid(logits[:, 0])
