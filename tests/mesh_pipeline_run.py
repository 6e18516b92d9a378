"""The mesh stage end to end (Gaussians → mesh → UVs → bake → stage 2 → files), timed per stage.

Shared by the CPU integration test (tiny sizes) and the GPU timing test (production sizes). The Gaussian
renderer is faked by the mesh itself with smooth vertex colours, so the bake has a known answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.camera import reference_camera
from backend.export import export_gaussians_ply, export_glb, export_obj
from backend.mesh.bake import bake_cameras, bake_texture, mesh_tensors
from backend.mesh.density_grid import density_grid
from backend.mesh.extract import clean_mesh, decimate, marching_cubes
from backend.mesh.mesh import Mesh
from backend.mesh.mesh_config import MeshConfig
from backend.mesh.rasterize import rasterize_mesh
from backend.mesh.refine_texture import refine_texture
from backend.mesh.texture_config import TextureConfig
from backend.mesh.texture_sampling import interpolate_attributes, render_textured
from backend.mesh.uv_unwrap import UnwrapConfig, unwrap_uvs
from tests.mesh_fixtures import View, random_gaussians, smooth_vertex_colours


class TintGuidance:
    """Stand-in for Zero123Guidance.refine: returns the renders slightly tinted."""

    def refine(self, images, d_elevation_deg, d_azimuth_deg, d_radius, strength=0.8, steps=20, guidance_scale=5.0):
        return (images * 0.9 + 0.05).clamp(0, 1)


@dataclass(frozen=True)
class PipelineRun:
    mesh: Mesh  # refined
    baked: Mesh
    bake_psnr: list[float]  # re-rendered baked texture vs the fake renders, at some bake views
    times: dict[str, float]


def run_mesh_pipeline(device, *, gaussian_count: int, scale_range: tuple[float, float], mesh_config: MeshConfig,
                      bake_size: int, texture_size: int, texture_config: TextureConfig, out_dir: Path | None = None,
                      ) -> PipelineRun:
    device = torch.device(device)
    gaussians = random_gaussians(gaussian_count, seed=0, device=device, scale_range=scale_range)
    times: dict[str, float] = {}

    def timed(name, fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times[name] = time.perf_counter() - start
        return result

    c = mesh_config
    grid = timed("density_grid", lambda: density_grid(gaussians, c.resolution, c.bound, block=c.block))
    vertices, faces = timed("marching_cubes", lambda: marching_cubes(grid.cpu().numpy(), c.threshold, c.bound))
    cleaned = timed("cleanup", lambda: clean_mesh(vertices, faces, c.min_component_fraction))
    decimated = timed("decimate", lambda: decimate(cleaned, c.target_faces))
    mesh = Mesh(np.asarray(decimated.vertices, np.float32), np.asarray(decimated.faces, np.int64))
    mesh = timed("uv_unwrap", lambda: unwrap_uvs(mesh, UnwrapConfig(resolution=texture_size)))

    v, f, uv = mesh_tensors(mesh, device)
    colours = smooth_vertex_colours(v)

    def render_view(camera):
        raster = rasterize_mesh(v, f, camera)
        alpha = raster.mask.float()
        return interpolate_attributes(raster, f, colours) * alpha[..., None] + (1 - alpha[..., None]), alpha

    cameras = bake_cameras(bake_size)
    baked = timed("bake", lambda: bake_texture(mesh, render_view, cameras, texture_size))
    texture = torch.as_tensor(baked.texture, device=device)
    psnr = [float(-10 * torch.log10(((render_textured(v, f, uv, texture, cam)[0] - render_view(cam)[0]) ** 2).mean()))
            for cam in cameras[::5]]

    camera = reference_camera(texture_config.render_size)
    reference = View(camera, *render_view(camera))
    refined = timed("refine", lambda: refine_texture(baked, reference, TintGuidance(), texture_config))
    if out_dir is not None:
        def export():
            export_glb(refined, out_dir / "model.glb", {"models": "tiny"})
            export_obj(refined, out_dir)
            export_gaussians_ply(gaussians, out_dir / "gaussians.ply")

        timed("export", export)
    return PipelineRun(refined, baked, psnr, times)


def format_times(run: PipelineRun, title: str) -> str:
    lines = [f"{title} ({run.mesh.face_count} faces, {run.mesh.vertex_count} vertices)"]
    lines += [f"  {name:16s} {seconds:7.3f} s" for name, seconds in run.times.items()]
    lines.append(f"  {'total':16s} {sum(run.times.values()):7.3f} s")
    return "\n".join(lines)
