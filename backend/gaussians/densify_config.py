"""When stage 1 grows and prunes its Gaussians, and the prune before meshing (no torch here: presets import it
cheaply; the tensor ops are in ``densify``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DensifyConfig:
    """When and how to grow and prune. Distances are world units (the object fits a radius-0.5 ball)."""

    enabled: bool = True
    start_step: int = 100  # first densification (after this many steps of fitting)
    stop_step: int = 10_000  # none at or after this step (the default covers the whole run)
    every: int = 100
    grad_threshold: float = 0.01  # mean screen-space gradient (NDC units, DreamGaussian's loss weights)
    clone_scale: float = 0.04  # largest axis at or below this → clone, above → split (1 % of extent 4)
    split_count: int = 2  # a split Gaussian becomes this many, each 1/(0.8 * split_count) the size
    min_opacity: float = 0.01  # prune below
    max_world_scale: float = 0.4  # prune Gaussians whose largest axis is above (10 % of extent 4)
    max_screen_fraction: float = 0.5  # prune Gaussians whose radius exceeded this fraction of the image side
    opacity_reset_every: int = 0  # reset opacities to ``reset_opacity`` this often (0: never, as in 500 steps)
    reset_opacity: float = 0.01
    max_gaussians: int = 200_000  # growth stops here (bounds memory)

    def is_densify_step(self, step: int) -> bool:
        """``step`` counts completed optimiser steps (1-based)."""
        return self.enabled and self.start_step <= step < self.stop_step and step % self.every == 0

    def is_opacity_reset_step(self, step: int) -> bool:
        return (self.enabled and self.opacity_reset_every > 0 and step < self.stop_step
                and step % self.opacity_reset_every == 0)


@dataclass(frozen=True)
class FinalPruneConfig:
    """The prune after the last stage-1 step, before meshing: DreamGaussian's ``prune(min_opacity=0.01,
    extent=1, max_screen_size=1)`` at the end of its stage 1. Its screen-size test is moot there (the
    densification at step 500 has just zeroed the screen radii), so it drops exactly the Gaussians fainter than
    ``min_opacity`` or with a largest axis above ``max_world_scale`` (0.1 × extent 1, world units)."""

    enabled: bool = True
    min_opacity: float = 0.01
    max_world_scale: float = 0.1
