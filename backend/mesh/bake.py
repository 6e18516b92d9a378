"""Initial texture: colours of renders from many views, gathered into UV space with visibility.

For every texel covered by a UV chart we know its 3D point and face normal (the mesh rasterized in UV space).
Each view then projects those points into its render: a view sees a texel when our rasterizer sees the texel's
surface from it (same triangle, or the same depth within a tolerance) at a cosine between the normal and the
camera's viewing axis above ``min_cosine``. Two ways to turn those sightings into a colour (``ownership``):

- ``"first"`` (default, DreamGaussian's ``save_model``): the texel takes its colour from the first view, in
  :func:`bake_cameras`' order (front first), that sees it at cos > 0.5, and no later view changes it. One
  view's pixels per texel: no blur from averaging slightly misaligned views.
- ``"best"``: the texel takes its colour from the view that sees it most head-on (largest cosine; the earlier
  view on a tie). Also one view's pixels per texel, but the least foreshortened ones: where the surface lies off
  the true one, the head-on view also misplaces the colour least (the shift grows with the tangent of the angle).
  docs/eval_recon.md, "Bake ownership", measures it against ``"first"``.
- ``"weighted"``: the mean over every view that sees it, weighted by cos × the render's alpha (softer).

Texels no view saw, and the gutter around the charts, are filled by a few dilation steps and then a push-pull
pyramid, so bilinear lookups near seams never pick up black.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..camera import REFERENCE_FOVY_DEG, REFERENCE_RADIUS, Camera
from ..job_control import JobControl, ensure_control
from .mesh import Mesh
from .rasterize import project_vertices, rasterize_mesh, rasterize_uv
from .texture_config import BAKE_OWNERSHIPS

STAGE = "bake"

RenderView = Callable[[Camera], tuple[torch.Tensor, torch.Tensor]]  # camera → (rgb [H, W, 3], alpha [H, W])


# DreamGaussian's 26 bake views, in its order (the order decides texel ownership): the equator from the front
# outwards in pairs, then the same azimuths 45° above and 45° below, then (almost) straight above and below.
# Its elevation counts the other way (-45 is above); these are ours (+ is above).
BAKE_AZIMUTHS = (0.0, 45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0)
BAKE_ELEVATIONS = (0.0, 45.0, -45.0)
BAKE_POLES = (89.9, -89.9)


def bake_cameras(size: int = 512, radius: float = REFERENCE_RADIUS, fovy_deg: float = REFERENCE_FOVY_DEG) -> list[Camera]:
    """DreamGaussian's 26 orbit cameras, front first (``BAKE_AZIMUTHS`` at each of ``BAKE_ELEVATIONS``, then
    ``BAKE_POLES``)."""
    cameras = [Camera.orbit(elevation, azimuth, size, radius, fovy_deg)
               for elevation in BAKE_ELEVATIONS for azimuth in BAKE_AZIMUTHS]
    return cameras + [Camera.orbit(elevation, 0.0, size, radius, fovy_deg) for elevation in BAKE_POLES]


def mesh_tensors(mesh: Mesh, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(vertices [V, 3] float32, faces [F, 3] int64, uvs [V, 2] float32) on ``device``; the mesh must have UVs."""
    if mesh.uvs is None:
        raise ValueError("the mesh has no UVs: call unwrap_uvs first")
    return (torch.as_tensor(mesh.vertices, dtype=torch.float32, device=device),
            torch.as_tensor(mesh.faces, dtype=torch.int64, device=device),
            torch.as_tensor(mesh.uvs, dtype=torch.float32, device=device))


def _face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tri = vertices[faces]
    return F.normalize(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1)


def _sample_image(image: torch.Tensor, xy: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear lookup of image [H, W, C] at pixel coordinates xy [N, 2] (pixel centres at +0.5) → [N, C]."""
    grid = torch.stack([xy[:, 0] / width * 2 - 1, xy[:, 1] / height * 2 - 1], dim=-1).reshape(1, 1, -1, 2)
    sampled = F.grid_sample(image.permute(2, 0, 1)[None].float(), grid.float(), mode="bilinear",
                            padding_mode="border", align_corners=False)
    return sampled[0, :, 0].T


@torch.no_grad()
def bake_texture(
    mesh: Mesh,
    render_view: RenderView,
    cameras: Sequence[Camera],
    texture_size: int = 1024,
    *,
    min_cosine: float = 0.5,
    ownership: str = "first",
    dilation: int = 4,
    control: JobControl | None = None,
) -> Mesh:
    """A copy of ``mesh`` (which must have UVs) with a ``texture_size``² texture baked from ``render_view``.

    ``render_view(camera)`` returns the colour the texture should reproduce, rgb [H, W, 3] in [0, 1] and
    alpha [H, W] (e.g. the Gaussians rendered at the camera's size). Views meeting the surface at a cosine
    at or below ``min_cosine`` are ignored; ``ownership`` (module docstring) says how the others combine. The
    texture is computed on the device the renders come back on.
    """
    if ownership not in BAKE_OWNERSHIPS:
        raise ValueError(f"bake ownership must be one of {BAKE_OWNERSHIPS}, got {ownership!r}")
    if not cameras:
        raise ValueError("bake_texture needs at least one camera")
    if texture_size < 4:
        raise ValueError(f"texture_size must be at least 4, got {texture_size}")
    if mesh.uvs is None:
        raise ValueError("the mesh has no UVs: call unwrap_uvs before bake_texture")
    control = ensure_control(control)
    rgb, alpha = render_view(cameras[0])
    device = rgb.device
    vertices, faces, uvs = mesh_tensors(mesh, device)

    # 1. Texel → surface point and normal.
    uv_raster = rasterize_uv(uvs, faces, texture_size)
    texels = uv_raster.mask.reshape(-1).nonzero()[:, 0]
    texel_tri = uv_raster.tri_id.reshape(-1)[texels]
    texel_bary = uv_raster.bary.reshape(-1, 3)[texels]
    points = (vertices[faces[texel_tri]] * texel_bary[..., None]).sum(-2)  # [N, 3]
    normals = _face_normals(vertices, faces)[texel_tri]  # [N, 3]

    # 2. Gather colours from every view.
    colour_sum = torch.zeros(texels.numel(), 3, device=device)
    weight_sum = torch.zeros(texels.numel(), device=device)
    best_cosine = torch.full((texels.numel(),), -2.0, device=device)  # "best": the owning view's cosine
    for index, camera in enumerate(cameras):
        control.report(STAGE, index / len(cameras), f"view {index + 1}/{len(cameras)}")
        if index > 0:
            rgb, alpha = render_view(camera)
        _check_render(rgb, alpha, camera)
        raster = rasterize_mesh(vertices, faces, camera)
        xy, depth = project_vertices(points, camera)
        ix = xy[:, 0].floor().long().clamp(0, camera.width - 1)
        iy = xy[:, 1].floor().long().clamp(0, camera.height - 1)
        in_image = (xy[:, 0] >= 0) & (xy[:, 0] < camera.width) & (xy[:, 1] >= 0) & (xy[:, 1] < camera.height)
        seen_tri = raster.tri_id[iy, ix]
        seen_depth = raster.depth[iy, ix]
        tolerance = 0.01 * depth + 2.0 * depth / camera.focal
        visible = in_image & (seen_tri >= 0) & ((seen_tri == texel_tri) | ((seen_depth - depth).abs() < tolerance))
        # DreamGaussian's view-cos: the normal against the camera's viewing axis (its z in camera space), not
        # against the direction to the eye; the two differ by up to 17° at the rim of the radius-0.6 sphere.
        back = torch.as_tensor(camera.c2w[:3, 2], dtype=torch.float32, device=device)
        cosine = normals @ back
        visible &= cosine > min_cosine
        if ownership == "first":
            visible &= weight_sum == 0  # an earlier view owns it
        elif ownership == "best":
            visible &= cosine > best_cosine  # a view seeing it more head-on takes it over
        if not visible.any():
            continue
        sel = visible.nonzero()[:, 0]
        colour = _sample_image(rgb.to(device), xy[sel], camera.width, camera.height)
        if ownership == "best":
            colour_sum[sel] = colour
            weight_sum[sel] = 1.0
            best_cosine[sel] = cosine[sel]
            continue
        if ownership == "first":
            weight = torch.ones_like(cosine[sel])
        else:
            weight = cosine[sel] * _sample_image(alpha.to(device)[..., None], xy[sel], camera.width,
                                                 camera.height)[:, 0]
        colour_sum.index_add_(0, sel, colour * weight[:, None])
        weight_sum.index_add_(0, sel, weight)

    # 3. Average, then fill what no view saw and the gutters.
    texture = torch.zeros(texture_size * texture_size, 3, device=device)
    known = torch.zeros(texture_size * texture_size, dtype=torch.bool, device=device)
    seen = weight_sum > 1e-6
    texture[texels[seen]] = (colour_sum[seen] / weight_sum[seen, None]).clamp(0, 1)
    known[texels[seen]] = True
    texture = fill_texture(texture.reshape(texture_size, texture_size, 3), known.reshape(texture_size, texture_size),
                           dilation)
    control.report(STAGE, 1.0, f"{int(seen.sum())} of {texels.numel()} texels seen")
    return mesh.with_texture(texture.cpu().numpy())


def _check_render(rgb: torch.Tensor, alpha: torch.Tensor, camera: Camera) -> None:
    if tuple(rgb.shape) != (camera.height, camera.width, 3):
        raise ValueError(f"render_view returned rgb of shape {tuple(rgb.shape)}, expected "
                         f"({camera.height}, {camera.width}, 3)")
    if tuple(alpha.shape) != (camera.height, camera.width):
        raise ValueError(f"render_view returned alpha of shape {tuple(alpha.shape)}, expected "
                         f"({camera.height}, {camera.width})")


def fill_texture(texture: torch.Tensor, known: torch.Tensor, dilation: int = 4) -> torch.Tensor:
    """Fill unknown texels: ``dilation`` rounds of averaging known 3×3 neighbours, then push-pull.

    texture: [T, T, 3]; known: [T, T] bool. Known texels keep their values. Returns [T, T, 3].
    """
    colour = (texture * known[..., None]).permute(2, 0, 1)[None]  # [1, 3, T, T]
    weight = known[None, None].to(colour.dtype)
    for _ in range(dilation):
        colour_sum = F.avg_pool2d(colour * weight, 3, stride=1, padding=1)
        weight_sum = F.avg_pool2d(weight, 3, stride=1, padding=1)
        grow = (weight == 0) & (weight_sum > 0)
        colour = torch.where(grow, colour_sum / weight_sum.clamp_min(1e-12), colour)
        weight = torch.where(grow, torch.ones_like(weight), weight)
    if bool((weight == 0).any()):
        colour = torch.where(weight > 0, colour, _push_pull(colour * weight, weight))
    return colour[0].permute(1, 2, 0)


def _push_pull(premultiplied: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Colour everywhere from a sparse image: average down a pyramid, then fill holes from coarser levels."""
    if weight.shape[-1] <= 1 and weight.shape[-2] <= 1:
        return premultiplied / weight.clamp_min(1e-12)
    coarse_colour = F.avg_pool2d(premultiplied, 2, ceil_mode=True)
    coarse_weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    coarse = _push_pull(coarse_colour, coarse_weight)
    upsampled = F.interpolate(coarse, size=weight.shape[-2:], mode="bilinear", align_corners=False)
    return torch.where(weight > 1e-8, premultiplied / weight.clamp_min(1e-12), upsampled)

