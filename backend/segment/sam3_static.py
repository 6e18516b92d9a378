"""SAM 3's prompt-dependent half with fixed shapes and no host syncs, so CUDA graphs can replay it.

transformers' ``Sam3Model.forward`` is correct but launch-bound at one photo: per prompt it runs ~2,400 small
ops (the tiny config on the CPU; the real depth has far more), and it talks to the host several times per call
(``Sam3DetrEncoder`` builds ``spatial_shapes`` from a Python list on the device; each of the six decoder layers
then makes ``arange`` from those device scalars, an ``.item()`` each; the padding-mask helpers check
``mask.all()``). Each sync stalls the launch queue, and none of it can be captured in a CUDA graph.

:class:`StaticPromptDecoder` runs the same sub-modules of the same model in the same order, with:

- the feature-map sizes as Python ints (known from the tensors' shapes), so nothing is read back;
- the text padding mask made once per call as a broadcast [P, 1, 1, T] mask, so no helper inspects it;
- only the last decoder layer's box, score and query heads (``Sam3Model`` evaluates them for every layer and
  keeps the last);
- the pixel decoder's group norms as a float32 ``var_mean`` over [N, G, -1] (:func:`group_norm`): ATen's
  kernel reduces each (sample, group) row in one thread block, ~1 ms per norm at the finest level on an H200;
- text features cached per prompt string (``TextFeatureCache``): a repeated phrase skips the text encoder;
- the vision pass, the text encoder and the decoding each replayed from a CUDA graph per input shape
  (``backend.cuda_graph.GraphCache``; on the CPU they simply run).

Exemplar boxes (the geometry encoder) stay on ``Sam3Model.forward``: they are rare and interactive.
``tests/test_segment_sam3_static.py`` checks every output against ``Sam3Model.forward`` on the tiny model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..cuda_graph import GraphCache
from ..torch_compile import Backend, CompiledCall
from .sam3_compile import one_prompt

# Attention back-ends whose mask convention this module knows: SDPA takes a bool "may attend" mask, eager an
# additive float mask. Others (flash, flex) leave the model on its plain forward.
SUPPORTED_ATTENTION = ("sdpa", "eager")


@dataclass(frozen=True)
class PromptDecoding:
    """SAM 3's raw answer for P prompts against one photo (all on the model's device, model dtype)."""

    presence_logits: torch.Tensor  # [P]
    logits: torch.Tensor  # [P, Q] instance logits (before sigmoid, before the presence factor)
    boxes: torch.Tensor  # [P, Q, 4] XYXY in [0, 1] of the square model input
    masks: torch.Tensor  # [P, Q, m, m] mask logits at the finest FPN level
    semantic: torch.Tensor  # [P, 1, m, m] semantic logits


def supports_static_decoding(model: torch.nn.Module) -> bool:
    """Whether :class:`StaticPromptDecoder` knows this model's attention back-end."""
    return model.config._attn_implementation in SUPPORTED_ATTENTION


class TextFeatureCache:
    """Projected text features per prompt string for one model: [1, T, C] features and their [1, T] bool mask."""

    def __init__(self, max_prompts: int = 256):
        self.max_prompts = max_prompts
        self.entries: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def get(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        entry = self.entries.get(prompt)
        if entry is not None:
            self.entries.move_to_end(prompt)
        return entry

    def put(self, prompt: str, features: torch.Tensor, valid: torch.Tensor) -> None:
        self.entries[prompt] = (features, valid)
        while len(self.entries) > self.max_prompts:
            self.entries.popitem(last=False)


class StaticPromptDecoder:
    """One loaded ``Sam3Model``'s vision pass, text encoder and prompt decoding, graph-ready (see module doc).

    Made once per loaded model (:func:`static_decoder_for`); its graphs hold the weights' addresses, so the
    model must not be moved or converted afterwards.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_tokens: int, graphs: bool = True,
                 compile_backend: Backend | None = None, compile_mode: str | None = None):
        """compile_backend: a ``torch.compile`` backend for the text encoder and the decoding (None: plain
        calls; ``backend.segment.sam3_compile``), in inductor's ``compile_mode``; the graphs capture them."""
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.text_cache = TextFeatureCache()
        self.text_encoder_runs = 0  # prompts that went through the text encoder (tests count cache hits by it)
        self.eager_attention = model.config._attn_implementation == "eager"
        text, decode = self._text_tensors, self._decode_tensors
        self.compiled: tuple[CompiledCall, ...] = ()  # what compiling cost, or why it failed (benchmarks read it)
        if compile_backend is not None:
            text = CompiledCall(text, "SAM 3's text encoder", compile_backend, compile_mode, wanted=one_prompt)
            decode = CompiledCall(decode, "SAM 3's decoding", compile_backend, compile_mode, wanted=one_prompt)
            self.compiled = (text, decode)
        max_graphs = 8 if graphs else 0
        self._vision = _maybe_graphed(self._vision_tensors, max_graphs)
        self._text = _maybe_graphed(text, max_graphs)
        self._decode = _maybe_graphed(decode, max_graphs)

    @property
    def compile_seconds(self) -> float:
        """What ``torch.compile`` has cost so far (first compiled calls of the text encoder and the decoding)."""
        return sum(call.compile_seconds for call in self.compiled)

    # --- the vision pass ---------------------------------------------------------------------------------------

    def vision_features(self, pixels: torch.Tensor):  # pixels: [1, 3, S, S] normalised, model dtype
        """``Sam3Model.get_vision_features(pixels)``, replayed from a graph on CUDA."""
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        last, *levels = self._vision(pixels)
        # The position encodings depend on the levels' shapes only, and the neck keeps them in an lru cache:
        # read here, after the graph, so no graph holds on to cached memory that an eviction could free.
        encode = self.model.vision_encoder.neck.position_encoding
        positions = tuple(encode(level.shape, level.device, level.dtype) for level in levels)
        return Sam3VisionEncoderOutput(last_hidden_state=last, fpn_hidden_states=tuple(levels),
                                       fpn_position_encoding=positions)

    def _vision_tensors(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.get_vision_features(pixel_values=pixels)
        return (out.last_hidden_state, *out.fpn_hidden_states)

    # --- text ----------------------------------------------------------------------------------------------------

    def text_features(self, prompts: Sequence[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """([P, T, C] projected text features, [P, T] bool valid-token mask); cached prompts skip the encoder."""
        found = {p: self.text_cache.get(p) for p in dict.fromkeys(prompts)}  # held here: a batch may outgrow the cache
        missing = [p for p, entry in found.items() if entry is None]
        if missing:
            tokens = self.tokenizer(missing, padding="max_length", truncation=True, max_length=self.max_tokens,
                                    return_tensors="pt")
            ids = tokens["input_ids"].to(device, non_blocking=True)
            mask = tokens["attention_mask"].to(device, non_blocking=True)
            features = self._text(ids, mask)
            valid = mask.bool()
            for row, prompt in enumerate(missing):
                found[prompt] = (features[row:row + 1], valid[row:row + 1])
                self.text_cache.put(prompt, *found[prompt])
            self.text_encoder_runs += len(missing)
        entries = [found[p] for p in prompts]
        if len(entries) == 1:
            return entries[0]
        return torch.cat([e[0] for e in entries]), torch.cat([e[1] for e in entries])

    def _text_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    # --- the prompt-dependent decoding ---------------------------------------------------------------------------

    def decode(self, text_features: torch.Tensor, text_valid: torch.Tensor, vision) -> PromptDecoding:
        """Every prompt of ``text_features`` [P, T, C] (mask [P, T]) against one photo's ``vision`` features."""
        levels = vision.fpn_hidden_states[:-1]  # Sam3Model leaves the coarsest level out
        position = vision.fpn_position_encoding[len(levels) - 1]
        outputs = self._decode(text_features, text_valid, position, *levels)
        return PromptDecoding(*outputs)

    def _attention_mask(self, valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[P, T] bool → [P, 1, 1, T] in the back-end's convention (broadcast over heads and queries)."""
        mask = valid[:, None, None, :]
        if not self.eager_attention:
            return mask
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)

    def _decode_tensors(self, text: torch.Tensor, valid: torch.Tensor, position: torch.Tensor,
                        *levels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """text [P, T, C]; valid [P, T]; position [1, C, h, w]; levels [1, C, H_i, W_i] fine to coarse."""
        model = self.model
        count = text.shape[0]
        levels = [level.expand(count, -1, -1, -1) for level in levels]
        coarse = levels[-1]
        height, width = coarse.shape[-2:]
        attend = self._attention_mask(valid, text.dtype)

        # 1. DETR encoder: the coarse level's tokens attend to each other and to the prompt
        vision = coarse.flatten(2).transpose(1, 2)  # [P, h*w, C]
        vision_pos = position.expand(count, -1, -1, -1).flatten(2).transpose(1, 2)
        for layer in model.detr_encoder.layers:
            vision = layer(vision, prompt_feats=text, vision_pos_encoding=vision_pos, prompt_cross_attn_mask=attend)

        # 2. DETR decoder: a presence token and Q queries, boxes refined layer by layer
        decoder = model.detr_decoder
        queries = decoder.query_embed.weight[None].expand(count, -1, -1)
        boxes = decoder.reference_points.weight[None].expand(count, -1, -1).sigmoid()
        hidden = torch.cat([decoder.presence_token.weight[None].expand(count, -1, -1), queries], dim=1)
        grid = _cell_grid(height, width, boxes)  # the same in every layer: made once
        for layer in decoder.layers:
            query_pos = decoder.ref_point_head(decoder.position_encoding.encode_boxes(boxes))
            box_bias = _box_position_bias(decoder, boxes, grid)  # [P, heads, 1 + Q, h*w]
            hidden = layer(hidden, query_pos=query_pos, text_features=text, vision_features=vision,
                           vision_pos_encoding=vision_pos, text_cross_attn_mask=attend,
                           vision_cross_attn_mask=box_bias)
            normed = decoder.output_layer_norm(hidden[:, 1:])
            boxes = (decoder.box_head(normed) + _inverse_sigmoid(boxes)).sigmoid()
        presence = decoder.presence_head(decoder.presence_layer_norm(hidden[:, :1])).squeeze(-1)[:, 0]
        presence = presence.clamp(-decoder.clamp_presence_logit_max_val, decoder.clamp_presence_logit_max_val)

        # 3. heads of the last layer: its refined boxes, the queries' scores against the pooled prompt
        boxes_xyxy = _cxcywh_to_xyxy(boxes)
        logits = model.dot_product_scoring(decoder_hidden_states=normed[None], text_features=text,
                                           text_mask=valid)[0, :, :, 0]

        # 4. mask head: the encoder's tokens read the prompt, then the pixel decoder and the per-query masks
        head = model.mask_decoder
        attended, _ = head.prompt_cross_attn(query=head.prompt_cross_attn_norm(vision), key=text, value=text,
                                             attention_mask=attend)
        pixels = _pixel_embeddings(head.pixel_decoder, levels, vision + attended)
        masks = torch.einsum("bqc,bchw->bqhw", head.mask_embedder(normed), head.instance_projection(pixels))
        semantic = head.semantic_projection(pixels)
        return presence, logits, boxes_xyxy, masks, semantic


def _pixel_embeddings(
    pixel_decoder: torch.nn.Module,  # Sam3PixelDecoder: its conv_layers and norms (GroupNorm)
    levels: Sequence[torch.Tensor],  # [P, C, H_i, W_i] fine to coarse
    encoder_tokens: torch.Tensor,  # [P, h*w (+ more), C] the DETR encoder's tokens of the coarse level
) -> torch.Tensor:  # [P, C, H_0, W_0]
    """``Sam3MaskDecoder._embed_pixels``: the encoder's tokens replace the coarse level, then the FPN climbs to
    the finest level (nearest upsampling, skip, conv, group norm, ReLU).

    Two things differ from transformers' code, not its numbers: the levels are not cloned first (nothing here
    writes into them), and each group norm is :func:`group_norm`, which reduces fast at the finest levels.
    """
    coarse = levels[-1]
    count, _, height, width = coarse.shape
    x = encoder_tokens[:, :height * width].transpose(1, 2).reshape(count, -1, height, width)
    stages = zip(pixel_decoder.conv_layers, pixel_decoder.norms, reversed(levels[:-1]), strict=False)
    for conv, norm, skip in stages:  # as many stages as both have: transformers' loop stops at the levels' end
        x = torch.nn.functional.interpolate(x, size=skip.shape[-2:], mode="nearest") + skip
        x = group_norm(conv(x), norm).relu_()
    return x


def group_norm(x: torch.Tensor, norm: torch.nn.GroupNorm) -> torch.Tensor:  # x: [N, C, H, W] -> same
    """``norm(x)``, with the statistics reduced as a plain float32 ``var_mean`` over an [N, G, C/G·H·W] view.

    ATen's group norm reduces each (sample, group) row in one thread block: at the pixel decoder's finest level
    (256 channels of 288 × 288, 8 groups) that is 8 blocks over 2.6 M values each, ~1 ms a call on an H200.
    ``var_mean`` splits a long row over many blocks. As in ATen, the statistics and the affine are float32 and
    the result is rounded to ``x``'s dtype once.
    """
    count, channels = x.shape[:2]
    groups = norm.num_groups
    var, mean = torch.var_mean(x.reshape(count, groups, -1).float(), dim=2, correction=0)  # [N, G]
    scale = (var + norm.eps).rsqrt().repeat_interleave(channels // groups, dim=1)  # [N, C]
    shift = -mean.repeat_interleave(channels // groups, dim=1) * scale
    if norm.affine:
        shift = shift * norm.weight.float() + norm.bias.float()
        scale = scale * norm.weight.float()
    out = torch.empty_like(x)
    return torch.addcmul(shift[..., None, None], x, scale[..., None, None], out=out)  # float32 math, one rounding


def _cell_grid(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The feature cells' top and left edges in [0, 1): ([height] rows, [width] columns) in ``like``'s dtype."""
    rows = torch.arange(0, height, device=like.device, dtype=like.dtype) / height
    cols = torch.arange(0, width, device=like.device, dtype=like.dtype) / width
    return rows, cols


def _box_position_bias(
    decoder: torch.nn.Module,  # Sam3DetrDecoder: its box_rpb_embed_x / _y MLPs
    boxes: torch.Tensor,  # [P, Q, 4] (cx, cy, w, h) in [0, 1]
    grid: tuple[torch.Tensor, torch.Tensor],  # _cell_grid: [h] rows, [w] columns
) -> torch.Tensor:  # [P, heads, 1 + Q, h * w]: row 0 (the presence token) all zero
    """SAM 3's box-relative position bias: each query's attention to a feature cell depends on the cell's
    log-scaled offsets from the query's box edges. Row 0 is the presence token's, which attends everywhere.

    ``Sam3DetrDecoder._get_rpb_matrix`` computes the same rows, but takes its coordinate grids from an lru cache
    of size one: a graph would keep reading those grids' memory after another call evicted and freed them. Here
    the grids are made inside the call (once for all layers), so a captured graph owns them. The [P, heads,
    1 + Q, h, w] result is written in place by one broadcast add (transformers adds into [P, Q, h, w, heads],
    then permutes into a copy, and its caller pads the presence row on: three passes over ~8 M values a layer).
    """
    rows, cols = grid
    xyxy = _cxcywh_to_xyxy(boxes)
    to_rows = rows[None, None, :, None] - xyxy[:, :, None, 1::2]  # [P, Q, h, 2]: from the top and bottom edges
    to_cols = cols[None, None, :, None] - xyxy[:, :, None, 0::2]  # [P, Q, w, 2]: from the left and right edges
    bias_rows = decoder.box_rpb_embed_y(_log_scale(to_rows)).permute(0, 3, 1, 2)  # [P, heads, Q, h]
    bias_cols = decoder.box_rpb_embed_x(_log_scale(to_cols)).permute(0, 3, 1, 2)  # [P, heads, Q, w]
    count, heads, queries, height = bias_rows.shape
    width = bias_cols.shape[-1]
    if torch.compiler.is_compiling():  # dynamo takes no strided out=; inductor fuses this form into one kernel
        presence_row = bias_rows.new_zeros(count, heads, 1, height, width)
        return torch.cat([presence_row, bias_rows[..., None] + bias_cols[..., None, :]], dim=2).flatten(3)
    bias = torch.empty(count, heads, 1 + queries, height, width, dtype=bias_rows.dtype, device=bias_rows.device)
    bias[:, :, 0].zero_()
    torch.add(bias_rows[..., None], bias_cols[..., None, :], out=bias[:, :, 1:])
    return bias.flatten(3)


def _log_scale(offsets: torch.Tensor) -> torch.Tensor:
    """sign(8d)·log2(|8d| + 1) / log2(8): fine near the box edge, compressed far from it."""
    scaled = offsets * 8
    return torch.sign(scaled) * torch.log2(torch.abs(scaled) + 1.0) / 3.0


def _inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """log(x / (1 - x)) with both clamped to ≥ eps: the form SAM 3's box refinement is trained with."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def _cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    centre, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def _maybe_graphed(fn, max_graphs: int):
    if not max_graphs:
        return fn
    if isinstance(fn, CompiledCall):  # compiled code that cannot be captured falls back to the plain call's graph
        return GraphCache(fn, max_graphs=max_graphs, capture=fn.graph_capture)
    return GraphCache(fn, max_graphs=max_graphs)


def static_decoder_for(models, graphs: bool = True, compile_backend: Backend | None = None,
                       compile_mode: str | None = None) -> StaticPromptDecoder:
    """The one :class:`StaticPromptDecoder` of a loaded ``Sam3Models`` per (graphs, compile) setting.

    Kept on the model object itself, so its text cache, graphs and compiled calls live exactly as long as the
    loaded model (``backend.models.loaded`` dropping the model drops them too).
    """
    from ..models.sam3 import MAX_PROMPT_TOKENS

    key = (graphs, compile_backend, compile_mode if compile_backend is not None else None)
    with _decoders_lock:
        held = models.model.__dict__.setdefault("_static_prompt_decoders", {})
        if key not in held:
            held[key] = StaticPromptDecoder(models.model, models.tokenizer, MAX_PROMPT_TOKENS, graphs,
                                            compile_backend, compile_mode)
        return held[key]


_decoders_lock = threading.Lock()
