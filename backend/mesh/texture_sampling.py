"""Colour a rasterized mesh: interpolate vertex attributes with the barycentrics, sample the texture.

Everything here is differentiable with respect to the texture (``grid_sample``) and the attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..camera import Camera
from .rasterize import MeshRaster, rasterize_mesh


def interpolate_attributes(raster: MeshRaster, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Per-pixel attributes [H, W, C] from per-vertex ``attributes`` [V, C]; zero on background."""
    tri = raster.tri_id.clamp_min(0)
    corners = attributes[faces[tri]]  # [H, W, 3, C]
    values = (corners * raster.bary[..., None]).sum(-2)
    return values * raster.mask[..., None].to(values.dtype)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup.

    texture: [T, T, 3] (row 0 = top of the image = v 1); uv: [..., 2] in [0, 1], v up. Returns [..., 3].
    """
    lead_shape = uv.shape[:-1]
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1).reshape(1, 1, -1, 2)
    image = texture.permute(2, 0, 1)[None]  # [1, 3, T, T]
    sampled = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[0, :, 0].T.reshape(*lead_shape, texture.shape[-1])


def shade_textured(raster: MeshRaster, faces: torch.Tensor, uvs: torch.Tensor, texture: torch.Tensor,
                   background: torch.Tensor | float = 1.0) -> torch.Tensor:
    """[H, W, 3] image of a rasterized textured mesh over a constant ``background`` colour."""
    uv = interpolate_attributes(raster, faces, uvs)
    colour = sample_texture(texture, uv)
    mask = raster.mask[..., None].to(colour.dtype)
    return colour * mask + torch.as_tensor(background, dtype=colour.dtype, device=colour.device) * (1 - mask)


def render_textured(vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor, texture: torch.Tensor,
                    camera: Camera, background: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterize and shade in one call: (rgb [H, W, 3], alpha [H, W]) — unlit base colour, hard edges."""
    raster = rasterize_mesh(vertices, faces, camera)
    return shade_textured(raster, faces, uvs, texture, background), raster.mask.to(texture.dtype)
