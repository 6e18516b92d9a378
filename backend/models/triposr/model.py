"""TripoSR (Tochilkin et al., 2024): one image → a triplane radiance field, in one forward pass.

image [B, 3, S, S] ─ DINO ViT ─→ image tokens ─┐
learned triplane tokens ─ transformer (self-attn, cross-attn to the image) ─→ planes [B, 3, 1024, 32, 32]
─ 2× transposed conv ─→ triplane [B, 3, 40, 64, 64];  :meth:`TripoSR.query_field` reads density and colour.

The child modules carry the checkpoint's names (``image_tokenizer``, ``tokenizer``, ``backbone``,
``post_processor``, ``decoder``), so the published ``model.ckpt`` loads with ``load_state_dict(strict=True)``.

Its frame (the renderer's): the input camera sits on +X looking at the origin, +Z up, the object inside
[-0.87, 0.87]³; :func:`triposr_to_world` maps it to ours (backend.camera: reference camera on +Z, +Y up).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .backbone import TriplaneTokens, TriplaneTransformer
from .config import TripoSRConfig
from .decoder import FieldSample, NeRFDecoder, TriplaneUpsampler, apply_field_activation, sample_triplane
from .image_tokenizer import DINOImageTokenizer

# TripoSR's training views: camera 1.9 from the origin, 40° vertical field of view, the object's longer
# side 85 % of the image (run.py's foreground ratio). Ours: 2.0, 49.1°, 60 % (backend.camera,
# PipelineConfig.border_ratio 0.2). Used to place its surface where our reference camera sees the object.
TRIPOSR_CAMERA_DISTANCE = 1.9
TRIPOSR_FOVY_DEG = 40.0
TRIPOSR_FOREGROUND_RATIO = 0.85


class TripoSR(nn.Module):
    def __init__(self, config: TripoSRConfig):
        super().__init__()
        self.config = config
        self.image_tokenizer = DINOImageTokenizer(config.vit)
        self.tokenizer = TriplaneTokens(config.plane_size, config.token_channels)
        self.backbone = TriplaneTransformer(
            config.token_channels, config.backbone_heads, config.backbone_head_dim, config.backbone_layers,
            config.vit.hidden_size, config.norm_groups,
        )
        self.post_processor = TriplaneUpsampler(config.token_channels, config.triplane_channels)
        self.decoder = NeRFDecoder(3 * config.triplane_channels, config.decoder_neurons, config.decoder_hidden_layers,
                                   config.decoder_activation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, S, S] in [0, 1] (S = cond_image_size, object over grey, see backend.quick.preprocess)
        → triplanes [B, 3, C, 2P, 2P]."""
        size = self.config.cond_image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"images must be [B, 3, {size}, {size}], got {tuple(images.shape)}")
        image_tokens = self.image_tokenizer(images)
        tokens = self.backbone(self.tokenizer(images.shape[0]), image_tokens)
        return self.post_processor(self.tokenizer.to_planes(tokens))

    def query_field(self, triplane: torch.Tensor, points: torch.Tensor) -> FieldSample:
        """Density and colour of one triplane [3, C, H, W] at points [N, 3] (TripoSR's frame)."""
        raw = self.decoder(sample_triplane(triplane, points, self.config.radius))
        density = apply_field_activation(self.config.density_activation, raw[:, 0] + self.config.density_bias)
        colour = apply_field_activation(self.config.color_activation, raw[:, 1:4])
        return FieldSample(density=density, colour=colour)


# TripoSR (x, y, z) → ours (x', y', z') = (y, z, x): its camera axis +X becomes our +Z (towards the reference
# camera), its up +Z our +Y, and its image-right +Y our +X. A rotation (determinant +1).
_AXES = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def world_scale(reference_border_ratio: float = 0.2, reference_radius: float = 2.0,
                reference_fovy_deg: float = 49.1) -> float:
    """Our units per TripoSR unit: the object fills 85 % of TripoSR's view at 1.9 / 40° and must fill
    ``1 - 2·border_ratio`` of our reference view at ``reference_radius`` / ``reference_fovy_deg``."""
    theirs = TRIPOSR_FOREGROUND_RATIO * TRIPOSR_CAMERA_DISTANCE * math.tan(math.radians(TRIPOSR_FOVY_DEG) / 2)
    ours = (1 - 2 * reference_border_ratio) * reference_radius * math.tan(math.radians(reference_fovy_deg) / 2)
    return ours / theirs


def triposr_to_world(points: np.ndarray, scale: float) -> np.ndarray:
    """[N, 3] TripoSR-frame points → our world frame (rotation of the axes, then ``scale``)."""
    return (np.asarray(points) @ _AXES.T) * scale


def world_to_triposr(points: torch.Tensor, scale: float) -> torch.Tensor:
    """[N, 3] world points → TripoSR's frame (the inverse of :func:`triposr_to_world`), in torch."""
    axes = torch.as_tensor(_AXES, dtype=points.dtype, device=points.device)
    return (points / scale) @ axes
