"""Stage 2: refine the baked texture alone (geometry and UVs fixed) against the photo and Zero123 targets.

DreamGaussian's ``main2.py``, in our code. The texture is an ``nn.Parameter`` in logit space (so it stays in
(0, 1)), optimised with Adam (lr 0.2). Each of the 50 steps' loss is

    reference_weight · MSE(render · valid, photo on white · valid) at the reference view(s)
  + guidance_weight  · MSE(render, guidance.refine(render)) at one fresh random view

where ``valid`` keeps the pixels the mesh covers and faces the camera at view-cos > 0.5 (the interpolated
vertex normal against the camera's viewing axis; the mean still runs over the whole image, as theirs), and the
target is made at that step from the *current* texture with strength rising linearly from 0.8 to 0.95
(``refine_timesteps``: denoising from t 181 down to t 41). Rendered through our rasterizer and ``grid_sample``
(differentiable in the texture); the geometry never moves, so each view is rasterized once.

``target_views > 0`` is our cheaper option: a fixed ring of novel views whose targets are made once, from the
baked texture, in one batched ``refine`` call at the starting strength. With ``guidance=None`` only the
reference view(s) drive the texture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..camera import Camera, orbit_angles
from ..job_control import JobControl, ensure_control
from .bake import mesh_tensors
from .mesh import Mesh
from .rasterize import rasterize_mesh
from .texture_config import TextureConfig
from .texture_sampling import interpolate_attributes, sample_texture

STAGE = "texture"
UNTEXTURED_SIZE = 1024  # texture size when the mesh comes without a baked texture (starts grey)


class ViewTargetLike(Protocol):
    """What stage 1's ``ViewTarget`` offers: a camera and the image seen from it."""

    camera: Camera
    rgb: torch.Tensor  # [H, W, 3] straight colour in [0, 1]
    alpha: torch.Tensor  # [H, W] in [0, 1]


class RefineGuidance(Protocol):
    """The part of ``Zero123Guidance`` stage 2 uses (INTERFACES.md)."""

    def refine(self, images: torch.Tensor, d_elevation_deg: torch.Tensor, d_azimuth_deg: torch.Tensor,
               d_radius: torch.Tensor, strength: float = 0.8, steps: int = 50,
               guidance_scale: float = 5.0) -> torch.Tensor: ...


@dataclass(frozen=True)
class _CachedView:
    camera: Camera
    uv: torch.Tensor  # [H, W, 2] interpolated UVs
    mask: torch.Tensor  # [H, W, 1] float coverage
    target: torch.Tensor | None = None  # [H, W, 3] on white
    valid: torch.Tensor | None = None  # [H, W, 1] float: pixels the reference loss counts (None: all)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[V, 3] unit normals: the area-weighted mean of the adjacent faces' normals."""
    tri = vertices[faces]
    face_normals = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # length = 2 · area
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, dim=0))
    return F.normalize(normals, dim=-1)


def view_cosine(raster, faces: torch.Tensor, normals: torch.Tensor, camera: Camera) -> torch.Tensor:
    """[H, W] cos between the interpolated vertex normal and the camera's viewing axis (DreamGaussian's
    ``viewcos``: the normal's z in camera space); 0 on background."""
    pixel_normals = F.normalize(interpolate_attributes(raster, faces, normals), dim=-1)
    back = torch.as_tensor(camera.c2w[:3, 2], dtype=pixel_normals.dtype, device=pixel_normals.device)
    return (pixel_normals * back).sum(-1) * raster.mask.to(pixel_normals.dtype)


def _cache_view(vertices, faces, uvs, camera: Camera, target: torch.Tensor | None = None,
                normals: torch.Tensor | None = None, min_cosine: float | None = None) -> _CachedView:
    with torch.no_grad():
        raster = rasterize_mesh(vertices, faces, camera)
        uv = interpolate_attributes(raster, faces, uvs)
        valid = None
        if normals is not None and min_cosine is not None:
            valid = (raster.mask & (view_cosine(raster, faces, normals, camera) > min_cosine))[..., None].float()
    return _CachedView(camera, uv, raster.mask[..., None].float(), target, valid)


def _render(view: _CachedView, texture: torch.Tensor) -> torch.Tensor:
    """[H, W, 3] render of the textured mesh over white."""
    return sample_texture(texture, view.uv) * view.mask + (1 - view.mask)


def reference_loss(view: _CachedView, texture: torch.Tensor) -> torch.Tensor:
    """MSE against the photo on white over the valid pixels; the mean runs over the whole image (theirs)."""
    render = _render(view, texture)
    if view.valid is None:
        return F.mse_loss(render, view.target)
    return F.mse_loss(render * view.valid, view.target * view.valid)


def _novel_cameras(config: TextureConfig, count: int, rng: np.random.Generator, radius: float,
                   fovy_deg: float, ring: bool) -> list[Camera]:
    low, high = config.elevation_range
    if ring:  # evenly spaced around the object, starting half a step away from the reference
        elevations = rng.uniform(low, high, count)
        azimuths = (np.arange(count) + 0.5) * 360.0 / count
    else:  # DreamGaussian's np.random.randint(min_ver, max_ver) and randint(-180, 180): whole degrees
        elevations = rng.integers(int(low), int(high), count)
        azimuths = rng.integers(-180, 180, count)
    return [Camera.orbit(float(e), float(a), config.render_size, radius, fovy_deg)
            for e, a in zip(elevations, azimuths, strict=True)]


def _refine_targets(guidance: RefineGuidance, images: torch.Tensor, cameras: Sequence[Camera],
                    reference_angles: tuple[float, float, float], config: TextureConfig,
                    strength: float) -> torch.Tensor:
    """[B, H, W, 3] denoised targets for renders ``images`` [B, H, W, 3] seen from ``cameras``."""
    ref_elevation, ref_azimuth, ref_radius = reference_angles
    angles = torch.tensor([orbit_angles(c) for c in cameras], dtype=torch.float32, device=images.device)
    d_elevation = angles[:, 0] - ref_elevation
    d_azimuth = torch.remainder(angles[:, 1] - ref_azimuth + 180.0, 360.0) - 180.0
    d_radius = angles[:, 2] - ref_radius
    with torch.no_grad():
        targets = guidance.refine(images.permute(0, 3, 1, 2), d_elevation, d_azimuth, d_radius,
                                  strength=strength, steps=config.refine_steps,
                                  guidance_scale=config.guidance_scale)
        if targets.shape[-2:] != images.shape[1:3]:
            targets = F.interpolate(targets.float(), size=images.shape[1:3], mode="bilinear", align_corners=False)
    return targets.float().permute(0, 2, 3, 1).clamp(0, 1)


def refine_texture(
    mesh: Mesh,
    reference: ViewTargetLike | Sequence[ViewTargetLike],
    guidance: RefineGuidance | None,
    config: TextureConfig = TextureConfig(),
    control: JobControl | None = None,
    *,
    device=None,
) -> Mesh:
    """Stage 2 (module docstring): a copy of ``mesh`` with the refined texture. Needs UVs; starts from
    ``mesh.texture`` (grey if it has none). ``device`` defaults to the reference images' device."""
    # 1. Check inputs and move data.
    control = ensure_control(control)
    references = [reference] if hasattr(reference, "camera") else list(reference)
    if not references:
        raise ValueError("refine_texture needs at least one reference view")
    device = torch.device(device) if device is not None else references[0].rgb.device
    vertices, faces, uvs = mesh_tensors(mesh, device)
    initial = (torch.as_tensor(mesh.texture, dtype=torch.float32, device=device) if mesh.texture is not None
               else torch.full((UNTEXTURED_SIZE, UNTEXTURED_SIZE, 3), 0.5, device=device))
    if config.steps == 0:
        return mesh.with_texture(initial.cpu().numpy())

    # 2. Cache the reference views (photo composited on white) and the pixels their loss counts.
    normals = vertex_normals(vertices, faces)
    reference_views = []
    for target in references:
        if tuple(target.rgb.shape) != (target.camera.height, target.camera.width, 3):
            raise ValueError(f"reference rgb has shape {tuple(target.rgb.shape)}, expected "
                             f"({target.camera.height}, {target.camera.width}, 3)")
        alpha = target.alpha.to(device).float().reshape(target.camera.height, target.camera.width, 1)
        on_white = target.rgb.to(device).float() * alpha + (1 - alpha)
        reference_views.append(_cache_view(vertices, faces, uvs, target.camera, on_white, normals,
                                           config.reference_min_cosine))
    reference_angles = orbit_angles(references[0].camera)
    radius, fovy = reference_angles[2], references[0].camera.fovy_deg
    rng = np.random.default_rng(config.seed)

    # 3. Our cheaper option: novel views with cached targets, from the initial texture.
    novel_views: list[_CachedView] = []
    if guidance is not None and config.target_views > 0:
        cameras = _novel_cameras(config, config.target_views, rng, radius, fovy, ring=True)
        views = [_cache_view(vertices, faces, uvs, camera) for camera in cameras]
        for start in range(0, len(views), config.batch_size):
            batch = views[start:start + config.batch_size]
            control.report(STAGE, 0.0, f"targets {start + len(batch)}/{len(views)}")
            renders = torch.stack([_render(v, initial) for v in batch])
            targets = _refine_targets(guidance, renders, [v.camera for v in batch], reference_angles, config,
                                      config.refine_strength)
            novel_views += [_CachedView(v.camera, v.uv, v.mask, t) for v, t in zip(batch, targets, strict=True)]

    # 4. Optimise the texture logits.
    logits = torch.nn.Parameter(torch.logit(initial.clamp(1e-3, 1 - 1e-3)))
    optimizer = torch.optim.Adam([logits], lr=config.lr)
    for step in range(config.steps):
        control.report(STAGE, step / config.steps, f"step {step + 1}/{config.steps}")
        texture = torch.sigmoid(logits)
        loss = sum(reference_loss(v, texture) for v in reference_views) / len(reference_views)
        loss = config.reference_weight * loss
        if guidance is not None:
            views = novel_views
            if config.target_views == 0:  # fresh random views, targets from the current texture
                cameras = _novel_cameras(config, config.batch_size, rng, radius, fovy, ring=False)
                views = [_cache_view(vertices, faces, uvs, camera) for camera in cameras]
                with torch.no_grad():
                    renders = torch.stack([_render(v, texture) for v in views])
                targets = _refine_targets(guidance, renders, cameras, reference_angles, config,
                                          config.strength_at(step))
                views = [_CachedView(v.camera, v.uv, v.mask, t) for v, t in zip(views, targets, strict=True)]
            novel = sum(F.mse_loss(_render(v, texture), v.target) for v in views) / len(views)
            loss = loss + config.guidance_weight * novel
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    control.report(STAGE, 1.0, "done")
    return mesh.with_texture(torch.sigmoid(logits).detach().cpu().numpy())
