"""quick+refine's pieces: the Gaussian start from a TripoSR reconstruction, and the adjusted settings."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from backend.generate.presets import pipeline_config
from backend.mesh import Mesh
from backend.models.triposr import FieldSample
from backend.quick.gaussian_start import gaussians_from_reconstruction
from backend.quick.refine_config import quick_refine_config


class _SphereReconstruction:
    """Stands in for QuickReconstruction: a radius-0.5 sphere whose colour is red above y = 0, blue below."""

    level = 1.0

    def __init__(self):
        sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
        self.mesh = Mesh(vertices=sphere.vertices.astype(np.float32), faces=sphere.faces.astype(np.int64))

    def field_at(self, points: torch.Tensor) -> FieldSample:
        inside = (points.norm(dim=-1) <= 0.5).float()
        top = (points[:, 1] > 0).float()[:, None]
        colour = top * torch.tensor([0.9, 0.1, 0.1]) + (1 - top) * torch.tensor([0.1, 0.1, 0.9])
        return FieldSample(density=2.0 * inside, colour=colour)

    def colour_at(self, points: torch.Tensor) -> torch.Tensor:
        return self.field_at(points).colour


def test_start_puts_half_the_gaussians_on_the_surface_and_half_inside_with_the_field_colours():
    model = gaussians_from_reconstruction(_SphereReconstruction(), 2000, seed=3)
    with torch.no_grad():
        gaussians = model.gaussians()
    radius = gaussians.means.detach().norm(dim=-1)
    assert len(model) == 2000
    on_surface = (radius - 0.5).abs() < 0.01  # the icosphere's flat faces sit a little inside the sphere
    assert 0.45 < float(on_surface.float().mean()) < 0.6
    assert float(radius.max()) <= 0.5 + 1e-4  # nothing outside
    top = gaussians.means[:, 1] > 0.02
    assert torch.allclose(gaussians.colors[top].mean(0), torch.tensor([0.9, 0.1, 0.1]), atol=1e-3)
    assert torch.allclose(gaussians.opacities, torch.full((2000,), 0.5))
    again = gaussians_from_reconstruction(_SphereReconstruction(), 2000, seed=3)
    assert torch.equal(again.means, model.means)  # seeded


def test_refine_settings_cut_steps_cap_sds_noise_and_slow_positions_but_keep_an_explicit_step_count():
    standard = pipeline_config("standard")
    refined = quick_refine_config(standard, steps_given=False)
    assert refined.stage1.steps == 200 and standard.stage1.steps == 500
    assert refined.guidance.t_max == 0.5 and refined.stage1.lrs.means < standard.stage1.lrs.means
    assert refined.mesh == standard.mesh and refined.texture == standard.texture
    assert quick_refine_config(pipeline_config("standard", steps=77), steps_given=True).stage1.steps == 77
