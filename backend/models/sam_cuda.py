"""SAM made faster on CUDA, applied once to a freshly loaded model (CPU models are never touched).

Three independent changes (``prepare_sam``):

- **fp16 weights** instead of fp32 weights cast by autocast on every call. The image encoder then runs in plain
  fp16 (its input is cast on entry); the prompt encoder and mask decoder still run under autocast, which sorts out
  the float32 point coordinates they mix with fp16 weights. ViT-H in plain fp16 is known to give garbage
  (segment-anything issues #540, #696; EfficientViT-SAM reports the same): segment-anything's ``LayerNorm2d``
  squares deviations in the input's dtype, which overflows fp16 past 256. So every ``LayerNorm2d`` computes in
  float32 here (``nn.LayerNorm`` already accumulates in float32 on CUDA). Masks are upsampled in float32 by the
  callers (``backend.segment.sam_masks``).
- **SDPA attention** in the image encoder: segment-anything's ``Attention`` builds softmax(q kᵀ·s + bias) by hand,
  writing and re-reading 4096×4096 score maps per head in the global blocks. ``sdpa_attention_forward`` computes
  the same thing with ``F.scaled_dot_product_attention``, the decomposed relative-position bias passed as an
  additive float mask (the memory-efficient kernel fuses scores, bias and softmax).
- **a CUDA graph** for the image encoder (its input is always one 1024² image): only with SDPA attention, because
  the original ``get_rel_pos`` indexes with a CPU tensor, a host copy that cannot be captured.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.image_encoder import Attention

from ..cuda_graph import GraphCache
from .sam import SamModels


def relative_position_embeddings(
    q_size: int,
    k_size: int,
    rel_pos: torch.Tensor,  # [L, C] learned embeddings of the relative offsets
) -> torch.Tensor:  # [q_size, k_size, C]
    """segment-anything's ``get_rel_pos``, with the offset table made on the embeddings' device.

    Same maths (linear resize of the table when its length is not 2·max(q, k) - 1, offsets scaled when q and k
    differ); only the index tensor lives on the device, so a CUDA graph can capture it.
    """
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:
        resized = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel_dist,
                                mode="linear")
        rel_pos = resized.reshape(-1, max_rel_dist).permute(1, 0)
    device = rel_pos.device
    q_coords = torch.arange(q_size, device=device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


def decomposed_rel_pos_bias(
    q: torch.Tensor,  # [B, heads, h*w, C] queries, unscaled
    rel_pos_h: torch.Tensor,  # [Lh, C]
    rel_pos_w: torch.Tensor,  # [Lw, C]
    size: tuple[int, int],  # (h, w) of the token grid; keys share it
) -> torch.Tensor:  # [B, heads, h*w, h*w] in q's dtype
    """MViTv2's decomposed relative-position term as an additive attention mask.

    bias[(i, j), (k, l)] = q_ij · Rh[i, k] + q_ij · Rw[j, l], the term segment-anything's
    ``add_decomposed_rel_pos`` adds to the scores.
    """
    batch, heads, _, channels = q.shape
    height, width = size
    r_h = relative_position_embeddings(height, height, rel_pos_h)  # [h, h, C]
    r_w = relative_position_embeddings(width, width, rel_pos_w)  # [w, w, C]
    grid_q = q.reshape(batch, heads, height, width, channels)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, r_h)  # [B, heads, h, w, h]
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, r_w)  # [B, heads, h, w, w]
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # [B, heads, h, w, h, w]
    return bias.reshape(batch, heads, height * width, height * width).to(q.dtype)


def sdpa_attention_forward(self: Attention, x: torch.Tensor) -> torch.Tensor:
    """``Attention.forward`` (segment-anything 1.0) through ``F.scaled_dot_product_attention``; x: [B, H, W, C].

    Installed on module instances by :func:`use_sdpa_attention`; ``self`` is the Attention module.
    """
    batch, height, width, _ = x.shape
    qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # each [B, heads, H*W, C/heads]
    bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (height, width)) if self.use_rel_pos else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
    out = out.view(batch, self.num_heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
    return self.proj(out)


def use_sdpa_attention(module: torch.nn.Module) -> int:
    """Route every segment-anything ``Attention`` inside ``module`` through SDPA; returns how many."""
    count = 0
    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.forward = types.MethodType(sdpa_attention_forward, sub)
            count += 1
    return count


def layer_norm_2d_float32(self: LayerNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``LayerNorm2d.forward`` computed in float32 (its weights kept float32), returned in x's dtype."""
    x32 = x.float()
    mean = x32.mean(1, keepdim=True)
    var = (x32 - mean).pow(2).mean(1, keepdim=True)
    x32 = (x32 - mean) / torch.sqrt(var + self.eps)
    return (self.weight[:, None, None] * x32 + self.bias[:, None, None]).to(x.dtype)


class _EncoderForward:
    """Installed as the image encoder's ``forward``: casts the preprocessed image (float32) to the weights' dtype,
    then runs the encoder's own forward, replayed from a CUDA graph where asked."""

    def __init__(self, encoder: torch.nn.Module, graphs: bool):
        self.dtype = encoder.patch_embed.proj.weight.dtype
        eager = encoder.forward  # the class's forward, bound to this instance
        self.run = GraphCache(eager, max_graphs=1) if graphs else eager

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x.to(self.dtype))


def prepare_sam(models: SamModels, device: torch.device | str, half: bool, sdpa: bool, graphs: bool) -> SamModels:
    """Move ``models.model`` to ``device`` and apply the chosen changes (module docstring); modifies it in place.

    Meant for a model loaded on the CPU just now and about to be cached: the weights are converted per tensor on
    the way to the device, so the card never holds an fp32 and an fp16 copy at once. ``graphs`` needs ``sdpa``.
    """
    model = models.model
    if half:
        # kept float32, with their exact values: the preprocessing constants and LayerNorm2d's few weights
        pixel_mean, pixel_std = model.pixel_mean.clone(), model.pixel_std.clone()
        norms = [(sub, sub.weight.detach().clone(), sub.bias.detach().clone())
                 for sub in model.modules() if isinstance(sub, LayerNorm2d)]
        model.to(device=device, dtype=torch.float16)
        model.pixel_mean, model.pixel_std = pixel_mean.to(device), pixel_std.to(device)
        for norm, weight, bias in norms:
            norm.float()
            with torch.no_grad():
                norm.weight.copy_(weight)
                norm.bias.copy_(bias)
            norm.forward = types.MethodType(layer_norm_2d_float32, norm)
    else:
        model.to(device)
    if sdpa:
        use_sdpa_attention(model.image_encoder)
    if half or (sdpa and graphs):
        model.image_encoder.forward = _EncoderForward(model.image_encoder, graphs=sdpa and graphs)
    return models
