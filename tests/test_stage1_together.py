"""Several objects' stage-1 fits advancing together (backend.stage1.fit_gaussians_together) on tiny Zero123
models: the same result as each fit alone, one render call per kind of view and one UNet call per step for all
of them, and each object failing and cancelling alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from backend import stage1
from backend.camera import reference_camera
from backend.errors import BadInputError, CancelledError
from backend.gaussians.densify import DensifyConfig, FinalPruneConfig
from backend.gaussians.render import render_gaussians
from backend.guidance import GuidanceConfig, Zero123Guidance
from backend.job_control import JobControl
from backend.models.mode import ModelMode
from backend.models.zero123 import load_zero123
from backend.stage1 import (
    Stage1Config,
    Stage1Job,
    ViewTarget,
    _ObjectFit,
    fit_gaussians,
    fit_gaussians_together,
)
from tests.test_stage1 import known_scene

# Densification every other step with no gradient threshold: each object grows its own Gaussians.
CONFIG = Stage1Config(steps=6, num_init=150, render_sizes=(32,), progress_interval_s=0.0,
                      densify=DensifyConfig(start_step=2, every=2, grad_threshold=0.0, max_gaussians=400),
                      final_prune=FinalPruneConfig(enabled=False))
FIELDS = ("means", "scales", "quats", "opacities", "colors")


@pytest.fixture(scope="module")
def models():
    return load_zero123(ModelMode.TINY, "cpu")


@pytest.fixture
def unet_batches(models):
    """The batch size of every UNet call while the test runs."""
    sizes: list[int] = []
    handle = models.unet.register_forward_pre_hook(lambda module, args: sizes.append(int(args[0].shape[0])))
    yield sizes
    handle.remove()


@pytest.fixture
def render_calls(monkeypatch):
    """(width, Gaussian count of each object) of every render call stage 1 makes while the test runs."""
    calls: list[tuple[int, list[int]]] = []
    real = stage1.render_views_together

    def recording(gaussians, viewmats, Ks, width, height, backgrounds, backend):
        calls.append((width, [len(g) for g in gaussians]))
        return real(gaussians, viewmats, Ks, width, height, backgrounds, backend)

    monkeypatch.setattr(stage1, "render_views_together", recording)
    return calls


def _sized(count: int, cap: int, render_size: int = 32) -> Stage1Config:
    """CONFIG starting from ``count`` Gaussians, growing to at most ``cap``, SDS views rendered at ``render_size``."""
    return dataclasses.replace(CONFIG, num_init=count, render_sizes=(render_size,),
                               densify=dataclasses.replace(CONFIG.densify, max_gaussians=cap))


def _target(hue: int) -> ViewTarget:
    scene = known_scene()
    scene = dataclasses.replace(scene, colors=scene.colors.roll(hue, dims=1)) if hue else scene
    out = render_gaussians(scene, reference_camera(32), torch.zeros(3), backend="torch")
    alpha = out.alpha[..., 0]
    return ViewTarget(reference_camera(32), (out.rgb / alpha[..., None].clamp(min=1e-6)).clamp(0, 1).detach(),
                      alpha.detach())


def _job(models, hue: int, seed: int, control: JobControl | None = None, config: Stage1Config = CONFIG) -> Stage1Job:
    """A fresh guidance per job, as generate makes one per row (its noise generator is seeded from ``seed``)."""
    target = _target(hue)
    guidance = Zero123Guidance(models, GuidanceConfig(seed=seed))
    alpha = target.alpha[..., None]
    guidance.set_reference((target.rgb * alpha + 1 - alpha).permute(2, 0, 1)[None])
    return Stage1Job([target], config, guidance, seed, control)


def _alone(models, hue: int, seed: int, config: Stage1Config = CONFIG):
    job = _job(models, hue, seed, config=config)
    return fit_gaussians(job.targets, job.config, job.guidance, device="cpu", seed=job.seed)


def _assert_same_fit(together, alone, exact: bool):
    assert together.gaussian_count == alone.gaussian_count
    for name in FIELDS:
        a, b = getattr(together.gaussians, name), getattr(alone.gaussians, name)
        if exact:
            assert torch.equal(a, b), name
        else:
            # A larger batch through the VAE and UNet rounds differently in the last bits. Adam divides each
            # gradient by its own running size, so where a gradient is near zero (the rotations here) that rounding
            # becomes a step of up to the learning rate: the quaternions may drift by lr per step, the rest not.
            atol = 2e-3 if name == "quats" else 1e-4
            torch.testing.assert_close(a, b, rtol=1e-4, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
    torch.testing.assert_close(torch.tensor(together.loss_history), torch.tensor(alone.loss_history),
                               rtol=0 if exact else 1e-4, atol=0 if exact else 1e-3)


def test_a_group_of_one_is_exactly_the_single_fit(models, unet_batches):
    alone = _alone(models, 0, seed=5)
    (together,) = fit_gaussians_together([_job(models, 0, seed=5)], device="cpu")
    _assert_same_fit(together, alone, exact=True)
    assert unet_batches == [2] * (2 * CONFIG.steps)  # CFG: [conditional; unconditional], once per step per run


def test_two_objects_together_match_their_fits_alone_in_one_unet_call_per_step(models, unet_batches):
    alone = [_alone(models, 0, seed=1), _alone(models, 1, seed=2)]
    unet_batches.clear()
    together = fit_gaussians_together([_job(models, 0, seed=1), _job(models, 1, seed=2)], device="cpu")
    assert unet_batches == [4] * CONFIG.steps  # both objects' CFG batches in one call: 2K = 4
    for mine, theirs in zip(together, alone, strict=True):
        _assert_same_fit(mine, theirs, exact=False)
    # each kept its own Gaussians: densification grew them, and differently from each other
    assert together[0].gaussian_count > CONFIG.num_init
    assert not torch.equal(together[0].gaussians.colors[:10], together[1].gaussians.colors[:10])


def test_a_failing_object_drops_out_alone_and_the_others_finish(models, unet_batches):
    def fail_at_step_three(progress):
        if progress.fraction >= 0.5:
            raise RuntimeError("row 1 broke")

    bad_target = ViewTarget(reference_camera(32), torch.zeros(8, 8, 3), torch.zeros(8, 8))
    bad = dataclasses.replace(_job(models, 2, seed=9), targets=[bad_target])
    outcomes = fit_gaussians_together([_job(models, 0, 1, JobControl(on_progress=fail_at_step_three)), bad,
                                       _job(models, 1, seed=2)], device="cpu")
    assert isinstance(outcomes[0], RuntimeError) and "row 1 broke" in str(outcomes[0])
    assert isinstance(outcomes[1], BadInputError)  # its bad input, found before any step
    _assert_same_fit(outcomes[2], _alone(models, 1, seed=2), exact=False)
    # two objects per call until the first failed after its third step, then one
    assert unet_batches[:CONFIG.steps] == [4, 4, 4, 2, 2, 2]


def test_a_cancelled_object_stops_alone(models, unet_batches):
    control = JobControl()

    def cancel_after_two_steps(progress):
        if progress.fraction >= 2 / CONFIG.steps:
            control.cancel()

    control.on_progress = cancel_after_two_steps
    outcomes = fit_gaussians_together([_job(models, 0, seed=1), _job(models, 1, 2, control)], device="cpu")
    assert isinstance(outcomes[1], CancelledError)
    assert outcomes[0].gaussian_count > 0 and len(outcomes[0].loss_history) == CONFIG.steps
    assert unet_batches == [4, 4, 4] + [2] * (CONFIG.steps - 3)  # noticed at the report after step three


def test_objects_with_different_step_counts_each_run_their_own(models, unet_batches):
    short = dataclasses.replace(CONFIG, steps=3)
    outcomes = fit_gaussians_together([_job(models, 0, seed=1), _job(models, 1, seed=2, config=short)],
                                      device="cpu")
    assert [len(o.loss_history) for o in outcomes] == [CONFIG.steps, 3]
    assert unet_batches == [4, 4, 4, 2, 2, 2]


def test_objects_of_different_counts_render_in_one_call_per_kind_of_view_and_match_their_fits_alone(
        models, unet_batches, render_calls):
    configs = [_sized(150, 400), _sized(100, 300), _sized(120, 250)]
    alone = [_alone(models, k, seed=k + 1, config=config) for k, config in enumerate(configs)]
    unet_batches.clear()
    render_calls.clear()
    together = fit_gaussians_together([_job(models, k, seed=k + 1, config=config)
                                       for k, config in enumerate(configs)], device="cpu")
    for mine, theirs in zip(together, alone, strict=True):
        _assert_same_fit(mine, theirs, exact=False)
    # each step: all three objects' reference views in one call, their SDS views in another, one UNet call
    assert len(render_calls) == 2 * CONFIG.steps and all(len(counts) == 3 for _, counts in render_calls)
    assert unet_batches == [6] * CONFIG.steps
    # the counts differ in every call (the padding is at work) and densification changed them along the way
    assert all(len(set(counts)) == 3 for _, counts in render_calls)
    assert render_calls[0][1] == [150, 100, 120] and render_calls[-1][1] != render_calls[0][1]
    assert len({result.gaussian_count for result in together}) == 3


def test_a_row_failing_in_its_own_preparation_drops_out_alone(models, unet_batches, render_calls, monkeypatch):
    prepare = _ObjectFit.prepare_step

    def broken_at_step_three(fit):
        if fit.config.num_init == 100 and fit.step == 3:
            raise RuntimeError("row 1's preparation broke")
        return prepare(fit)

    monkeypatch.setattr(_ObjectFit, "prepare_step", broken_at_step_three)
    configs = [_sized(150, 400), _sized(100, 300), _sized(120, 250)]
    outcomes = fit_gaussians_together([_job(models, k, seed=k + 1, config=config)
                                       for k, config in enumerate(configs)], device="cpu")
    assert isinstance(outcomes[1], RuntimeError) and "preparation broke" in str(outcomes[1])
    for k in (0, 2):
        _assert_same_fit(outcomes[k], _alone(models, k, seed=k + 1, config=configs[k]), exact=False)
    assert unet_batches[:CONFIG.steps] == [6, 6, 6, 4, 4, 4]  # three rows' CFG batches, then two
    assert [len(counts) for _, counts in render_calls[:2 * CONFIG.steps]] == [3] * 6 + [2] * 6


def test_rows_of_other_view_sizes_render_in_their_own_call_and_fail_in_it(models, unet_batches, render_calls,
                                                                           monkeypatch):
    """Rows 1 and 2 render their SDS views at 24 px, row 0 at 32: the target views (32 px for all) are one call,
    the SDS views two. The 24 px call fails (out of memory, say): rows 1 and 2 fail with it, row 0 goes on."""
    recording = stage1.render_views_together

    def out_of_memory_at_24_px(gaussians, viewmats, Ks, width, height, backgrounds, backend):
        batches = recording(gaussians, viewmats, Ks, width, height, backgrounds, backend)
        if width == 24:
            raise RuntimeError("out of memory in the 24 px render")
        return batches

    monkeypatch.setattr(stage1, "render_views_together", out_of_memory_at_24_px)
    configs = [_sized(150, 400), _sized(100, 300, render_size=24), _sized(120, 250, render_size=24)]
    outcomes = fit_gaussians_together([_job(models, k, seed=k + 1, config=config)
                                       for k, config in enumerate(configs)], device="cpu")
    assert outcomes[1] is outcomes[2] and "24 px" in str(outcomes[1])
    assert render_calls[:3] == [(32, [150, 100, 120]), (32, [150]), (24, [100, 120])]
    assert all(counts == [150] or len(counts) == 1 for _, counts in render_calls[3:])
    _assert_same_fit(outcomes[0], _alone(models, 0, seed=1, config=configs[0]), exact=False)


def test_rows_of_other_sds_sizes_take_their_own_guidance_call(models, unet_batches):
    configs = [_sized(150, 400), _sized(100, 300, render_size=24)]
    alone = [_alone(models, k, seed=k + 1, config=config) for k, config in enumerate(configs)]
    unet_batches.clear()
    together = fit_gaussians_together([_job(models, k, seed=k + 1, config=config)
                                       for k, config in enumerate(configs)], device="cpu")
    assert unet_batches == [2, 2] * CONFIG.steps  # their renders could not be encoded as one batch
    for mine, theirs in zip(together, alone, strict=True):
        _assert_same_fit(mine, theirs, exact=False)  # their target views still render together, padded
