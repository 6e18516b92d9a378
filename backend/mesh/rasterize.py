"""Our triangle rasterizer in plain PyTorch (CPU and CUDA): per pixel the visible triangle and its barycentrics.

How it works, for memory that stays bounded:
1. Project the vertices (OpenGL camera, pixel centres at +0.5) to pixel coordinates and view depth.
2. Each triangle's pixel bounding box gives candidate (triangle, pixel) pairs; triangles are taken in chunks
   whose boxes hold at most ``pair_budget`` pairs together (a lone bigger triangle gets a chunk of its own).
3. Each pair is tested with edge functions; covered pixels get a 64-bit key (depth's float bits << 32 | tri)
   and one ``scatter_reduce(amin)`` per chunk keeps the nearest triangle per pixel — a z-buffer whose ties go
   to the lower triangle id, so the result is deterministic.
4. One last pass over the image recomputes the winner's barycentrics, perspective-correct, from the vertex
   tensors: they are differentiable with respect to the vertex positions (the triangle ids are not).

The same core rasterizes a mesh in UV space (:func:`rasterize_uv`), which texture baking uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..camera import Camera

NEAR_DEPTH = 1e-2  # triangles with a vertex closer than this to the camera plane are dropped (no clipping)
_NO_HIT = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class MeshRaster:
    """What each pixel sees. Background pixels have ``tri_id`` -1, zero barycentrics and zero depth."""

    tri_id: torch.Tensor  # [H, W] int64, index into faces or -1
    bary: torch.Tensor  # [H, W, 3] float32, perspective-correct barycentrics of the triangle's 3 vertices
    depth: torch.Tensor  # [H, W] float32, view depth (distance along the viewing axis), 0 on background

    @property
    def mask(self) -> torch.Tensor:
        """[H, W] bool: pixels covered by the mesh."""
        return self.tri_id >= 0


def project_vertices(vertices: torch.Tensor, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [V, 3] → (pixel xy [V, 2] with pixel (0, 0)'s centre at (0.5, 0.5), view depth [V])."""
    w2c = torch.as_tensor(camera.w2c, dtype=vertices.dtype, device=vertices.device)
    cam = vertices @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -cam[:, 2]  # OpenGL: the camera looks down -Z
    safe = torch.where(depth.abs() < 1e-8, torch.full_like(depth, 1e-8), depth)
    f = camera.focal
    x = f * cam[:, 0] / safe + camera.width / 2
    y = camera.height / 2 - f * cam[:, 1] / safe  # image rows grow downwards
    return torch.stack([x, y], dim=-1), depth


def _edge_barycentrics(tri_xy: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics [P, 3] of points (px, py) in triangles tri_xy [P, 3, 2]."""
    x0, y0 = tri_xy[:, 0, 0], tri_xy[:, 0, 1]
    x1, y1 = tri_xy[:, 1, 0], tri_xy[:, 1, 1]
    x2, y2 = tri_xy[:, 2, 0], tri_xy[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    l0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
    l1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
    return torch.stack([l0, l1, 1 - l0 - l1], dim=-1)


def rasterize_screen(
    xy: torch.Tensor,  # [V, 2] pixel coordinates
    depth: torch.Tensor,  # [V] view depth (> 0 in front of the camera)
    faces: torch.Tensor,  # [F, 3] int64
    height: int,
    width: int,
    pair_budget: int = 1 << 22,
) -> MeshRaster:
    """Rasterize triangles already in pixel space (module docstring, steps 2–4)."""
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= xy.shape[0]):
        raise ValueError(f"faces index vertices outside [0, {xy.shape[0]})")
    device = xy.device
    faces = faces.to(device=device, dtype=torch.int64)
    with torch.no_grad():
        tri_xy = xy.detach()[faces].float()  # [F, 3, 2]
        tri_depth = depth.detach()[faces].float()  # [F, 3]
        area = ((tri_xy[:, 1, 0] - tri_xy[:, 0, 0]) * (tri_xy[:, 2, 1] - tri_xy[:, 0, 1])
                - (tri_xy[:, 2, 0] - tri_xy[:, 0, 0]) * (tri_xy[:, 1, 1] - tri_xy[:, 0, 1]))
        x_lo = torch.ceil(tri_xy[..., 0].amin(-1) - 0.5).clamp(0, width - 1).long()
        x_hi = torch.floor(tri_xy[..., 0].amax(-1) - 0.5).clamp(-1, width - 1).long()
        y_lo = torch.ceil(tri_xy[..., 1].amin(-1) - 0.5).clamp(0, height - 1).long()
        y_hi = torch.floor(tri_xy[..., 1].amax(-1) - 0.5).clamp(-1, height - 1).long()
        usable = ((tri_depth > NEAR_DEPTH).all(-1) & (area.abs() > 1e-10) & (x_hi >= x_lo) & (y_hi >= y_lo)
                  & torch.isfinite(tri_xy).all(-1).all(-1))
        tri_index = usable.nonzero()[:, 0]
        box_w = (x_hi - x_lo + 1)[tri_index]
        pair_count = box_w * (y_hi - y_lo + 1)[tri_index]
        pair_end = pair_count.cumsum(0)

        zbuffer = torch.full((height * width,), _NO_HIT, dtype=torch.int64, device=device)
        start, total_tris = 0, tri_index.numel()
        pair_end_cpu = pair_end.cpu().numpy()
        while start < total_tris:
            before = int(pair_end_cpu[start - 1]) if start > 0 else 0
            stop = int(np.searchsorted(pair_end_cpu, before + pair_budget, side="right"))
            stop = min(max(stop, start + 1), total_tris)
            _rasterize_chunk(zbuffer, tri_index[start:stop], box_w[start:stop], pair_count[start:stop],
                             int(pair_end_cpu[stop - 1]) - before, tri_xy, tri_depth, x_lo, y_lo, width)
            start = stop

        hit = zbuffer != _NO_HIT
        tri_id = torch.where(hit, zbuffer & 0xFFFFFFFF, torch.full_like(zbuffer, -1))

    # 4. Differentiable barycentrics of the winning triangle per covered pixel.
    pixels = hit.nonzero()[:, 0]
    winners = tri_id[pixels]
    px = (pixels % width).to(xy.dtype) + 0.5
    py = (pixels // width).to(xy.dtype) + 0.5
    corners = faces[winners]  # [P, 3]
    screen_bary = _edge_barycentrics(xy[corners], px, py)
    inv_depth = screen_bary / depth[corners]
    inv_sum = inv_depth.sum(-1, keepdim=True)
    bary = (inv_depth / inv_sum).clamp(0, 1)
    bary = bary / bary.sum(-1, keepdim=True).clamp_min(1e-12)
    bary_image = torch.zeros((height * width, 3), dtype=bary.dtype, device=device).index_put((pixels,), bary)
    depth_image = torch.zeros(height * width, dtype=bary.dtype, device=device).index_put((pixels,), 1 / inv_sum[:, 0])
    return MeshRaster(tri_id.reshape(height, width), bary_image.reshape(height, width, 3),
                      depth_image.reshape(height, width))


def _rasterize_chunk(zbuffer, tris, box_w, pair_count, total, tri_xy, tri_depth, x_lo, y_lo, width) -> None:
    """Coverage test and z-buffer update for one chunk of triangles (step 3)."""
    device = zbuffer.device
    local = torch.repeat_interleave(torch.arange(tris.numel(), device=device), pair_count, output_size=total)
    first_pair = (pair_count.cumsum(0) - pair_count)[local]
    offset = torch.arange(total, device=device) - first_pair
    tri = tris[local]
    w = box_w[local]
    px = x_lo[tri] + offset % w
    py = y_lo[tri] + offset // w
    screen_bary = _edge_barycentrics(tri_xy[tri], px.float() + 0.5, py.float() + 0.5)
    inside = (screen_bary >= -1e-6).all(-1)
    inv_depth_sum = (screen_bary / tri_depth[tri]).sum(-1)
    inside &= inv_depth_sum > 0
    pair_depth = (1.0 / inv_depth_sum[inside]).float()
    # Positive float32 bit patterns order like the floats, so depth bits in the high word sort by depth.
    key = (pair_depth.view(torch.int32).to(torch.int64) << 32) | tri[inside]
    zbuffer.scatter_reduce_(0, py[inside] * width + px[inside], key, reduce="amin")


def rasterize_mesh(
    vertices: torch.Tensor,  # [V, 3] world
    faces: torch.Tensor,  # [F, 3] int64
    camera: Camera,
    pair_budget: int = 1 << 22,
) -> MeshRaster:
    """Rasterize a mesh seen from ``camera`` at the camera's image size (both faces of every triangle)."""
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape [V, 3], got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape [F, 3], got {tuple(faces.shape)}")
    xy, depth = project_vertices(vertices, camera)
    return rasterize_screen(xy, depth, faces, camera.height, camera.width, pair_budget)


def rasterize_uv(uvs: torch.Tensor, faces: torch.Tensor, texture_size: int) -> MeshRaster:
    """Rasterize a mesh's UV layout ([V, 2], v up) into a texture_size² image (row 0 = v = 1).

    Each texel gets the triangle whose UV triangle covers its centre and affine barycentrics there.
    """
    xy = torch.stack([uvs[:, 0] * texture_size, (1 - uvs[:, 1]) * texture_size], dim=-1)
    return rasterize_screen(xy, torch.ones_like(uvs[:, 0]), faces, texture_size, texture_size)
