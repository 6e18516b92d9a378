"""Adaptive density control for stage 1: clone, split, prune and reset, as small tensor ops.

The recipe is 3D Gaussian Splatting's, with DreamGaussian's stage-1 numbers. Every ``every`` steps inside the
window ``[start_step, stop_step)``:

- Gaussians whose mean screen-space gradient is large are under-reconstructed: small ones (largest axis
  below ``clone_scale``) are **cloned**, large ones are **split** into two smaller ones sampled inside them.
- Gaussians that are nearly transparent, too big in the world or too big on screen are **pruned**.

Usage (what ``stage1.fit_gaussians`` does)::

    stats = ScreenGradientStats.zeros(len(model), device)
    ...
    batch.retain_screen_grads(); loss.backward()
    stats = stats.accumulate(batch.screen_grads(), batch.radii, width, height)
    optimizer.step()
    if config.is_densify_step(step):
        densify_and_prune(model, optimizer, stats, config, generator)
        stats = ScreenGradientStats.zeros(len(model), device)

The parameters are replaced in place on the model and in the optimizer, and Adam's moments follow their rows
(zeros for new rows), so the optimizer state always matches the parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .densify_config import DensifyConfig, FinalPruneConfig
from .gaussians import Gaussians, quat_to_rotmat
from .model import PARAMETER_NAMES, GaussianModel


@dataclass(frozen=True)
class ScreenGradientStats:
    """Running per-Gaussian statistics between densifications.

    grad_norm_sum: [N] sum of |d loss / d screen position| (NDC units) over the views that drew the Gaussian
    view_count:    [N] number of such views
    max_radius:    [N] largest screen radius seen, as a fraction of the image side
    """

    grad_norm_sum: Tensor
    view_count: Tensor
    max_radius: Tensor

    @classmethod
    def zeros(cls, count: int, device) -> "ScreenGradientStats":
        z = torch.zeros(count, device=device)
        return cls(z, z.clone(), z.clone())

    def accumulate(self, screen_grads: Tensor | None, radii: Tensor, width: int, height: int) -> "ScreenGradientStats":
        """Add one step's views. screen_grads: [C, N, 2] pixel-space gradients; radii: [C, N] pixels."""
        if screen_grads is None:
            return self
        # Pixels → NDC (as gsplat and 3DGS measure it); plain floats, so no host→device copy per step.
        norms = torch.hypot(screen_grads[..., 0] * (width / 2.0), screen_grads[..., 1] * (height / 2.0))  # [C, N]
        drawn = radii > 0
        return ScreenGradientStats(
            grad_norm_sum=self.grad_norm_sum + (norms * drawn).sum(dim=0),
            view_count=self.view_count + drawn.sum(dim=0),
            max_radius=torch.maximum(self.max_radius, radii.amax(dim=0).to(self.max_radius.dtype) / max(width, height)),
        )

    def mean_grad(self) -> Tensor:
        return self.grad_norm_sum / self.view_count.clamp(min=1)


# ------------------------------------------------------------------ parameter and optimiser bookkeeping


def _replace_rows(model: GaussianModel, optimizer: torch.optim.Optimizer,
                  rows: Callable[[str, Tensor, bool], Tensor], names: tuple[str, ...] = PARAMETER_NAMES) -> None:
    """Apply ``rows(name, tensor, is_moment)`` to each named parameter and its Adam moments, keeping them
    together: the parameter is replaced on the model and in its optimiser group, and the moments follow.

    ``rows`` maps an [N, ...] tensor to an [M, ...] one (select, append, clamp); for new rows it should give
    zero moments.
    """
    for group in optimizer.param_groups:
        name = group["name"]
        if name not in names:
            continue
        old = group["params"][0]
        state = optimizer.state.pop(old, None)
        new = nn.Parameter(rows(name, old.detach(), False))
        group["params"][0] = new
        setattr(model, name, new)
        if state:
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if key in state:
                    state[key] = rows(name, state[key], True)
            optimizer.state[new] = state


def keep_gaussians(model: GaussianModel, optimizer: torch.optim.Optimizer, keep: Tensor) -> None:
    """Remove every Gaussian where ``keep`` ([N] bool) is False."""
    _replace_rows(model, optimizer, lambda _, t, __: t[keep])


def append_gaussians(model: GaussianModel, optimizer: torch.optim.Optimizer, new: dict[str, Tensor]) -> None:
    """Append Gaussians given as raw parameters (``new[name]`` for every name in PARAMETER_NAMES); their Adam
    moments start at zero."""

    def extend(name: str, t: Tensor, is_moment: bool) -> Tensor:
        extra = torch.zeros_like(new[name], dtype=t.dtype) if is_moment else new[name].to(t.dtype)
        return torch.cat([t, extra])

    _replace_rows(model, optimizer, extend)


def raw_rows(model: GaussianModel, mask: Tensor) -> dict[str, Tensor]:
    """Copies of the raw parameters of the Gaussians where ``mask`` is True."""
    return {name: getattr(model, name).detach()[mask].clone() for name in PARAMETER_NAMES}


# ------------------------------------------------------------------ the operations


def clone_gaussians(model: GaussianModel, optimizer: torch.optim.Optimizer, mask: Tensor) -> None:
    """Duplicate the Gaussians where ``mask`` is True (the copy then moves apart under the gradient)."""
    append_gaussians(model, optimizer, raw_rows(model, mask))


def split_gaussians(model: GaussianModel, optimizer: torch.optim.Optimizer, mask: Tensor, count: int,
                    generator: torch.Generator) -> None:
    """Replace each Gaussian where ``mask`` is True by ``count`` smaller ones sampled from its own density."""
    rows = raw_rows(model, mask)
    n = rows["means"].shape[0]
    scales = rows["log_scales"].exp()
    rot = quat_to_rotmat(rows["quats"])  # [n, 3, 3]
    noise = torch.randn((count, n, 3), generator=generator, device=scales.device, dtype=scales.dtype)
    offsets = torch.einsum("nij,knj->kni", rot, noise * scales)  # [count, n, 3]
    new = {name: value.repeat(count, *([1] * (value.ndim - 1))) for name, value in rows.items()}
    new["means"] = (rows["means"][None] + offsets).reshape(-1, 3)
    new["log_scales"] = (scales / (0.8 * count)).log().repeat(count, 1)
    keep = torch.ones(len(model) + count * n, dtype=torch.bool, device=mask.device)
    keep[:len(model)] = ~mask
    append_gaussians(model, optimizer, new)
    keep_gaussians(model, optimizer, keep)


def reset_opacity(model: GaussianModel, optimizer: torch.optim.Optimizer, max_opacity: float) -> None:
    """Clamp every opacity to at most ``max_opacity`` and zero the opacity moments (3DGS's periodic reset,
    which lets floaters fade and be pruned)."""
    ceiling = torch.logit(torch.tensor(max_opacity)).item()
    _replace_rows(model, optimizer, lambda _, t, is_moment: torch.zeros_like(t) if is_moment else t.clamp(max=ceiling),
                  names=("opacity_logits",))


def densify_and_prune(model: GaussianModel, optimizer: torch.optim.Optimizer, stats: ScreenGradientStats,
                      config: DensifyConfig, generator: torch.Generator) -> None:
    """One round of clone, split and prune (syncs with the GPU: run it every ``config.every`` steps only)."""
    with torch.no_grad():
        grads = stats.mean_grad()
        max_scale = model.log_scales.exp().amax(dim=-1)
        candidates = grads >= config.grad_threshold
        # Respect the cap: keep only the steepest candidates if growing all would exceed it.
        room = max(0, config.max_gaussians - len(model))
        if int(candidates.sum()) > room:
            threshold = torch.topk(torch.where(candidates, grads, 0.0), room).values.min() if room else float("inf")
            candidates &= grads >= threshold
        clone = candidates & (max_scale <= config.clone_scale)
        split = candidates & (max_scale > config.clone_scale)

        # Screen-size statistics follow the rows: clones and split children start with none.
        max_radius = torch.cat([stats.max_radius[~split], torch.zeros(int(clone.sum()), device=grads.device)])
        n_before = len(model)
        clone_gaussians(model, optimizer, clone)
        split = torch.cat([split, torch.zeros(len(model) - n_before, dtype=torch.bool, device=split.device)])
        split_gaussians(model, optimizer, split, config.split_count, generator)
        max_radius = torch.cat([max_radius, torch.zeros(len(model) - len(max_radius), device=grads.device)])

        too_faint = torch.sigmoid(model.opacity_logits) < config.min_opacity
        too_big = model.log_scales.exp().amax(dim=-1) > config.max_world_scale
        too_big |= max_radius > config.max_screen_fraction
        prune = too_faint | too_big
        if bool(prune.all()):  # never prune everything: keep the most opaque one
            prune[torch.argmax(model.opacity_logits)] = False
        keep_gaussians(model, optimizer, ~prune)


def final_prune_mask(gaussians: Gaussians, config: FinalPruneConfig) -> Tensor:
    """[N] bool, True for the Gaussians :class:`FinalPruneConfig` keeps; never all False (the most opaque one
    stays, so meshing gets its 'no surface' error rather than an empty set)."""
    if not config.enabled:
        return torch.ones(len(gaussians), dtype=torch.bool, device=gaussians.means.device)
    keep = (gaussians.opacities >= config.min_opacity) & (gaussians.scales.amax(dim=-1) <= config.max_world_scale)
    if len(gaussians) and not bool(keep.any()):
        keep[torch.argmax(gaussians.opacities)] = True
    return keep


def prune_for_meshing(gaussians: Gaussians, config: FinalPruneConfig) -> Gaussians:
    """The Gaussians :func:`final_prune_mask` keeps."""
    keep = final_prune_mask(gaussians, config)
    return Gaussians(gaussians.means[keep], gaussians.scales[keep], gaussians.quats[keep],
                     gaussians.opacities[keep], gaussians.colors[keep])
