"""Texture baking and stage-2 settings (no torch here: presets import it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

# How a texture bake picks the colour of a texel among the views that see it (backend.mesh.bake's docstring);
# "first" is DreamGaussian's and generate's.
BAKE_OWNERSHIPS = ("first", "best", "weighted")


@dataclass(frozen=True)
class TextureConfig:
    """Texture baking and stage-2 settings (defaults: DreamGaussian's ``main2.py`` and ``configs/image.yaml``).

    steps:            stage-2 optimisation steps (0 keeps the baked texture); ``iters_refine``
    lr:               Adam learning rate on the texture logits; ``texture_lr``
    render_size:      render size of the novel views
    reference_weight / guidance_weight: loss weights (module docstring)
    reference_min_cosine: the reference loss counts pixels whose view-cos exceeds this (None: every pixel)
    refine_strength:  guidance.refine's strength at the first step (DreamGaussian's convention,
                      ``refine_timesteps``: the fraction of the DDIM schedule skipped, 0.8 → t 181) …
    refine_strength_rise: … rising linearly by this much to the last step (0.15: 0.95, t 41)
    refine_steps:     length of refine's DDIM schedule (50; a strength of 0.8 runs the last 10 of them)
    guidance_scale:   classifier-free guidance scale for refine
    target_views:     0 (default): each step a fresh random view, its target from the current texture;
                      > 0: that many ring views with targets made once from the baked texture (cheaper)
    batch_size:       novel views per step when target_views == 0; views per refine call when caching
    elevation_range:  elevations (degrees, integers drawn as DreamGaussian's randint) of the novel views;
                      azimuths cover the full circle
    seed:             seeds the novel views
    """

    steps: int = 50
    lr: float = 0.2
    render_size: int = 512
    reference_weight: float = 1.0
    guidance_weight: float = 1.0
    reference_min_cosine: float | None = 0.5
    refine_strength: float = 0.8
    refine_strength_rise: float = 0.15
    refine_steps: int = 50
    guidance_scale: float = 5.0
    target_views: int = 0
    batch_size: int = 1
    elevation_range: tuple[float, float] = (-30.0, 30.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"TextureConfig.steps must be >= 0, got {self.steps}")
        final = self.refine_strength + self.refine_strength_rise
        if not (0.0 <= self.refine_strength < 1.0 and 0.0 <= final < 1.0):
            raise ValueError(f"TextureConfig.refine_strength must stay in [0, 1) over the run, got "
                             f"{self.refine_strength} rising by {self.refine_strength_rise}")
        if self.target_views < 0 or self.batch_size < 1:
            raise ValueError(f"TextureConfig.target_views must be >= 0 and batch_size >= 1, got "
                             f"{self.target_views}, {self.batch_size}")

    def strength_at(self, step: int) -> float:
        """refine's strength at 0-based ``step``, computed as DreamGaussian does for its 1-based step s:
        s / steps · 0.15 + 0.8 (same operations, so the same float and the same ``int(steps · strength)``)."""
        step_ratio = min(1.0, (step + 1) / max(1, self.steps))
        return step_ratio * self.refine_strength_rise + self.refine_strength
