"""The mesh stage end to end on the CPU at tiny sizes (the same chain the GPU timing test runs)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from backend.mesh.mesh_config import MeshConfig
from backend.mesh.texture_config import TextureConfig
from tests.mesh_fixtures import one_torch_thread
from tests.mesh_pipeline_run import format_times, run_mesh_pipeline


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def test_gaussians_to_files_on_cpu(tmp_path):
    run = run_mesh_pipeline(
        "cpu", gaussian_count=600, scale_range=(0.05, 0.12), mesh_config=MeshConfig(resolution=32, target_faces=1500),
        bake_size=48, texture_size=128, texture_config=TextureConfig(steps=3, render_size=48, target_views=2),
        out_dir=tmp_path,
    )
    print("\n" + format_times(run, "mesh stage on CPU"))
    assert 0 < run.mesh.face_count <= 1500
    assert min(run.bake_psnr) > 25.0, run.bake_psnr
    assert run.mesh.texture.shape == (128, 128, 3)
    assert not np.array_equal(run.mesh.texture, run.baked.texture)  # stage 2 changed something
    loaded = trimesh.load(tmp_path / "model.glb")
    assert len(next(iter(loaded.geometry.values())).faces) == run.mesh.face_count
    assert {p.name for p in tmp_path.iterdir()} == {"model.glb", "model.obj", "model.mtl", "model_texture.png",
                                                    "gaussians.ply"}
