"""One Adam step for several rows' optimisers: the same numbers as each ``Adam.step``, in fewer calls."""

from __future__ import annotations

import copy

import pytest
import torch

from backend.gaussians import adam_together
from backend.gaussians.adam_together import step_adams_together
from backend.gaussians.densify import clone_gaussians, keep_gaussians
from backend.gaussians.learning_rates import LearningRates
from backend.gaussians.model import PARAMETER_NAMES, GaussianModel


def rows(count: int, fused: bool) -> list[tuple[GaussianModel, torch.optim.Adam]]:
    """``count`` models of different sizes, each with the optimiser stage 1 makes."""
    made = []
    for seed in range(count):
        model = GaussianModel.in_sphere(30 + 7 * seed, 0.5, generator=torch.Generator().manual_seed(seed))
        made.append((model, model.make_optimizer(LearningRates(), fused=fused)))
    return made


def take_gradients(row_list, step: int, skip_colour_of: int | None = None) -> None:
    for index, (model, _) in enumerate(row_list):
        g = model.gaussians()
        loss = ((g.means - 0.1 * step).square().sum() + g.scales.sum() + (g.opacities * index).sum()
                + g.quats[:, 1].sum())
        if index != skip_colour_of:
            loss = loss + g.colors.square().sum()
        loss.backward()


def assert_same(mine, theirs) -> None:
    for (model, optimizer), (other_model, other_optimizer) in zip(mine, theirs, strict=True):
        for name in PARAMETER_NAMES:
            param, other = getattr(model, name), getattr(other_model, name)
            torch.testing.assert_close(param, other, rtol=0, atol=0)
            state, other_state = optimizer.state[param], other_optimizer.state[other]
            assert state.keys() == other_state.keys()
            for key in state:
                torch.testing.assert_close(state[key], other_state[key], rtol=0, atol=0)


@pytest.mark.parametrize("fused", [False, True])
def test_stepping_together_equals_each_optimiser_stepping_alone(fused):
    """Over steps with different learning rates per row, a parameter without a gradient (its state starts
    later) and density control replacing a row's parameters and moments in between."""
    together = rows(3, fused)
    alone = copy.deepcopy(together)
    for step in range(4):
        for row_list in (together, alone):
            take_gradients(row_list, step, skip_colour_of=1 if step < 2 else None)
            for index, (_, optimizer) in enumerate(row_list):
                optimizer.param_groups[0]["lr"] = 1e-3 * (step + 1) * (1 + (index == 2))
        step_adams_together([optimizer for _, optimizer in together])
        for _, optimizer in alone:
            optimizer.step()
        for row_list in (together, alone):
            for _, optimizer in row_list:
                optimizer.zero_grad(set_to_none=True)
            if step == 1:  # density control between steps, the same on both sides
                model, optimizer = row_list[0]
                clone_gaussians(model, optimizer, torch.arange(len(model)) % 3 == 0)
                keep_gaussians(model, optimizer, torch.arange(len(model)) % 5 != 0)
        assert_same(together, alone)
    assert float(together[1][1].state[together[1][0].color_sh_dc]["step"]) == 2  # began at step 2


def test_groups_of_equal_settings_share_one_call(monkeypatch):
    calls = []
    real = adam_together.adam

    def counting(params, *args, **kwargs):
        calls.append(len(params))
        return real(params, *args, **kwargs)

    monkeypatch.setattr(adam_together, "adam", counting)
    made = rows(4, fused=False)
    take_gradients(made, 0)
    step_adams_together([optimizer for _, optimizer in made])
    rates = [group["lr"] for group in made[0][1].param_groups]
    # one call per learning rate (parameter kinds of equal rates share it), each with the four rows' tensors
    assert sorted(calls) == sorted(4 * rates.count(rate) for rate in set(rates))
    assert len(calls) < len(PARAMETER_NAMES)

    calls.clear()
    made[3][1].param_groups[0]["lr"] = 123.0  # one row further along its position schedule: its own call
    take_gradients(made, 1)
    step_adams_together([optimizer for _, optimizer in made])
    assert 1 in calls and sum(calls) == 4 * len(PARAMETER_NAMES) and len(calls) == len(set(rates)) + 1
