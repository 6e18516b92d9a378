"""SAM 3 concept segmentation: every instance of a phrase in a photo, with its score.

One photo costs one vision pass (``Sam3Model.get_vision_features``); each phrase then costs only the text
encoder, the DETR encoder/decoder and the mask head, run against those features (phrases in batches of
``Sam3SegmentConfig.prompts_per_batch``, the features expanded, not copied, to the batch).

Scores are SAM 3's own: an instance's score is sigmoid(its logit) × the presence score, the presence score
being the model's probability that the phrase names anything in the photo. A presence below the threshold,
or no instance above its threshold, is "nothing matched" (exit 3) with the scores in the message.

Refinement (what transformers 5.24's ``Sam3Model`` allows): boxes, each positive or negative, go in with the
phrase as exemplar prompts (``input_boxes`` / ``input_boxes_labels``; the geometry encoder), so a box drawn
around a wanted object or an unwanted look-alike changes which instances come out. ``Sam3Model`` takes no
points; a click on a pixel is refined by the existing SAM correction (``backend.segment.correction``), which
works on any mask. SAM 3's interactive tracker (``Sam3TrackerModel``: points, boxes and a mask prompt on one
instance) shares the vision backbone in the original code but is a separate model in transformers; wiring it
is left for later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError, NothingMatchedError
from ..images import LoadedImage, fit_within, resize_mask, resize_rgb
from ..models.loaded import ModelKey, get_or_load
from ..models.mode import ModelMode
from ..models.sam3 import MAX_PROMPT_TOKENS, Sam3Access, Sam3Models, load_sam3
from .sam3_compile import compile_backend_for
from .sam3_config import BoxPrompt, InstanceChoice, Sam3SegmentConfig
from .sam3_readback import bools_to_host, read_answer, threshold_masks
from .sam3_static import StaticPromptDecoder, static_decoder_for, supports_static_decoding


@dataclass(frozen=True)
class Sam3Instance:
    score: float  # sigmoid(instance logit) × presence, in [0, 1]
    mask: np.ndarray  # [h, w] bool at the working resolution (ConceptSegmentation.working_size)
    box: tuple[float, float, float, float]  # XYXY in photo pixels, SAM 3's own box (not the mask's extent)


@dataclass(frozen=True)
class ConceptSegmentation:
    """SAM 3's answer for one phrase."""

    prompt: str
    presence: float  # probability that the phrase names something in the photo
    instances: tuple[Sam3Instance, ...]  # best first; those above the instance threshold, at most max_instances
    semantic: np.ndarray  # [h, w] float32 SAM 3's semantic (all-instances) probability at the working size
    working_size: tuple[int, int]  # (h, w)
    best_score: float  # the best instance score before the threshold (for "nothing matched" messages)

    def choose(self, choice: InstanceChoice) -> tuple[np.ndarray, float]:
        """([h, w] bool, score) for ``choice``; the union scores as its best instance."""
        if not self.instances:
            raise NothingMatchedError(f"nothing in the image matched {self.prompt!r} (SAM 3 presence score "
                                      f"{self.presence:.3f}, best instance score {self.best_score:.3f})")
        if choice.kind == "union":
            return np.logical_or.reduce([i.mask for i in self.instances]), self.instances[0].score
        rank = 1 if choice.kind == "best" else choice.rank
        if rank > len(self.instances):
            raise BadInputError(f"instance {rank} asked for, but SAM 3 found {len(self.instances)} instance(s) "
                                f"of {self.prompt!r}")
        chosen = self.instances[rank - 1]
        return chosen.mask, chosen.score


class ConceptSegmenter:
    """SAM 3 on one photo at a time: :meth:`set_image` runs the vision pass, :meth:`segment` the phrases."""

    def __init__(self, models: Sam3Models, config: Sam3SegmentConfig, device: torch.device,
                 dtype: torch.dtype = torch.float32, graphs: bool = True):
        """graphs: with ``config.static_decoding`` on CUDA, replay from CUDA graphs (SegmentConfig.cuda_graphs)."""
        self.models = models
        self.config = config
        self.device = device
        self.dtype = dtype
        self.presence_threshold, self.instance_threshold = config.thresholds(models.mode.meaningless)
        self._features = None
        self._photo_size: tuple[int, int] | None = None
        self._working_size: tuple[int, int] | None = None
        # the static path (backend.segment.sam3_static): same numbers, cached text, CUDA graphs, one host copy
        self._static: StaticPromptDecoder | None = None
        if config.static_decoding and supports_static_decoding(models.model):
            backend = compile_backend_for(device, config.compile_mode)
            self._static = static_decoder_for(models, graphs=graphs, compile_backend=backend,
                                              compile_mode=config.compile_mode)

    @property
    def static_decoder(self) -> StaticPromptDecoder | None:
        """The static decoder this segmenter runs (its graphs, text cache and compiled calls), None if plain."""
        return self._static

    def set_image(self, rgb: np.ndarray, photo_size: tuple[int, int] | None = None) -> None:
        """Run the vision encoder once on ``rgb`` ([h, w, 3] float32 in [0, 1], the working image).

        photo_size: (H, W) of the photo ``rgb`` was scaled from (boxes are given and returned in its pixels);
        default: rgb's own size.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise BadInputError(f"expected an [h, w, 3] image, got shape {rgb.shape}")
        side = self.models.image_size
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(self.device)
        image = F.interpolate(image.float(), size=(side, side), mode="bilinear", align_corners=False)
        mean = torch.tensor(self.models.image_mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.models.image_std, device=self.device).view(1, 3, 1, 1)
        pixels = ((image - mean) / std).to(self.dtype)
        with torch.inference_mode():
            if self._static is not None:
                self._features = self._static.vision_features(pixels)
            else:
                self._features = self.models.model.get_vision_features(pixel_values=pixels)
        self._working_size = (int(rgb.shape[0]), int(rgb.shape[1]))
        self._photo_size = photo_size or self._working_size

    def segment(self, prompts: Sequence[str], boxes: Sequence[BoxPrompt] = ()) -> list[ConceptSegmentation]:
        """Every instance of each phrase in the photo of the last :meth:`set_image` (no vision pass here)."""
        if self._features is None:
            raise RuntimeError("ConceptSegmenter.segment called before set_image")
        results = []
        step = self.config.prompts_per_batch
        for start in range(0, len(prompts), step):
            results.extend(self._segment_batch(list(prompts[start:start + step]), boxes))
        return results

    def _segment_batch(self, prompts: list[str], boxes: Sequence[BoxPrompt]) -> list[ConceptSegmentation]:
        if self._static is not None and not boxes:  # exemplar boxes need the geometry encoder: the plain forward
            return self._segment_batch_static(prompts)
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        count = len(prompts)
        tokens = self.models.tokenizer(prompts, padding="max_length", truncation=True, max_length=MAX_PROMPT_TOKENS,
                                       return_tensors="pt").to(self.device)
        features = Sam3VisionEncoderOutput(  # the one photo's features seen by every phrase: a view, no copy
            last_hidden_state=self._features.last_hidden_state.expand(count, -1, -1),
            fpn_hidden_states=tuple(t.expand(count, -1, -1, -1) for t in self._features.fpn_hidden_states),
            fpn_position_encoding=tuple(t.expand(count, -1, -1, -1) for t in self._features.fpn_position_encoding),
        )
        box_inputs = self._box_inputs(boxes, count)
        with torch.inference_mode():
            out = self.models.model(vision_embeds=features, input_ids=tokens["input_ids"],
                                    attention_mask=tokens["attention_mask"], **box_inputs)
        presence = out.presence_logits.float().sigmoid()[:, 0]  # [P]
        scores = (out.pred_logits.float().sigmoid() * presence[:, None]).cpu()  # [P, Q]: one copy, no per-item syncs
        presence = presence.cpu()
        h, w = self._working_size
        semantic = F.interpolate(out.semantic_seg.float(), size=(h, w), mode="bilinear", align_corners=False)
        semantic = semantic[:, 0].sigmoid().cpu().numpy().astype(np.float32)
        return [self._instances(prompts[i], float(presence[i]), scores[i], out.pred_masks[i], out.pred_boxes[i],
                                semantic[i]) for i in range(count)]

    def _instances(self, prompt: str, presence: float, scores: torch.Tensor, masks: torch.Tensor,
                   boxes: torch.Tensor, semantic: np.ndarray) -> ConceptSegmentation:
        """scores [Q] (CPU); masks [Q, m, m] logits; boxes [Q, 4] XYXY in [0, 1] of the squashed input."""
        h, w = self._working_size
        big_h, big_w = self._photo_size
        order = torch.argsort(scores, descending=True)
        keep = order[scores[order] > self.instance_threshold][: self.config.max_instances]
        if presence < self.presence_threshold:
            keep = keep[:0]
        instances: tuple[Sam3Instance, ...] = ()
        if len(keep):
            on_device = keep.to(masks.device)
            bits = threshold_masks(masks[on_device], (h, w), self.config.mask_threshold)
            binary = bools_to_host(bits, packed=bits.device.type == "cuda")
            scale = torch.tensor([big_w, big_h, big_w, big_h], dtype=torch.float32)
            pixel_boxes = (boxes[on_device].float().cpu() * scale).tolist()
            instances = tuple(Sam3Instance(float(scores[q]), binary[k], tuple(pixel_boxes[k]))
                              for k, q in enumerate(keep.tolist()))
        return ConceptSegmentation(prompt, presence, instances, semantic, (h, w), float(scores[order[0]]))

    def _segment_batch_static(self, prompts: list[str]) -> list[ConceptSegmentation]:
        """:meth:`_segment_batch` through the static decoder, its answer read back in one copy on CUDA
        (``backend.segment.sam3_readback``)."""
        with torch.inference_mode():
            text, valid = self._static.text_features(prompts, self.device)
            raw = self._static.decode(text, valid, self._features)
            answer = read_answer(raw, min(self.config.max_instances, raw.logits.shape[1]), self._working_size,
                                 self.config.mask_threshold, masks_with_scores=self.device.type == "cuda")
            keep = (answer.scores > self.instance_threshold) & (answer.presence[:, None] >= self.presence_threshold)
            binary = answer.kept_masks(keep)
        h, w = self._working_size
        big_h, big_w = self._photo_size
        scale = torch.tensor([big_w, big_h, big_w, big_h], dtype=torch.float32)
        results, start = [], 0
        for i, prompt in enumerate(prompts):
            kept = int(keep[i].sum())
            pixel_boxes = (answer.boxes[i, :kept] * scale).tolist()
            instances = tuple(Sam3Instance(float(answer.scores[i, k]), binary[start + k], tuple(pixel_boxes[k]))
                              for k in range(kept))
            start += kept
            results.append(ConceptSegmentation(prompt, float(answer.presence[i]), instances, answer.semantic[i],
                                               (h, w), float(answer.scores[i, 0])))
        return results

    def _box_inputs(self, boxes: Sequence[BoxPrompt], count: int) -> dict:
        """Boxes as Sam3Model wants them: [P, B, 4] (cx, cy, w, h) in [0, 1] and labels [P, B] (1 / 0)."""
        if not boxes:
            return {}
        big_h, big_w = self._photo_size
        rows, labels = [], []
        for prompt in boxes:
            x0, y0, x1, y1 = (float(v) for v in prompt.box)
            if not (0 <= x0 < x1 <= big_w and 0 <= y0 < y1 <= big_h):
                raise BadInputError(f"box {prompt.box} is not a box inside the {big_w}x{big_h} photo "
                                    "(XYXY, x0 < x1, y0 < y1)")
            rows.append([(x0 + x1) / 2 / big_w, (y0 + y1) / 2 / big_h, (x1 - x0) / big_w, (y1 - y0) / big_h])
            labels.append(1 if prompt.positive else 0)
        box_t = torch.tensor(rows, dtype=self.dtype, device=self.device)[None].expand(count, -1, -1)
        label_t = torch.tensor(labels, dtype=torch.long, device=self.device)[None].expand(count, -1)
        return {"input_boxes": box_t, "input_boxes_labels": label_t}


# --- models as the segment path uses them ------------------------------------------------------------------

def sam3_dtype(config: Sam3SegmentConfig, device: torch.device, half: bool) -> torch.dtype:
    """float32 on the CPU; on CUDA with ``half`` the configured half type (bf16 by default)."""
    if device.type != "cuda" or not half:
        return torch.float32
    return getattr(torch, config.half_dtype)


def load_sam3_cached(mode: ModelMode, config: Sam3SegmentConfig, device: torch.device, dtype: torch.dtype,
                     model_dir: str | None = None) -> Sam3Models:
    """SAM 3 loaded once per process (``backend.models.loaded``), converted to ``dtype`` on ``device``."""
    key = ModelKey("sam3", mode.value, "", str(device), str(dtype).removeprefix("torch."), model_dir or "")
    access = Sam3Access(config.accept_license, config.hf_token)

    def load() -> Sam3Models:
        models = load_sam3(mode, "cpu", local_dir=model_dir, access=access)
        models.model.to(device=device, dtype=dtype)  # per tensor on the way: no second full copy on the card
        return models

    return get_or_load(key, load)


@dataclass(frozen=True)
class Sam3Run:
    """One photo's SAM 3 segmentation: per phrase its concept result, the chosen mask and the timings."""

    segmentations: list[ConceptSegmentation]
    masks: list[np.ndarray | None]  # [H, W] bool at the photo's size; None where nothing matched
    scores: list[float]
    failures: list[str]  # "" where the phrase matched, else why not (with the scores)
    # model loading, the image and the one vision pass; "sam3_compile": torch.compile's first calls, when this
    # run paid for them (once per process; backend.segment.sam3_compile)
    shared_seconds: dict[str, float]
    decode_seconds: float  # all phrases' decoding (divide by the phrase count for a per-phrase share)


def segment_concepts(image: LoadedImage, prompts: Sequence[str], config: Sam3SegmentConfig, mode: ModelMode,
                     device: torch.device, half: bool, max_side: int, model_dir: str | None = None,
                     boxes: Sequence[BoxPrompt] = (), graphs: bool = True) -> Sam3Run:
    """Load (cached), one vision pass on the photo scaled to ``max_side``, every phrase, the chosen masks."""
    # 1. models
    clock = time.perf_counter()
    dtype = sam3_dtype(config, device, half)
    models = load_sam3_cached(mode, config, device, dtype, model_dir)
    shared = {"load_models": _lap(device, clock)}

    # 2. the one vision pass
    clock = time.perf_counter()
    height, width = image.size
    work = resize_rgb(image.rgb, *fit_within(height, width, max_side))
    segmenter = ConceptSegmenter(models, config, device, dtype, graphs)
    segmenter.set_image(work, photo_size=(height, width))
    shared["sam3_vision"] = _lap(device, clock)

    # 3. all phrases against it (the first prompt of a process may compile first: timed apart)
    decoder = segmenter.static_decoder
    compiled_before = decoder.compile_seconds if decoder is not None else 0.0
    clock = time.perf_counter()
    segmentations = segmenter.segment(prompts, boxes)
    decode = _lap(device, clock)
    compiled = (decoder.compile_seconds if decoder is not None else 0.0) - compiled_before
    if compiled > 0:
        shared["sam3_compile"] = compiled
        decode = max(decode - compiled, 0.0)

    # 4. the instance the user chose, at the photo's size
    masks, scores, failures = [], [], []
    for seg in segmentations:
        failure = _failure(seg, segmenter)
        mask, score = (None, 0.0)
        if not failure:
            mask_work, score = seg.choose(config.instance)
            if not mask_work.any():
                failure = "SAM 3's mask for it is empty"
            elif config.instance.kind == "union":  # the union of photo-size instance masks: exactly what the
                # saved instance files give when "all of them" is chosen later (backend.segment.instances)
                mask = np.logical_or.reduce([resize_mask(i.mask, height, width) for i in seg.instances])
            else:
                mask = resize_mask(mask_work, height, width)
        masks.append(mask)
        scores.append(score)
        failures.append(failure)
    return Sam3Run(segmentations, masks, scores, failures, shared, decode)


def _failure(seg: ConceptSegmentation, segmenter: ConceptSegmenter) -> str:
    if seg.presence < segmenter.presence_threshold:
        return f"SAM 3 presence score {seg.presence:.3f}, needs ≥ {segmenter.presence_threshold:g}"
    if not seg.instances:
        return (f"SAM 3 presence score {seg.presence:.3f} but best instance score {seg.best_score:.3f}, "
                f"needs > {segmenter.instance_threshold:g}")
    return ""


def _lap(device: torch.device, start: float) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
