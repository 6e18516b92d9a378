"""The mesh stage on CUDA: CPU/GPU agreement and per-stage timings at production sizes (run with -m gpu -s).

Timed: density grid 128³ of 30k Gaussians, marching cubes + cleanup + decimation to 20k faces, xatlas, bake of
26 views at 512² into a 1024² texture, 100 stage-2 steps at 512² with 8 cached target views, export.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.camera import Camera
from backend.mesh.bake import mesh_tensors
from backend.mesh.density_grid import density_grid
from backend.mesh.mesh_config import MeshConfig
from backend.mesh.rasterize import rasterize_mesh
from backend.mesh.texture_config import TextureConfig
from tests.mesh_fixtures import random_gaussians, uv_sphere_mesh
from tests.mesh_pipeline_run import format_times, run_mesh_pipeline

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_density_grid_cuda_matches_cpu():
    gaussians = random_gaussians(3000, seed=2)
    cpu = density_grid(gaussians, 48, 1.0, block=16)
    gpu = density_grid(gaussians.to("cuda"), 48, 1.0, block=16)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True  # as a training loop elsewhere might leave it
    try:
        with_tf32_enabled = density_grid(gaussians.to("cuda"), 48, 1.0, block=16)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    torch.testing.assert_close(with_tf32_enabled.cpu(), cpu, atol=1e-3, rtol=1e-3)


def test_rasterizer_cuda_matches_cpu():
    mesh = uv_sphere_mesh(subdivisions=4)
    vertices, faces, _ = mesh_tensors(mesh, "cpu")
    camera = Camera.orbit(15.0, 40.0, 256)
    cpu = rasterize_mesh(vertices, faces, camera)
    gpu = rasterize_mesh(vertices.cuda(), faces.cuda(), camera)
    assert (gpu.tri_id.cpu() == cpu.tri_id).float().mean().item() > 0.999  # edge ties may round differently
    both = (gpu.tri_id.cpu() == cpu.tri_id) & cpu.mask
    torch.testing.assert_close(gpu.bary.cpu()[both], cpu.bary[both], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gpu.depth.cpu()[both], cpu.depth[both], atol=1e-4, rtol=1e-4)


def test_mesh_bake_refine_timings_on_cuda(tmp_path):
    # Outside the timings: the CUDA context, and torch._dynamo, which Adam imports once per process (seconds).
    density_grid(random_gaussians(100, device="cuda"), 32)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    run = run_mesh_pipeline(
        "cuda", gaussian_count=30_000, scale_range=(0.01, 0.04), mesh_config=MeshConfig(),
        bake_size=512, texture_size=1024,
        texture_config=TextureConfig(steps=100, render_size=512, target_views=8), out_dir=tmp_path,
    )
    print("\n" + format_times(run, f"mesh stage on {torch.cuda.get_device_name()}"))
    assert 0 < run.mesh.face_count <= MeshConfig().target_faces
    assert min(run.bake_psnr) > 30.0, run.bake_psnr
    assert run.mesh.texture.shape == (1024, 1024, 3) and np.isfinite(run.mesh.texture).all()
    assert (tmp_path / "model.glb").stat().st_size > 10_000
    assert sum(run.times.values()) < 60.0  # a generous guard; the aim for this block is a few seconds
