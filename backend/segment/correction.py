"""Mask correction: the user's positive / negative points plus the current mask go back into SAM.

SAM's decoder takes three kinds of prompt at once: points, a box, and a low-resolution mask (the logits of an
earlier prediction). Feeding the current mask as that mask prompt makes SAM refine it rather than start over,
so one click adds or removes a part and leaves the rest. The image embedding of the last photo is kept, so a
second click on the same photo costs only a decoder call.

Frames, for the record (segment-anything 1.0):
- photo pixels, continuous (x right, y down; pixel (i, j) is the square [i, i+1) x [j, j+1), centre i+0.5)
- the working image: the photo scaled to ``SegmentConfig.max_side`` (as ``segment_image`` does)
- SAM's input frame: the working image scaled so its longer side is ``img_size`` (1024 for the real models),
  then padded at the bottom/right to an ``img_size`` square; ``SamPredictor`` maps points into it itself
- the mask prompt: that padded square at ``prompt_encoder.mask_input_size`` (256² for the real models)
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor

from ..device import resolve_device
from ..errors import BadInputError
from ..images import LoadedImage, fit_within, resize_mask, resize_rgb, to_uint8
from ..models.mode import resolve_model_mode
from .config import SegmentConfig
from .loading import Precision, load_sam_cached
from .sam_masks import embed_image

# Logit given to "inside" (+) and "outside" (-) of the current mask in SAM's mask prompt. SAM's own low-res
# logits for a confident mask sit around ±10…20; a clear but not saturating value lets the points win
# where they disagree with the mask.
MASK_PROMPT_LOGIT = 8.0

_EMBEDDED: dict[str, object] = {}  # "key" → str, "predictor" → SamPredictor: the last photo embedded
_EMBEDDED_LOCK = threading.Lock()


def correct_mask(image: LoadedImage, mask: np.ndarray, points: np.ndarray, labels: np.ndarray,
                 config: SegmentConfig | None = None) -> np.ndarray:
    """SAM's mask for ``image`` given the current ``mask`` and the user's points; [H, W] bool, the photo's size.

    mask:   [H, W] bool (or 0/1), the mask to correct, the photo's size
    points: [N, 2] float (x, y) in continuous photo pixels (see the module docstring), N ≥ 1
    labels: [N] int, 1 = this pixel belongs to the object, 0 = it does not
    """
    # 1. Check inputs.
    config = config or SegmentConfig()
    height, width = image.size
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise BadInputError(f"mask is {mask.shape[1] if mask.ndim == 2 else mask.shape}, the photo {width}x{height}")
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(points) == 0:
        raise BadInputError("no correction points: add at least one positive or negative point")
    if len(labels) != len(points):
        raise BadInputError(f"{len(points)} points but {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise BadInputError(f"point labels must be 1 (object) or 0 (not object), got {sorted(set(labels.tolist()))}")
    outside = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height)
    if outside.any():
        x, y = points[int(np.flatnonzero(outside)[0])]
        raise BadInputError(f"point ({x:g}, {y:g}) is outside the {width}x{height} photo")

    # 2. The photo at the working size, embedded once (kept for the next correction of the same photo).
    device = resolve_device(config.device)
    precision = Precision.of(config, device)
    autocast = precision.decoder_autocast
    work_h, work_w = fit_within(height, width, config.max_side)
    predictor = _embedded_predictor(image, (work_h, work_w), config, device, precision.encoder_autocast)

    # 3. Prompts in the working image's frame; the mask as SAM's low-resolution mask prompt.
    work_points = points * np.array([work_w / width, work_h / height], dtype=np.float32)
    mask_prompt = mask_prompt_logits(predictor, resize_mask(mask.astype(bool), work_h, work_w))
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
        masks, _, _ = predictor.predict(point_coords=work_points, point_labels=labels,
                                        mask_input=mask_prompt, multimask_output=False)
    return resize_mask(masks[0], height, width)


def mask_prompt_logits(predictor: SamPredictor, mask: np.ndarray) -> np.ndarray:
    """[1, m, m] float32: ``mask`` ([h, w] bool, the embedded image's size) as SAM's mask prompt logits.

    The mask is scaled like the image (longer side → img_size), padded like it (bottom/right, as outside),
    then area-averaged down to the prompt encoder's mask size and mapped to ±MASK_PROMPT_LOGIT.
    """
    model = predictor.model
    side = model.image_encoder.img_size
    in_h, in_w = predictor.input_size
    prompt_h, prompt_w = model.prompt_encoder.mask_input_size
    frame = torch.from_numpy(mask.astype(np.float32))[None, None]
    frame = F.interpolate(frame, size=(in_h, in_w), mode="bilinear", align_corners=False)
    frame = F.pad(frame, (0, side - in_w, 0, side - in_h))
    coverage = F.interpolate(frame, size=(prompt_h, prompt_w), mode="area")[0]  # [1, m, m] in [0, 1]
    return ((coverage * 2 - 1) * MASK_PROMPT_LOGIT).numpy().astype(np.float32)


def _embedded_predictor(image: LoadedImage, work_size: tuple[int, int], config: SegmentConfig, device,
                        autocast: bool) -> SamPredictor:
    mode = resolve_model_mode(str(config.models) if config.models else None)
    sam = load_sam_cached(mode, config, device)  # segment_image's loader: a loaded SAM is shared
    work = to_uint8(resize_rgb(image.rgb, *work_size))
    key = f"{id(sam.model)}:{work.shape}:{hashlib.sha256(work.tobytes()).hexdigest()}:{autocast}"
    with _EMBEDDED_LOCK:
        if _EMBEDDED.get("key") != key:
            predictor = SamPredictor(sam.model)
            embed_image(predictor, work, autocast)
            _EMBEDDED.update(key=key, predictor=predictor)
        return _EMBEDDED["predictor"]


def forget_embedding() -> None:
    """Drop the kept image embedding (frees its memory; the next correction embeds again)."""
    with _EMBEDDED_LOCK:
        _EMBEDDED.clear()
