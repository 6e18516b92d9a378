"""Facts of DreamGaussian's recipe (commit 69a3c70) that our defaults must keep: one test per row of
docs/reference-method.md's table. Each states the number from their code and checks ours against it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from mesh_fixtures import one_gaussian, uv_sphere_mesh

from backend.camera import Camera, reference_camera
from backend.errors import ModelsUnavailableError
from backend.gaussians.densify import final_prune_mask
from backend.gaussians.densify_config import DensifyConfig, FinalPruneConfig
from backend.gaussians.gaussians import Gaussians
from backend.gaussians.learning_rates import LearningRates
from backend.gaussians.model import SH_C0, GaussianModel
from backend.guidance.zero123_guidance import refine_timesteps
from backend.mesh.bake import bake_cameras, bake_texture, mesh_tensors
from backend.mesh.density_grid import gaussian_box
from backend.mesh.extract import extract_mesh
from backend.mesh.mesh_config import MeshConfig
from backend.mesh.rasterize import rasterize_mesh
from backend.mesh.refine_texture import _cache_view, reference_loss, refine_texture, vertex_normals
from backend.mesh.texture_config import TextureConfig
from backend.mesh.texture_sampling import interpolate_attributes, sample_texture
from backend.models import zero123 as zero123_module
from backend.models.mode import ModelMode
from backend.preprocess import mask_bounding_box, prepare_reference
from backend.stage1 import ViewTarget, fit_gaussians
from backend.stage1_config import Stage1Config


def _disc_target(size: int = 32) -> ViewTarget:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    alpha = ((xx - size / 2 + 0.5) ** 2 + (yy - size / 2 + 0.5) ** 2 < (size / 4) ** 2).float()
    rgb = torch.stack([alpha * 0.9, alpha * 0.3, alpha * 0.1], -1)
    return ViewTarget(reference_camera(size), rgb, alpha)


TINY_FIT = Stage1Config(steps=1, num_init=200, render_sizes=(32,), densify=DensifyConfig(enabled=False),
                        final_prune=FinalPruneConfig(enabled=False))


# 1. Position learning rate: 0.001 → 2e-5 times spatial_lr_scale 10, log-linear over 500 steps, set for the
#    1-based step s from s / 500 before the step.
def test_position_learning_rate_at_steps_1_and_500_includes_spatial_lr_scale_10():
    lrs = LearningRates()
    assert lrs.spatial_lr_scale == 10.0
    assert lrs.means_at(1 / 500) == pytest.approx(0.01 * (2e-4 / 0.01) ** (1 / 500), rel=1e-12)  # ≈ 0.009922
    assert lrs.means_at(500 / 500) == pytest.approx(2e-4, rel=1e-12)


def test_stage1_steps_with_the_rate_of_its_one_based_step():
    """Adam's first step moves every coordinate with a gradient by exactly the learning rate, so the largest
    move shows the rate: a one-step run is at step 1 of 1, the end of the decay (2e-4), not its start (0.01)."""
    start = GaussianModel.in_sphere(200, TINY_FIT.init_radius, generator=torch.Generator().manual_seed(0))
    result = fit_gaussians([_disc_target()], TINY_FIT, None, device="cpu", seed=0)
    moved = (result.gaussians.means - start.means.detach()).abs().max()
    assert float(moved) == pytest.approx(2e-4, rel=1e-3)


# 2. Framing: process.py puts the object's long side at int(256 · (1 - 0.2)) = 204 px of the 256² square.
def test_framed_object_long_side_is_80_percent_of_the_256_reference():
    rgb = np.zeros((300, 500, 3), np.float32)
    alpha = np.zeros((300, 500), np.float32)
    alpha[100:150, 100:400] = 1.0  # 300 wide, 50 tall
    ref = prepare_reference(rgb, alpha, size=256, border_ratio=0.2)
    top, left, bottom, right = mask_bounding_box(ref.alpha)
    assert right - left == 204 and bottom - top == 34  # int(50 · 204 / 300) = 34
    assert left == (256 - 204) // 2 and top == (256 - 34) // 2


# 3. Densification statistics: the screen-space gradients of the novel (SDS) view only.
class _FlatGuidance:
    """An SDS loss with zero gradient (``scale`` 0) or a strong one on every rendered pixel."""

    def __init__(self, scale: float):
        self.scale = scale

    def sds_loss(self, images, d_elevation_deg, d_azimuth_deg, d_radius, step_ratio, guidance_scale=5.0):
        return self.scale * ((images - 0.5) ** 2).sum()


def test_densification_statistics_come_from_the_novel_view_only():
    densify = DensifyConfig(start_step=4, every=4, grad_threshold=1e-6)
    config = dataclasses.replace(TINY_FIT, steps=4, densify=densify)
    target = _disc_target()
    without_prior = fit_gaussians([target], config, None, device="cpu", seed=0).gaussian_count
    silent_prior = fit_gaussians([target], config, _FlatGuidance(0.0), device="cpu", seed=0).gaussian_count
    loud_prior = fit_gaussians([target], config, _FlatGuidance(1e3), device="cpu", seed=0).gaussian_count
    assert without_prior > 200  # with no prior the reference view is all there is, and it grows Gaussians
    assert silent_prior <= 200  # the reference view's (large) gradients do not count when a prior is there
    assert loud_prior > 200  # the novel view's do


# 4. The prune before meshing: prune(min_opacity=0.01, extent=1) drops opacity < 0.01 or max scale > 0.1.
def test_pre_mesh_prune_removes_faint_and_oversized_gaussians():
    n = 5
    gaussians = Gaussians(
        means=torch.zeros(n, 3),
        scales=torch.tensor([[0.05] * 3, [0.05] * 3, [0.05, 0.2, 0.05], [0.1] * 3, [0.099, 0.01, 0.01]]),
        quats=torch.tensor([[1.0, 0, 0, 0]] * n),
        opacities=torch.tensor([0.005, 0.01, 0.9, 0.5, 0.02]),
        colors=torch.full((n, 3), 0.5),
    )
    assert final_prune_mask(gaussians, FinalPruneConfig()).tolist() == [False, True, False, True, True]
    assert Stage1Config().final_prune == FinalPruneConfig(enabled=True, min_opacity=0.01, max_world_scale=0.1)


def test_stage1_ends_with_the_pre_mesh_prune():
    # Every Gaussian starts (and after two steps stays) fainter than 0.01: the prune would take them all, and
    # keeps the most opaque one so meshing reports 'no surface' rather than getting an empty set.
    config = dataclasses.replace(TINY_FIT, steps=2, init_opacity=0.005)
    unpruned = fit_gaussians([_disc_target()], config, None, device="cpu", seed=0).gaussians
    pruned = fit_gaussians([_disc_target()], dataclasses.replace(config, final_prune=FinalPruneConfig()), None,
                           device="cpu", seed=0).gaussians
    assert len(unpruned) == 200 and bool((unpruned.opacities < 0.01).all())
    assert len(pruned) == 1 and float(pruned.opacities[0]) == float(unpruned.opacities.max())


# 5. Stage 2: 50 steps, one fresh random view each, its target from the current texture, strength
#    step/50 · 0.15 + 0.8 (t 181 → 41); reference loss over alpha > 0 and view-cos > 0.5.
class _DarkeningGuidance:
    """refine() answers black images and records what it was asked."""

    def __init__(self):
        self.calls = []

    def refine(self, images, d_elevation_deg, d_azimuth_deg, d_radius, strength=0.8, steps=50, guidance_scale=5.0):
        self.calls.append(dict(batch=images.shape[0], strength=strength, steps=steps, mean=float(images.mean()),
                               azimuth=float(d_azimuth_deg[0]), elevation=float(d_elevation_deg[0])))
        return torch.zeros_like(images)


def test_stage2_makes_each_steps_target_from_the_current_texture_with_rising_strength():
    config = TextureConfig(render_size=24)
    assert (config.steps, config.lr, config.target_views, config.batch_size) == (50, 0.2, 0, 1)
    mesh = uv_sphere_mesh(subdivisions=1, texture_resolution=32).with_texture(np.full((32, 32, 3), 0.9, np.float32))
    reference = ViewTarget(reference_camera(16), torch.ones(16, 16, 3), torch.zeros(16, 16))
    guidance = _DarkeningGuidance()
    refine_texture(mesh, reference, guidance, config)
    calls = guidance.calls
    assert len(calls) == 50 and all(c["batch"] == 1 and c["steps"] == 50 for c in calls)
    assert calls[0]["strength"] == 1 / 50 * 0.15 + 0.8 and calls[-1]["strength"] == 1.0 * 0.15 + 0.8
    scheduler = DDIMScheduler(**zero123_module.SCHEDULER_CONFIG)
    assert int(refine_timesteps(scheduler, calls[0]["strength"], 50)[0]) == 181
    assert int(refine_timesteps(scheduler, calls[-1]["strength"], 50)[0]) == 41
    assert len(refine_timesteps(scheduler, 0.8, 50)) == 10
    # the renders darken as the texture follows the black targets: each target is made from the current texture
    assert calls[-1]["mean"] < calls[0]["mean"] - 0.1
    assert len({(c["azimuth"], c["elevation"]) for c in calls}) > 40  # a fresh random view per step
    assert all(c["elevation"] == int(c["elevation"]) and -30 <= c["elevation"] < 30 for c in calls)


def test_stage2_reference_loss_counts_covered_pixels_facing_the_camera():
    mesh = uv_sphere_mesh(subdivisions=3, texture_resolution=32)
    vertices, faces, uvs = mesh_tensors(mesh, "cpu")
    camera = reference_camera(64)
    photo = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(0))
    view = _cache_view(vertices, faces, uvs, camera, photo, vertex_normals(vertices, faces), 0.5)
    covered = rasterize_mesh(vertices, faces, camera).mask
    valid = view.valid[..., 0].bool()
    assert bool((valid <= covered).all())
    # a sphere (r 0.6) seen from 2 units: in perspective the view-cos > 0.5 cap (60° from the axis) reaches
    # out to radius r·sin60°/(2 - r·cos60°) in the image, the silhouette (72.5°) to r·sin72.5°/(2 - r·cos72.5°):
    # (0.306 / 0.314)² = 95 % of the disc's pixels
    assert 0.91 < float(valid.sum() / covered.sum()) < 0.97
    texture = torch.full((32, 32, 3), 0.3)
    render = sample_texture(texture, interpolate_attributes(rasterize_mesh(vertices, faces, camera), faces, uvs))
    render = render * view.mask + (1 - view.mask)
    expected = (((render - photo) ** 2) * valid[..., None]).sum() / (64 * 64 * 3)  # mean over the whole image
    assert float(reference_loss(view, texture)) == pytest.approx(float(expected), rel=1e-5)
    assert TextureConfig().reference_min_cosine == 0.5


# 6. Bake: each texel from the first view, front first, that sees it at cos > 0.5.
def test_bake_gives_each_texel_to_the_first_view_that_sees_it():
    cameras = bake_cameras(64)
    assert len(cameras) == 26
    front = cameras[0].c2w[:3, 3]
    assert np.allclose(front / np.linalg.norm(front), (0, 0, 1))  # the reference view first
    mesh = uv_sphere_mesh(subdivisions=3, texture_resolution=128)
    colours = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])]
    views = [Camera.orbit(0.0, 0.0, 64), Camera.orbit(0.0, 30.0, 64)]  # both see the front at cos > 0.5

    def render_view(camera):
        index = next(i for i, c in enumerate(views) if np.array_equal(c.c2w, camera.c2w))
        return colours[index].expand(64, 64, 3).clone(), torch.ones(64, 64)

    baked = bake_texture(mesh, render_view, views, 128)
    vertices, faces, uvs = mesh_tensors(mesh, "cpu")
    raster = rasterize_mesh(vertices, faces, views[0])
    seen = sample_texture(torch.as_tensor(baked.texture), interpolate_attributes(raster, faces, uvs))
    centre = seen[28:36, 28:36].reshape(-1, 3)
    assert torch.allclose(centre, colours[0].expand_as(centre), atol=1e-6)  # the front's, not a blend
    weighted = bake_texture(mesh, render_view, views, 128, min_cosine=0.1, ownership="weighted")
    blended = sample_texture(torch.as_tensor(weighted.texture), interpolate_attributes(raster, faces, uvs))
    assert float(blended[32, 32, 1]) > 0.2  # the softer option mixes the second view in


# 7. Density grid: 128³ over the Gaussians' box, its longest side scaled to ±0.9 of the grid.
def test_density_grid_spans_the_gaussians_box_at_90_percent():
    means = torch.tensor([[0.2, -0.1, 0.0], [0.6, 0.1, 0.2], [5.0, 5.0, 5.0]])
    gaussians = Gaussians(means, torch.full((3, 3), 0.05), torch.tensor([[1.0, 0, 0, 0]] * 3),
                          torch.tensor([0.5, 0.5, 0.001]), torch.full((3, 3), 0.5))
    centre, bound = gaussian_box(gaussians)  # the faint one far away does not count (opacity ≤ 0.005)
    assert centre == pytest.approx((0.4, 0.0, 0.1)) and bound == pytest.approx(0.4 / 1.8)
    assert (MeshConfig().resolution, MeshConfig().grid_box) == (128, "gaussians")


def test_a_blob_outside_the_unit_cube_is_meshed_whole():
    blob = one_gaussian(scales=(0.15, 0.15, 0.15), mean=(1.3, 0.0, 0.0))
    mesh = extract_mesh(blob, MeshConfig(resolution=32, threshold=0.5, target_faces=0, smoothing_iterations=0))
    # density 0.5 at Mahalanobis² 2 ln 2: radius 0.15 · sqrt(2 ln 2) ≈ 0.177 around x = 1.3
    assert mesh.vertices[:, 0].max() == pytest.approx(1.3 + 0.177, abs=0.02)
    assert mesh.vertices[:, 0].min() == pytest.approx(1.3 - 0.177, abs=0.02)


# 8. Colour: SH degree 0, C0 · f_dc + 0.5, starting grey (f_dc uniform in [0, 1/255)).
def test_colour_is_sh_degree_0_and_starts_grey():
    model = GaussianModel.in_sphere(1000, generator=torch.Generator().manual_seed(0))
    colours = model.gaussians().colors.detach()
    assert float((colours - 0.5).abs().max()) < SH_C0 / 255 + 1e-7
    with torch.no_grad():
        model.color_sh_dc.fill_(1.0)
    assert torch.allclose(model.gaussians().colors, torch.full((1000, 3), 0.5 + SH_C0))
    # linear in the parameter: the same step moves a colour near 0.98 as fast as one at 0.5
    sh = torch.tensor([[0.0], [(0.98 - 0.5) / SH_C0]], requires_grad=True)
    from backend.gaussians.model import sh_dc_to_color
    sh_dc_to_color(sh).sum().backward()
    assert torch.allclose(sh.grad, torch.full((2, 1), SH_C0))


# 9. Zero123 works at 256 px, 32² latents; a model that says otherwise is refused (exit 4, naming the value).
def test_zero123_working_size_is_256_and_another_is_refused(tmp_path):
    assert (zero123_module.ZERO123_IMAGE_SIZE, zero123_module.ZERO123_LATENT_SIZE) == (256, 32)
    full = zero123_module._full_size_configs()
    assert full.unet["sample_size"] * 2 ** (len(full.vae["block_out_channels"]) - 1) == 256
    folder = zero123_module.save_zero123_folder(zero123_module.load_zero123(ModelMode.TINY, "cpu"),
                                                tmp_path / "zero123-xl")  # its config: 16² latents, 32 px
    with pytest.raises(ModelsUnavailableError) as err:
        zero123_module.load_zero123(ModelMode.REAL, "cpu", local_dir=folder)
    assert err.value.exit_code == 4
    assert "32 px" in str(err.value) and "sample_size 16" in str(err.value) and "256 px" in str(err.value)


# Stage 1's novel-view size: 128 px below step ratio 0.3, 256 below 0.6, 512 after (main.py).
def test_sds_render_size_switches_at_30_and_60_percent():
    config = Stage1Config()
    assert config.render_sizes == (128, 256, 512)
    assert [config.render_size_at(s / 500) for s in (1, 149, 150, 299, 300, 500)] == [128, 128, 256, 256, 512, 512]
