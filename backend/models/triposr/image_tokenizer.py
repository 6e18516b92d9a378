"""TripoSR's image tokenizer: a DINO ViT-B/16 (transformers' ``ViTModel``) reading the 512² input.

Two facts about the published weights that a current transformers does not give by itself:

1. **Parameter names.** The checkpoint was saved with transformers 4.35, whose ViT names its parts
   ``encoder.layer.N.attention.attention.query`` …; transformers 5 renamed them (``layers.N.attention.q_proj``
   …). This module keeps the checkpoint's names at its boundary: ``state_dict()`` gives, and
   ``load_state_dict()`` takes, the 4.35 names, translated to whatever the installed ViT uses. With a
   transformers that still uses the old names the translation is the identity.
2. **Position-embedding interpolation.** The ViT was trained at 224² (14×14 patches) and reads 512²
   (32×32). transformers 4.35 resized the 14×14 embedding grid with bicubic ``interpolate`` given a *scale
   factor* of (32 + 0.1) / 14 (DINO's trick against rounding); newer versions pass the output *size*, which
   samples the grid at slightly different points. The weights were trained with the former, so
   :func:`interpolate_position_embeddings` does that, whatever transformers is installed (the fact test
   ``tests/test_triposr_model.py`` misses by 2e-3 without it).
"""

from __future__ import annotations

import math
import re
import types

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ViTConfig, ViTModel

from .config import ViTSettings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# transformers 4.35 ViT parameter name → transformers 5 name, per encoder layer (group 1 is the layer index).
_OLD_TO_NEW_LAYER_NAMES = (
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.query\."), r"layers.\1.attention.q_proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.key\."), r"layers.\1.attention.k_proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.value\."), r"layers.\1.attention.v_proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.dense\."), r"layers.\1.attention.o_proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.intermediate\.dense\."), r"layers.\1.mlp.fc1."),
    (re.compile(r"^encoder\.layer\.(\d+)\.output\.dense\."), r"layers.\1.mlp.fc2."),
    (re.compile(r"^encoder\.layer\.(\d+)\.(layernorm_before|layernorm_after)\."), r"layers.\1.\2."),
)
_NEW_TO_OLD_LAYER_NAMES = (
    (re.compile(r"^layers\.(\d+)\.attention\.q_proj\."), r"encoder.layer.\1.attention.attention.query."),
    (re.compile(r"^layers\.(\d+)\.attention\.k_proj\."), r"encoder.layer.\1.attention.attention.key."),
    (re.compile(r"^layers\.(\d+)\.attention\.v_proj\."), r"encoder.layer.\1.attention.attention.value."),
    (re.compile(r"^layers\.(\d+)\.attention\.o_proj\."), r"encoder.layer.\1.attention.output.dense."),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc1\."), r"encoder.layer.\1.intermediate.dense."),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc2\."), r"encoder.layer.\1.output.dense."),
    (re.compile(r"^layers\.(\d+)\.(layernorm_before|layernorm_after)\."), r"encoder.layer.\1.\2."),
)


def _rename(name: str, rules) -> str:
    for pattern, replacement in rules:
        renamed, count = pattern.subn(replacement, name)
        if count:
            return renamed
    return name


def interpolate_position_embeddings(position_embeddings: torch.Tensor, height: int, width: int,
                                    patch_size: int) -> torch.Tensor:
    """[1, 1 + s², D] trained embeddings → [1, 1 + h·w, D] for an input of ``height`` × ``width`` pixels.

    Bicubic resampling of the s×s grid with the scale factor ((height // patch) + 0.1) / s (and likewise for
    width), as transformers 4.35 did when TripoSR was trained; the class token's embedding is kept.
    """
    trained = position_embeddings.shape[1] - 1
    rows, cols = height // patch_size, width // patch_size
    if rows * cols == trained and rows == cols:
        return position_embeddings
    side = int(math.sqrt(trained))
    dim = position_embeddings.shape[-1]
    grid = position_embeddings[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side), mode="bicubic",
                         align_corners=False)
    if grid.shape[-2:] != (rows, cols):
        raise ValueError(f"position-embedding grid came out {tuple(grid.shape[-2:])}, expected {(rows, cols)}")
    return torch.cat([position_embeddings[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)], dim=1)


def _trained_interpolation(embeddings_module: nn.Module, embeddings: torch.Tensor, height: int, width: int):
    """Bound onto the ViT's embeddings module in place of transformers' own interpolation (see module doc)."""
    return interpolate_position_embeddings(embeddings_module.position_embeddings, height, width,
                                           embeddings_module.patch_size)


class DINOImageTokenizer(nn.Module):
    """RGB images → one token per patch (and the class token) from the ViT's last layer, after its layernorm."""

    def __init__(self, settings: ViTSettings):
        super().__init__()
        config = ViTConfig(
            hidden_size=settings.hidden_size, num_hidden_layers=settings.num_hidden_layers,
            num_attention_heads=settings.num_attention_heads, intermediate_size=settings.intermediate_size,
            image_size=settings.image_size, patch_size=settings.patch_size, layer_norm_eps=settings.layer_norm_eps,
            qkv_bias=settings.qkv_bias, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        self.model = ViTModel(config)  # with its pooler: the checkpoint holds pooler.dense, unused here
        embeddings = self.model.embeddings
        if not hasattr(embeddings, "patch_size"):  # transformers 4.x keeps it on the config only
            embeddings.patch_size = settings.patch_size
        embeddings.interpolate_pos_encoding = types.MethodType(_trained_interpolation, embeddings)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)
        self._renames = any(k.startswith("layers.") for k in self.model.state_dict())
        self.register_state_dict_post_hook(DINOImageTokenizer._to_checkpoint_names)
        self.register_load_state_dict_pre_hook(DINOImageTokenizer._from_checkpoint_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] in [0, 1] → [B, 1 + patches, D]
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        normalised = (images - self.image_mean) / self.image_std
        return self.model(pixel_values=normalised, interpolate_pos_encoding=True).last_hidden_state

    @staticmethod
    def _to_checkpoint_names(module, state_dict, prefix, local_metadata):
        if not module._renames:
            return
        inner = prefix + "model."
        for key in [k for k in state_dict if k.startswith(inner)]:
            old = inner + _rename(key[len(inner):], _NEW_TO_OLD_LAYER_NAMES)
            if old != key:
                state_dict[old] = state_dict.pop(key)

    @staticmethod
    def _from_checkpoint_names(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                               error_msgs):
        if not module._renames:
            return
        inner = prefix + "model."
        for key in [k for k in state_dict if k.startswith(inner)]:
            new = inner + _rename(key[len(inner):], _OLD_TO_NEW_LAYER_NAMES)
            if new != key:
                state_dict[new] = state_dict.pop(key)
