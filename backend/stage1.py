"""Stage 1: optimise 3D Gaussians against the reference view(s) and, optionally, a diffusion prior (docs/design.md §1).

DreamGaussian's recipe, in our own code: a few thousand Gaussians start in a ball; Adam fits them to

- the reference view: MSE between the render and the photo composited over the same background, plus an MSE
  between the rendered alpha and the mask, both ramped up over ``mask_warmup`` of the run, and
- with ``guidance``: score distillation (SDS) on random views around the object (elevation within
  ``elevation_range`` of the reference, any azimuth), each over a random black or white background, rendered at
  a size that grows with the run (``render_sizes``), with the diffusion timestep annealed from high to low noise.

Without guidance and with several targets this is plain multi-view photometric fitting (``eval-recon``).
Gaussians are cloned, split and pruned every ``densify.every`` steps (``backend.gaussians.densify``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .camera import Camera, orbit_angles
from .errors import BadInputError
from .gaussians.adam_together import step_adams_together
from .gaussians.densify import (
    ScreenGradientStats,
    densify_and_prune,
    prune_for_meshing,
    reset_opacity,
)
from .gaussians.gaussians import Gaussians
from .gaussians.model import GaussianModel
from .gaussians.render import RenderBatch, render_views_together, resolve_backend
from .job_control import JobControl, ensure_control
from .stage1_config import Stage1Config


@dataclass(frozen=True)
class ViewTarget:
    """One view to fit: where it was seen from and what was seen.

    rgb:   [H, W, 3] float32 in [0, 1], straight colour (ignored where alpha is 0)
    alpha: [H, W]    float32 in [0, 1], the object mask
    """

    camera: Camera
    rgb: Tensor
    alpha: Tensor


@dataclass(frozen=True)
class Stage1Result:
    gaussians: Gaussians  # activated, detached, on the device stage 1 ran on
    loss_history: list[float]  # total weighted loss per step
    reference_loss_history: list[float]  # unweighted RGB MSE + mask MSE on the target views, per step
    timings: dict[str, float]  # seconds: init, optimise, total
    gaussian_count: int


def fit_gaussians(
    targets: Sequence[ViewTarget],
    config: Stage1Config,
    guidance=None,  # GuidanceLike | None
    *,
    device,
    seed: int = 0,
    control: JobControl | None = None,
    initial: GaussianModel | None = None,
) -> Stage1Result:
    """Fit Gaussians to ``targets`` (``targets[0]`` is the reference view) and, if given, ``guidance``.

    ``initial``: Gaussians to start from instead of the random ball (quick+refine: backend/quick/gaussian_start.py).
    A group of one of :func:`fit_gaussians_together`: one loop, whichever way stage 1 is called.
    """
    outcome = fit_gaussians_together([Stage1Job(targets, config, guidance, seed, control, initial)], device=device)[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@dataclass(frozen=True)
class Stage1Job:
    """One object's stage-1 fit, as :func:`fit_gaussians` takes it (see there)."""

    targets: Sequence[ViewTarget]
    config: Stage1Config
    guidance: object = None  # GuidanceLike | None
    seed: int = 0
    control: JobControl | None = None
    initial: GaussianModel | None = None


def fit_gaussians_together(jobs: Sequence[Stage1Job], *, device) -> list[Stage1Result | Exception]:
    """Several objects' fits advanced step by step together, sharing one batched SDS call per step.

    Each job keeps its own Gaussians, optimiser, density control, random views, seed and cancel, so its result
    is the one :func:`fit_gaussians` gives alone, up to the float rounding of a larger batch (the guidance
    draws each object's noise from that object's own generator). A job that raises (its cancel included)
    drops out with its exception in its place and the others go on; a failure inside a shared part of a
    step (a batched render, the batched guidance call, the one backward pass: running out of GPU memory, say)
    is the failure of every job that shared it. Jobs may differ in step count: a short one finishes first.
    """
    device = torch.device(device)
    outcomes: list[Stage1Result | Exception | None] = [None] * len(jobs)
    fits: dict[int, _ObjectFit] = {}
    for index, job in enumerate(jobs):
        try:
            fits[index] = _ObjectFit(job, device)
        except Exception as exc:  # noqa: BLE001 - one object's bad input is its own failure
            outcomes[index] = exc
    while fits:
        for index, exc in advance_together(list(fits.values())).items():
            outcomes[list(fits)[index]] = exc
        for index in [i for i, fit in fits.items() if outcomes[i] is not None or fit.finished]:
            fit = fits.pop(index)
            if outcomes[index] is None:
                try:
                    outcomes[index] = fit.result()
                except Exception as exc:  # noqa: BLE001
                    outcomes[index] = exc
    return outcomes


def advance_together(fits: Sequence[_ObjectFit]) -> dict[int, Exception]:
    """One optimisation step of every fit in ``fits``: the per-step function of stage 1 (a loop of it is
    :func:`fit_gaussians_together`). Returns the fits that failed in this step, by position, with their error.

    Steps 4a-4f of the recipe: each fit prepares its step on its own (learning rate, target views, background);
    the reference views of all fits are one render call and their random SDS views another (per group of fits
    whose views have the same size, count and renderer); each fit takes its losses on its own; the SDS of all
    of them is one guidance call per group of compatible guidances and the backward pass is one for all, as is
    the Adam step; then each fit controls its density and reports progress (where a cancel is raised) on its
    own. A fit's own failure is its own; a shared call's failure is that of every fit in the call.
    """
    failed: dict[int, Exception] = {}
    plans = _prepare_steps(fits, failed)
    renders = _render_steps(plans, failed)
    live = _step_losses(fits, plans, renders, failed)
    if not live:
        return failed
    try:
        _backward(live, _score_distillation([(fit, step) for _, fit, step in live]))
    except Exception as exc:  # noqa: BLE001 - a shared call fails for all who shared it
        failed.update({position: exc for position, _, _ in live})
        return failed
    _optimiser_steps(live, failed)
    return failed


def _optimiser_steps(live: list[tuple[int, _ObjectFit, _StepLoss]], failed: dict[int, Exception]) -> None:
    """4f. Each fit's screen-gradient statistics; one Adam step for all of them (``step_adams_together``: a few
    multi-tensor calls instead of five per fit); then each fit's density control, progress and cancel."""
    live = _each_fit(live, failed, lambda fit, step: fit.accumulate_statistics(step))
    try:
        step_adams_together([fit.optimizer for _, fit, _ in live])
    except Exception as exc:  # noqa: BLE001 - a shared call fails for all who shared it
        failed.update({position: exc for position, _, _ in live})
        return
    _each_fit(live, failed, lambda fit, step: fit.finish_step(step))


def _each_fit(live: list[tuple[int, _ObjectFit, _StepLoss]], failed: dict[int, Exception],
              action) -> list[tuple[int, _ObjectFit, _StepLoss]]:
    """``action(fit, step)`` for each live fit; one that raises goes into ``failed`` alone. Returns the rest."""
    survivors = []
    for position, fit, step in live:
        try:
            action(fit, step)
        except Exception as exc:  # noqa: BLE001 - this object's failure (or cancel) only
            failed[position] = exc
            continue
        survivors.append((position, fit, step))
    return survivors


def _prepare_steps(fits: Sequence[_ObjectFit], failed: dict[int, Exception]) -> dict[int, _StepPlan]:
    """4a. Each fit's step plan, by position; a fit that fails here goes into ``failed`` alone."""
    plans: dict[int, _StepPlan] = {}
    for position, fit in enumerate(fits):
        try:
            plans[position] = fit.prepare_step()
        except Exception as exc:  # noqa: BLE001 - this object's failure only
            failed[position] = exc
    return plans


def _render_steps(plans: dict[int, _StepPlan],
                  failed: dict[int, Exception]) -> dict[int, tuple[RenderBatch, RenderBatch | None]]:
    """4b. Every fit's target views, then every fit's random SDS views, each kind in one render call per group
    of fits whose views can share it (:meth:`_ViewsToRender.shared_call_key`). Returns (target-view render,
    SDS-view render or None) by position; a failing call puts every fit that shared it into ``failed``."""
    references = _render_grouped({p: plan.reference for p, plan in plans.items()}, plans, failed)
    sds = _render_grouped({p: plan.sds for p, plan in plans.items() if plan.sds is not None and p not in failed},
                          plans, failed)
    return {p: (references[p], sds.get(p)) for p in plans if p not in failed}


def _render_grouped(requests: dict[int, _ViewsToRender], plans: dict[int, _StepPlan],
                    failed: dict[int, Exception]) -> dict[int, RenderBatch]:
    groups: dict[tuple, list[int]] = {}
    for position, views in requests.items():
        groups.setdefault(views.shared_call_key(), []).append(position)
    rendered: dict[int, RenderBatch] = {}
    for members in groups.values():
        views = [requests[p] for p in members]
        try:
            batches = render_views_together([plans[p].gaussians for p in members],
                                            _stack([v.viewmats for v in views]), _stack([v.Ks for v in views]),
                                            views[0].width, views[0].height,
                                            _stack([v.backgrounds for v in views]), views[0].backend)
        except Exception as exc:  # noqa: BLE001 - a shared call fails for all who shared it
            failed.update({p: exc for p in members})
            continue
        rendered.update(zip(members, batches, strict=True))
    return rendered


def _stack(tensors: list[Tensor]) -> Tensor:
    return tensors[0][None] if len(tensors) == 1 else torch.stack(tensors)


def _step_losses(fits: Sequence[_ObjectFit], plans: dict[int, _StepPlan],
                 renders: dict[int, tuple[RenderBatch, RenderBatch | None]],
                 failed: dict[int, Exception]) -> list[tuple[int, _ObjectFit, _StepLoss]]:
    """4c. Each rendered fit's losses (position, fit, loss); a fit that fails here goes into ``failed`` alone."""
    live: list[tuple[int, _ObjectFit, _StepLoss]] = []
    for position, (reference, sds) in renders.items():
        try:
            live.append((position, fits[position], fits[position].step_loss(plans[position], reference, sds)))
        except Exception as exc:  # noqa: BLE001 - this object's failure only
            failed[position] = exc
    return live


def _backward(live: list[tuple[int, _ObjectFit, _StepLoss]], sds: list[Tensor | None]) -> None:
    """4e. Each fit's total loss (its reference loss plus its weighted SDS), one backward pass for all."""
    total = None
    for (_, fit, step), sds_loss in zip(live, sds, strict=True):
        step.loss = step.loss if sds_loss is None else step.loss + fit.config.lambda_sds * sds_loss
        step.retain_statistics_grads()
        total = step.loss if total is None else total + step.loss
    total.backward()  # the objects' graphs are disjoint but for the batched calls: one pass for all


def _score_distillation(steps: list[tuple[_ObjectFit, _StepLoss]]) -> list[Tensor | None]:
    """4d. Each fit's SDS loss (None without guidance). Zero123 guidances with the same ``sds_group_key`` and scale
    (the same models), judging renders of the same size, share one batched call (``sds_losses_together``
    encodes them as one batch); any other guidance goes alone."""
    losses: list[Tensor | None] = [None] * len(steps)
    guided = [i for i, (_, step) in enumerate(steps) if step.sds_images is not None]
    if not guided:
        return losses
    from .guidance.zero123_guidance import Zero123Guidance, sds_losses_together

    groups: dict[tuple, list[int]] = {}
    for i in guided:
        fit = steps[i][0]
        shared = isinstance(fit.guidance, Zero123Guidance)
        size = tuple(steps[i][1].sds_images.shape[2:])  # rows of other step counts may be at another render size
        groups.setdefault((fit.guidance.sds_group_key, fit.config.guidance_scale, size) if shared else (i,),
                          []).append(i)
    for members in groups.values():
        fits, views = [steps[i][0] for i in members], [steps[i][1] for i in members]
        scale = fits[0].config.guidance_scale
        if not isinstance(fits[0].guidance, Zero123Guidance):  # a GuidanceLike of another kind (tests' fakes)
            losses[members[0]] = fits[0].guidance.sds_loss(views[0].sds_images, *views[0].sds_angles,
                                                           views[0].step_ratio, scale)
            continue
        found = sds_losses_together([f.guidance for f in fits], [v.sds_images for v in views],
                                    *zip(*(v.sds_angles for v in views), strict=True),
                                    [v.step_ratio for v in views], scale)
        for i, loss in zip(members, found, strict=True):
            losses[i] = loss
    return losses


@dataclass(frozen=True)
class _ViewsToRender:
    """Views one fit wants rendered this step: viewmats [C, 4, 4], Ks [C, 3, 3], backgrounds [C, 3]."""

    viewmats: Tensor
    Ks: Tensor
    backgrounds: Tensor
    width: int
    height: int
    backend: str  # resolved: "gsplat" or "torch"

    def shared_call_key(self) -> tuple:
        """Fits whose views have equal keys render in one call (``render_views_together`` stacks them)."""
        return self.width, self.height, self.viewmats.shape[0], self.backend, self.viewmats.device


@dataclass(frozen=True)
class _StepPlan:
    """4a. One fit's step before rendering: its Gaussians, its place in the schedules, the views to render."""

    gaussians: Gaussians  # activated, in the autograd graph of the fit's parameters
    step_ratio: float
    chosen: Tensor | slice  # the target views fitted this step
    background: Tensor  # [3] behind the target views
    reference: _ViewsToRender  # the chosen target views
    sds: _ViewsToRender | None  # the random views score distillation judges (None without guidance)


@dataclass
class _StepLoss:
    """One fit's step in the making: its loss so far and the renders whose screen gradients feed densification."""

    loss: Tensor
    statistics_views: list[tuple[RenderBatch, int, int]]  # (render, width, height)
    track_screen_grads: bool
    step_ratio: float
    sds_images: Tensor | None = None  # [B, 3, H, W] random views for the guidance
    sds_angles: tuple[Tensor, Tensor, Tensor] | None = None  # Δelevation, Δazimuth, Δradius, each [B]

    def retain_statistics_grads(self) -> None:
        if self.track_screen_grads:
            for batch, _, _ in self.statistics_views:
                batch.retain_screen_grads()


class _ObjectFit:
    """One object's stage-1 state between steps: its Gaussians, optimiser, density statistics, precomputed
    views and generators, and its own progress and cancel (steps 1-3 of the recipe in the constructor)."""

    def __init__(self, job: Stage1Job, device: torch.device):
        self.started = time.perf_counter()
        self.control = ensure_control(job.control)
        self.guidance = job.guidance
        self.device = device
        config = job.config

        # 1. Check inputs.
        targets = _check_targets(job.targets)
        if config.fixed_gaussian_count is not None:  # the count stays fixed: no densification, no final prune
            config = dataclasses.replace(config, densify=dataclasses.replace(config.densify, enabled=False),
                                         final_prune=dataclasses.replace(config.final_prune, enabled=False))
        self.config = config
        self.control.report("stage1", 0.0, "initialising Gaussians")

        # 2. Seeded initialisation: Gaussians in a ball, Adam with per-parameter learning rates.
        seed = job.seed
        cpu_generator = torch.Generator().manual_seed(seed)
        self.device_generator = torch.Generator(device=device).manual_seed(seed + 1)
        self.view_rng = np.random.default_rng(seed)
        if job.initial is not None:
            self.model = job.initial.to(device)
        else:
            self.model = GaussianModel.in_sphere(config.initial_count, config.init_radius, generator=cpu_generator,
                                                 device=device, initial_opacity=config.init_opacity)
        self.optimizer = self.model.make_optimizer(config.lrs)
        self.means_group = next(group for group in self.optimizer.param_groups if group["name"] == "means")
        self.stats = ScreenGradientStats.zeros(len(self.model), device)

        # 3. Everything the loop needs, on the device up front (no host→device copies inside the loop).
        self.views = _TargetViews.build(targets, device)
        reference = targets[0].camera
        self.random_views = (_RandomViews.build(config, reference, self.view_rng, device)
                             if self.guidance is not None else None)
        self.reference_bg = (torch.tensor(config.reference_background, dtype=torch.float32, device=device)
                             if config.reference_background is not None else None)
        self.render_backend = resolve_backend(config.render_backend, device)
        self.target_choices = _target_schedule(config, len(targets), self.view_rng)
        self.losses: list[Tensor] = []
        self.reference_losses: list[Tensor] = []
        self.step = 0
        self.init_done = time.perf_counter()
        self.last_report = time.monotonic()

    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps

    def prepare_step(self) -> _StepPlan:
        """4a. This step's learning rate, target views and background, and the views to render."""
        config, views, step = self.config, self.views, self.step
        # DreamGaussian counts steps from 1 and sets the rates, the loss ramp and the SDS schedule for step s from
        # s / steps before stepping: the first step already sits 1/steps into every schedule, the last at its end.
        step_ratio = (step + 1) / config.steps
        self.means_group["lr"] = config.lrs.means_at(step_ratio)

        chosen = self.target_choices[step] if self.target_choices is not None else slice(None)
        if self.reference_bg is None:
            bg = (float(self.view_rng.random() < 0.5)) * torch.ones(3, device=self.device)
        else:
            bg = self.reference_bg
        viewmats = views.viewmats[chosen]
        reference = _ViewsToRender(viewmats, views.Ks[chosen], bg.expand(viewmats.shape[0], 3), views.width,
                                   views.height, self.render_backend)
        random_views, sds = self.random_views, None
        if random_views is not None:
            size = config.render_size_at(step_ratio)
            sds = _ViewsToRender(random_views.viewmats[step], random_views.Ks[size], random_views.backgrounds[step],
                                 size, size, self.render_backend)
        return _StepPlan(self.model.gaussians(), step_ratio, chosen, bg, reference, sds)

    def step_loss(self, plan: _StepPlan, reference: RenderBatch, sds: RenderBatch | None) -> _StepLoss:
        """4c. Target views: composited RGB + mask, from ``reference`` (the render of ``plan.reference``); and
        what the guidance needs of ``sds`` (the render of ``plan.sds``)."""
        config, views, step, chosen, bg = self.config, self.views, self.step, plan.chosen, plan.background
        target_rgb = views.rgb[chosen] * views.alpha[chosen] + bg * (1 - views.alpha[chosen])
        rgb_mse = F.mse_loss(reference.rgb, target_rgb)
        mask_mse = F.mse_loss(reference.alpha, views.alpha[chosen])
        warmup = min(1.0, plan.step_ratio / max(1.0 / config.steps, config.mask_warmup))
        loss = warmup * (config.lambda_rgb * rgb_mse + config.lambda_mask * mask_mse)
        self.reference_losses.append((rgb_mse + mask_mse).detach())

        # The random views score distillation will judge (the guidance call itself is shared, see
        # advance_together). With guidance the screen-space statistics come from these novel views only, as
        # DreamGaussian's (it reads them from the last render of the step, the novel view): the reference view's
        # 10 000-weighted loss would otherwise dominate which Gaussians grow. Without guidance the target views
        # are all there is.
        if sds is None:
            return _StepLoss(loss, [(reference, views.width, views.height)], config.densify.enabled,
                             plan.step_ratio)
        random_views = self.random_views
        return _StepLoss(loss, [(sds, plan.sds.width, plan.sds.height)], config.densify.enabled, plan.step_ratio,
                         sds_images=sds.rgb.permute(0, 3, 1, 2),  # [B, 3, H, W], channels-last in memory
                         sds_angles=(random_views.d_elevation[step], random_views.d_azimuth[step],
                                     random_views.d_radius[step]))

    def accumulate_statistics(self, step_loss: _StepLoss) -> None:
        """4f, before the optimiser step (which all fits take together): this step's screen gradients."""
        if step_loss.track_screen_grads:
            for batch, width, height in step_loss.statistics_views:
                self.stats = self.stats.accumulate(batch.screen_grads(), batch.radii, width, height)

    def finish_step(self, step_loss: _StepLoss) -> None:
        """4f, after the optimiser step: density control, progress and cancel."""
        config = self.config
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(step_loss.loss.detach())

        self.step = completed = self.step + 1
        if config.densify.is_densify_step(completed):
            densify_and_prune(self.model, self.optimizer, self.stats, config.densify, self.device_generator)
            self.stats = ScreenGradientStats.zeros(len(self.model), self.device)
        if config.densify.is_opacity_reset_step(completed):
            reset_opacity(self.model, self.optimizer, config.densify.reset_opacity)

        # No GPU sync here.
        now = time.monotonic()
        if now - self.last_report >= config.progress_interval_s or completed == config.steps:
            self.control.report("stage1", completed / config.steps, f"step {completed}/{config.steps}")
            self.last_report = now

    def result(self) -> Stage1Result:
        """5. The last prune (faint and oversized Gaussians) that DreamGaussian does before meshing."""
        final = prune_for_meshing(self.model.gaussians().detach(), self.config.final_prune)
        loss_history = torch.stack(self.losses).float().cpu().tolist()
        reference_history = torch.stack(self.reference_losses).float().cpu().tolist()
        finished = time.perf_counter()
        return Stage1Result(
            gaussians=Gaussians(final.means.clone(), final.scales.clone(), final.quats.clone(),
                                final.opacities.clone(), final.colors.clone()),
            loss_history=loss_history,
            reference_loss_history=reference_history,
            timings={"init": self.init_done - self.started, "optimise": finished - self.init_done,
                     "total": finished - self.started},
            gaussian_count=len(final),
        )


# ------------------------------------------------------------------ inputs, precomputed on the device


def _check_targets(targets: Sequence[ViewTarget]) -> list[ViewTarget]:
    targets = list(targets)
    if not targets:
        raise BadInputError("stage 1 needs at least one target view")
    first = targets[0].camera
    for i, t in enumerate(targets):
        h, w = t.camera.height, t.camera.width
        if tuple(t.rgb.shape) != (h, w, 3) or tuple(t.alpha.shape) != (h, w):
            raise BadInputError(f"target {i}: rgb {tuple(t.rgb.shape)} and alpha {tuple(t.alpha.shape)} must be "
                                f"[{h}, {w}, 3] and [{h}, {w}] to match its camera")
        if (h, w) != (first.height, first.width):
            raise BadInputError(f"target {i} is {w}x{h}, but all targets must share the reference size "
                                f"{first.width}x{first.height}")
    return targets


@dataclass(frozen=True)
class _TargetViews:
    """All target views stacked: viewmats [T, 4, 4], Ks [T, 3, 3], rgb [T, H, W, 3], alpha [T, H, W, 1]."""

    viewmats: Tensor
    Ks: Tensor
    rgb: Tensor
    alpha: Tensor
    width: int
    height: int

    @classmethod
    def build(cls, targets: list[ViewTarget], device) -> "_TargetViews":
        cam = targets[0].camera
        return cls(
            viewmats=torch.tensor(np.stack([t.camera.viewmat_opencv for t in targets]), dtype=torch.float32,
                                  device=device),
            Ks=torch.tensor(np.stack([t.camera.K for t in targets]), dtype=torch.float32, device=device),
            rgb=torch.stack([t.rgb.to(device=device, dtype=torch.float32) for t in targets]),
            alpha=torch.stack([t.alpha.to(device=device, dtype=torch.float32) for t in targets])[..., None],
            width=cam.width,
            height=cam.height,
        )


def _target_schedule(config: Stage1Config, count: int, rng: np.random.Generator) -> list[Tensor] | None:
    """Which targets each step fits: None means all of them every step."""
    if config.views_per_step is None or config.views_per_step >= count:
        return None
    return [torch.as_tensor(np.sort(rng.choice(count, config.views_per_step, replace=False)))
            for _ in range(config.steps)]


@dataclass(frozen=True)
class _RandomViews:
    """The random SDS views of every step, drawn up front from the seeded generator.

    viewmats: [steps, B, 4, 4]; Ks: size → [B, 3, 3]; backgrounds: [steps, B, 3] (black or white);
    d_elevation, d_azimuth, d_radius: [steps, B] relative to the reference camera.
    """

    viewmats: Tensor
    Ks: dict[int, Tensor]
    backgrounds: Tensor
    d_elevation: Tensor
    d_azimuth: Tensor
    d_radius: Tensor

    @classmethod
    def build(cls, config: Stage1Config, reference: Camera, rng: np.random.Generator, device) -> "_RandomViews":
        ref_elevation, ref_azimuth, ref_radius = orbit_angles(reference)
        radius = config.sds_radius if config.sds_radius is not None else ref_radius
        shape = (config.steps, config.sds_batch_size)
        lo, hi = config.elevation_range
        elevation = np.clip(ref_elevation + rng.uniform(lo, hi, shape), -89.0, 89.0)
        azimuth_offset = rng.uniform(*config.azimuth_range, shape)
        white = rng.random(shape) < 0.5
        viewmats = np.stack([
            Camera.orbit(e, ref_azimuth + a, 8, radius, reference.fovy_deg).viewmat_opencv
            for e, a in zip(elevation.ravel(), azimuth_offset.ravel(), strict=True)
        ]).reshape(*shape, 4, 4)
        Ks = {size: torch.tensor(Camera.orbit(0, 0, size, radius, reference.fovy_deg).K, dtype=torch.float32,
                                 device=device).expand(config.sds_batch_size, 3, 3).contiguous()
              for size in config.render_sizes}

        def on_device(a):
            return torch.tensor(a, dtype=torch.float32, device=device)

        return cls(
            viewmats=on_device(viewmats),
            Ks=Ks,
            backgrounds=on_device(np.repeat(white[..., None], 3, axis=-1).astype(np.float32)),
            d_elevation=on_device(elevation - ref_elevation),
            d_azimuth=on_device(azimuth_offset),
            d_radius=on_device(np.full(shape, radius - ref_radius)),
        )
