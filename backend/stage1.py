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
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .camera import Camera, orbit_angles
from .errors import BadInputError
from .gaussians.densify import DensifyConfig, ScreenGradientStats, densify_and_prune, reset_opacity
from .gaussians.gaussians import Gaussians
from .gaussians.model import GaussianModel, LearningRates
from .gaussians.render import RenderBatch, render_views
from .job_control import JobControl, ensure_control


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
class Stage1Config:
    """Stage-1 settings; the defaults are the reference method's (DreamGaussian, image-to-3D, 500 steps)."""

    steps: int = 500
    num_init: int = 5000  # Gaussians at the start (uniform in a ball)
    init_radius: float = 0.5  # radius of that ball (the object fits a unit-ish sphere)
    init_opacity: float = 0.1
    lrs: LearningRates = field(default_factory=LearningRates)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    fixed_gaussian_count: int | None = None  # start with this many and never densify (benchmarks, e.g. 30_000)

    # Resolution schedule of the random (SDS) views: render_sizes[i] from step fraction milestones[i - 1] on;
    # milestones None = evenly spaced (thirds for three sizes; DreamGaussian switches at 0.3 and 0.6).
    # Target views are always rendered at their own size.
    render_sizes: tuple[int, ...] = (128, 256, 512)
    render_size_milestones: tuple[float, ...] | None = None

    # Losses. The large weights are DreamGaussian's: they balance the MSEs against the SDS gradient, whose
    # size is fixed by the diffusion model. Without guidance only their ratio matters (Adam is scale-free).
    lambda_rgb: float = 10_000.0
    lambda_mask: float = 1_000.0
    mask_warmup: float = 1.0  # the reference RGB and mask weights ramp linearly over this fraction of the run
    reference_background: tuple[float, float, float] | None = (1.0, 1.0, 1.0)  # None: random black/white
    views_per_step: int | None = None  # targets fitted per step (None: all of them)

    # Score distillation (used only when guidance is given).
    lambda_sds: float = 1.0
    guidance_scale: float = 5.0
    sds_batch_size: int = 1  # random views per step
    elevation_range: tuple[float, float] = (-30.0, 30.0)  # degrees, relative to the reference view
    azimuth_range: tuple[float, float] = (-180.0, 180.0)  # degrees, relative to the reference view
    sds_radius: float | None = None  # camera distance of the random views (None: the reference camera's, 2)
    # The SDS timestep range (980 → 20) is the guidance's own setting (GuidanceConfig.t_max / t_min); stage 1
    # passes the step ratio in [0, 1].

    render_backend: str = "auto"  # "auto" (gsplat on CUDA, PyTorch elsewhere), "gsplat" or "torch"
    progress_interval_s: float = 0.25  # report progress (and honour cancel) at least this often

    def __post_init__(self):
        if self.steps < 1:
            raise BadInputError(f"stage 1 needs at least one step, got steps={self.steps}")
        if self.num_init < 1:
            raise BadInputError(f"stage 1 needs at least one Gaussian, got num_init={self.num_init}")
        if self.fixed_gaussian_count is not None and self.fixed_gaussian_count < 1:
            raise BadInputError(f"fixed_gaussian_count must be positive, got {self.fixed_gaussian_count}")
        if not self.render_sizes or min(self.render_sizes) < 8:
            raise BadInputError(f"render_sizes must be at least 8 px each, got {self.render_sizes}")
        if self.render_size_milestones is not None and len(self.render_size_milestones) != len(self.render_sizes) - 1:
            raise BadInputError(f"render_sizes {self.render_sizes} needs one more entry than render_size_milestones "
                                f"{self.render_size_milestones}")
        if not self.elevation_range[0] <= self.elevation_range[1]:
            raise BadInputError(f"elevation_range must be (low, high), got {self.elevation_range}")

    @property
    def densify_every(self) -> int:
        return self.densify.every

    @property
    def initial_count(self) -> int:
        return self.fixed_gaussian_count if self.fixed_gaussian_count is not None else self.num_init

    def render_size_at(self, step_ratio: float) -> int:
        milestones = self.render_size_milestones
        if milestones is None:
            milestones = [i / len(self.render_sizes) for i in range(1, len(self.render_sizes))]
        return self.render_sizes[sum(step_ratio >= m for m in milestones)]


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
) -> Stage1Result:
    """Fit Gaussians to ``targets`` (``targets[0]`` is the reference view) and, if given, ``guidance``."""
    started = time.perf_counter()
    control = ensure_control(control)
    device = torch.device(device)

    # 1. Check inputs.
    targets = _check_targets(targets)
    if config.fixed_gaussian_count is not None:
        config = dataclasses.replace(config, densify=dataclasses.replace(config.densify, enabled=False))
    control.report("stage1", 0.0, "initialising Gaussians")

    # 2. Seeded initialisation: Gaussians in a ball, Adam with per-parameter learning rates.
    cpu_generator = torch.Generator().manual_seed(seed)
    device_generator = torch.Generator(device=device).manual_seed(seed + 1)
    view_rng = np.random.default_rng(seed)
    model = GaussianModel.in_sphere(config.initial_count, config.init_radius, generator=cpu_generator, device=device,
                                    initial_opacity=config.init_opacity)
    optimizer = model.make_optimizer(config.lrs)
    means_group = next(group for group in optimizer.param_groups if group["name"] == "means")
    stats = ScreenGradientStats.zeros(len(model), device)

    # 3. Everything the loop needs, on the device up front (no host→device copies inside the loop).
    views = _TargetViews.build(targets, device)
    reference = targets[0].camera
    random_views = _RandomViews.build(config, reference, view_rng, device) if guidance is not None else None
    reference_bg = (torch.tensor(config.reference_background, dtype=torch.float32, device=device)
                    if config.reference_background is not None else None)
    target_choices = _target_schedule(config, len(targets), view_rng)
    track_screen_grads = config.densify.enabled
    losses: list[Tensor] = []
    reference_losses: list[Tensor] = []
    init_done = time.perf_counter()
    last_report = time.monotonic()

    # 4. Optimisation loop.
    for step in range(config.steps):
        step_ratio = step / config.steps
        means_group["lr"] = config.lrs.means_at(step_ratio)
        gaussians = model.gaussians()
        rendered: list[tuple[RenderBatch, int, int]] = []

        # 4a. Target views: composited RGB + mask.
        chosen = target_choices[step] if target_choices is not None else slice(None)
        if reference_bg is None:
            bg = (float(view_rng.random() < 0.5)) * torch.ones(3, device=device)
        else:
            bg = reference_bg
        batch = render_views(gaussians, views.viewmats[chosen], views.Ks[chosen], views.width, views.height,
                             bg.expand(views.viewmats[chosen].shape[0], 3), config.render_backend)
        rendered.append((batch, views.width, views.height))
        target_rgb = views.rgb[chosen] * views.alpha[chosen] + bg * (1 - views.alpha[chosen])
        rgb_mse = F.mse_loss(batch.rgb, target_rgb)
        mask_mse = F.mse_loss(batch.alpha, views.alpha[chosen])
        warmup = min(1.0, (step + 1) / max(1.0, config.mask_warmup * config.steps))
        loss = warmup * (config.lambda_rgb * rgb_mse + config.lambda_mask * mask_mse)
        reference_losses.append((rgb_mse + mask_mse).detach())

        # 4b. Score distillation on random views.
        if random_views is not None:
            size = config.render_size_at(step_ratio)
            sds_batch = render_views(gaussians, random_views.viewmats[step], random_views.Ks[size], size, size,
                                     random_views.backgrounds[step], config.render_backend)
            rendered.append((sds_batch, size, size))
            images = sds_batch.rgb.permute(0, 3, 1, 2)  # [B, 3, H, W], channels-last in memory
            sds = guidance.sds_loss(images, random_views.d_elevation[step], random_views.d_azimuth[step],
                                    random_views.d_radius[step], step_ratio, config.guidance_scale)
            loss = loss + config.lambda_sds * sds

        # 4c. Backward, step, density control.
        if track_screen_grads:
            for batch, _, _ in rendered:
                batch.retain_screen_grads()
        loss.backward()
        if track_screen_grads:
            for batch, width, height in rendered:
                stats = stats.accumulate(batch.screen_grads(), batch.radii, width, height)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())

        completed = step + 1
        if config.densify.is_densify_step(completed):
            densify_and_prune(model, optimizer, stats, config.densify, device_generator)
            stats = ScreenGradientStats.zeros(len(model), device)
        if config.densify.is_opacity_reset_step(completed):
            reset_opacity(model, optimizer, config.densify.reset_opacity)

        # 4d. Progress and cancel (no GPU sync here).
        now = time.monotonic()
        if now - last_report >= config.progress_interval_s or completed == config.steps:
            control.report("stage1", completed / config.steps, f"step {completed}/{config.steps}")
            last_report = now

    # 5. Result.
    final = model.gaussians().detach()
    loss_history = torch.stack(losses).float().cpu().tolist()
    reference_history = torch.stack(reference_losses).float().cpu().tolist()
    finished = time.perf_counter()
    return Stage1Result(
        gaussians=Gaussians(final.means.clone(), final.scales.clone(), final.quats.clone(), final.opacities.clone(),
                            final.colors.clone()),
        loss_history=loss_history,
        reference_loss_history=reference_history,
        timings={"init": init_done - started, "optimise": finished - init_done, "total": finished - started},
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
