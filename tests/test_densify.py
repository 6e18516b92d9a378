"""Trainable Gaussians and density control: the optimiser state follows the rows."""

from __future__ import annotations

import math

import pytest
import torch

from backend.gaussians.densify import (
    DensifyConfig,
    ScreenGradientStats,
    append_gaussians,
    clone_gaussians,
    densify_and_prune,
    keep_gaussians,
    raw_rows,
    reset_opacity,
    split_gaussians,
)
from backend.gaussians.learning_rates import LearningRates
from backend.gaussians.model import PARAMETER_NAMES, GaussianModel


def trained_model(n=50, seed=0):
    """A model and an Adam that has taken two steps (so every row has non-zero moments)."""
    model = GaussianModel.in_sphere(n, 0.5, generator=torch.Generator().manual_seed(seed))
    optimizer = model.make_optimizer(LearningRates())
    for _ in range(2):
        g = model.gaussians()
        (g.means.square().sum() + g.scales.sum() + g.opacities.sum() + g.colors.sum() + g.quats[:, 1].sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def assert_consistent(model, optimizer):
    n = len(model)
    for group in optimizer.param_groups:
        param = group["params"][0]
        assert param is getattr(model, group["name"])
        assert param.shape[0] == n
        state = optimizer.state[param]
        assert state["exp_avg"].shape == param.shape and state["exp_avg_sq"].shape == param.shape


def test_init_in_sphere_matches_the_design():
    model = GaussianModel.in_sphere(5000, 0.5, generator=torch.Generator().manual_seed(0))
    g = model.gaussians().detach()
    assert len(g) == 5000
    radii = g.means.norm(dim=-1)
    assert float(radii.max()) <= 0.5
    assert abs(float((radii < 0.25).float().mean()) - 0.125) < 0.02  # uniform in volume: 1/8 inside half radius
    torch.testing.assert_close(g.opacities, torch.full((5000,), 0.1))
    torch.testing.assert_close(g.quats.norm(dim=-1), torch.ones(5000))
    assert 0.01 < float(g.scales.mean()) < 0.05


def test_position_learning_rate_decays_log_linearly():
    lrs = LearningRates()  # 1e-3 → 2e-5, times spatial_lr_scale 10
    assert lrs.means_at(0.0) == pytest.approx(1e-2)
    assert lrs.means_at(1.0) == pytest.approx(2e-4)
    assert lrs.means_at(0.5) == pytest.approx(math.sqrt(1e-2 * 2e-4))


def test_keep_and_append_move_adam_moments_with_their_rows():
    model, optimizer = trained_model()
    moments_before = optimizer.state[model.means]["exp_avg"].clone()
    keep = torch.arange(50) % 3 != 0
    keep_gaussians(model, optimizer, keep)
    assert len(model) == int(keep.sum())
    torch.testing.assert_close(optimizer.state[model.means]["exp_avg"], moments_before[keep])
    assert_consistent(model, optimizer)

    n = len(model)
    append_gaussians(model, optimizer, raw_rows(model, torch.arange(n) < 4))
    assert len(model) == n + 4
    assert optimizer.state[model.means]["exp_avg"][n:].abs().sum() == 0  # new rows start without momentum
    assert_consistent(model, optimizer)

    # and Adam still steps every parameter
    before = model.means.detach().clone()
    model.gaussians().means.square().sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.means.detach())


def test_clone_and_split_add_the_right_rows():
    model, optimizer = trained_model()
    mask = torch.zeros(50, dtype=torch.bool)
    mask[[1, 5]] = True
    clone_gaussians(model, optimizer, mask)
    assert len(model) == 52
    torch.testing.assert_close(model.means[50:], model.means[[1, 5]])

    split = torch.zeros(52, dtype=torch.bool)
    split[[0, 2, 3]] = True
    original_scales = model.log_scales.detach()[[0, 2, 3]].exp()
    original_means = model.means.detach()[[0, 2, 3]]
    split_gaussians(model, optimizer, split, 2, torch.Generator().manual_seed(0))
    assert len(model) == 52 - 3 + 6
    children = model.log_scales.detach()[-6:].exp()
    torch.testing.assert_close(children, (original_scales / 1.6).repeat(2, 1))
    offsets = (model.means.detach()[-6:] - original_means.repeat(2, 1)).norm(dim=-1)
    assert float(offsets.max()) < 5 * float(original_scales.max())  # sampled inside the parent
    assert_consistent(model, optimizer)


def test_reset_opacity_clamps_and_zeros_the_moments():
    model, optimizer = trained_model()
    with torch.no_grad():
        model.opacity_logits[:10] = 3.0
    reset_opacity(model, optimizer, 0.01)
    assert float(torch.sigmoid(model.opacity_logits.detach()).max()) <= 0.01 + 1e-6
    assert optimizer.state[model.opacity_logits]["exp_avg"].abs().sum() == 0
    assert_consistent(model, optimizer)


def test_densify_and_prune_follows_gradients_scales_and_opacity():
    model, optimizer = trained_model(n=20)
    with torch.no_grad():
        model.log_scales[:] = math.log(0.02)  # small: clone
        model.log_scales[1] = math.log(0.1)  # large: split
        model.opacity_logits[:] = 0.0
        model.opacity_logits[2] = -10.0  # faint: prune
        model.log_scales[3] = math.log(1.0)  # huge: prune
    grads = torch.zeros(1, 20, 2)
    grads[0, 0] = 1.0  # steep, small → clone
    grads[0, 1] = 1.0  # steep, large → split
    radii = torch.full((1, 20), 3)
    stats = ScreenGradientStats.zeros(20, "cpu").accumulate(grads, radii, 64, 64)
    assert float(stats.mean_grad()[0]) == pytest.approx(math.hypot(32, 32))
    densify_and_prune(model, optimizer, stats, DensifyConfig(), torch.Generator().manual_seed(0))
    # 20 + 1 clone + 2 children - 1 split parent - 1 faint - 1 huge
    assert len(model) == 20
    assert_consistent(model, optimizer)
    assert float(torch.sigmoid(model.opacity_logits.detach()).min()) > 0.01


def test_config_schedules():
    config = DensifyConfig(start_step=100, stop_step=450, every=100, opacity_reset_every=300)
    assert [s for s in range(1, 600) if config.is_densify_step(s)] == [100, 200, 300, 400]
    assert [s for s in range(1, 600) if config.is_opacity_reset_step(s)] == [300]
    assert not DensifyConfig(enabled=False).is_densify_step(100)


def test_parameter_names_are_the_optimizer_groups():
    model, optimizer = trained_model(n=5)
    assert tuple(g["name"] for g in optimizer.param_groups) == PARAMETER_NAMES
