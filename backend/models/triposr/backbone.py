"""TripoSR's learned triplane tokens and the transformer that writes the image into them.

The tokens are three learned C×P×P planes flattened to 3·P² tokens of C channels. The backbone is a
pre-norm transformer (the diffusers ``BasicTransformerBlock`` layout TripoSR uses): per block, self-attention
over the tokens, cross-attention to the image tokens, and a GEGLU feed-forward (4× width), each with a
residual; around the blocks, GroupNorm → Linear in, Linear out → + the input. Attribute names follow the
checkpoint's (``norm1``, ``attn1.to_q``, ``ff.net.0.proj`` …) so its state dict loads unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TriplaneTokens(nn.Module):
    """Three learned planes [3, C, P, P]: ``forward`` gives them as tokens, ``to_planes`` reads tokens back."""

    def __init__(self, plane_size: int, channels: int):
        super().__init__()
        self.plane_size = plane_size
        self.channels = channels
        self.embeddings = nn.Parameter(torch.randn(3, channels, plane_size, plane_size) / math.sqrt(channels))

    def forward(self, batch_size: int) -> torch.Tensor:  # → [B, C, 3·P·P], planes then rows then columns
        tokens = self.embeddings.permute(1, 0, 2, 3).reshape(self.channels, -1)
        return tokens[None].expand(batch_size, -1, -1)

    def to_planes(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, C, 3·P·P] → [B, 3, C, P, P]
        batch, channels, count = tokens.shape
        if channels != self.channels or count != 3 * self.plane_size**2:
            raise ValueError(f"tokens have shape {tuple(tokens.shape)}, expected [B, {self.channels}, "
                             f"{3 * self.plane_size**2}]")
        planes = tokens.reshape(batch, channels, 3, self.plane_size, self.plane_size)
        return planes.permute(0, 2, 1, 3, 4)


class Attention(nn.Module):
    """Multi-head attention; keys and values from ``context`` when given (cross-attention), else from ``x``."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:  # [B, N, dim]
        context = x if context is None else context
        batch = x.shape[0]

        def split(t: torch.Tensor) -> torch.Tensor:  # [B, L, H·d] → [B, H, L, d]
            return t.reshape(batch, t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context)))
        out = out.transpose(1, 2).reshape(batch, x.shape[1], -1)
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    """Linear to 2× ``dim_out``, then value · GELU(gate) (Shazeer 2020)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to the image, GEGLU feed-forward; each with a residual."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class TriplaneTransformer(nn.Module):
    """Tokens [B, C, N] attending to image tokens [B, T, D] → tokens [B, C, N] (residual over the whole stack)."""

    def __init__(self, channels: int, heads: int, head_dim: int, layers: int, context_dim: int, norm_groups: int):
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(inner, heads, head_dim, context_dim) for _ in range(layers)]
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(self.norm(tokens).transpose(1, 2))  # [B, N, inner]
        for block in self.transformer_blocks:
            x = block(x, context)
        return self.proj_out(x).transpose(1, 2) + tokens
