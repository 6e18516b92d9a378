"""Stage-1 settings (no torch here: presets import it cheaply; the loop is in ``stage1``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import BadInputError
from .gaussians.densify_config import DensifyConfig, FinalPruneConfig
from .gaussians.learning_rates import LearningRates

DREAMGAUSSIAN_SIZE_MILESTONES = (0.3, 0.6)  # main.py: 128 px below step ratio 0.3, 256 below 0.6, then 512


@dataclass(frozen=True)
class Stage1Config:
    """Stage-1 settings; the defaults are the reference method's (DreamGaussian, image-to-3D, 500 steps)."""

    steps: int = 500
    num_init: int = 5000  # Gaussians at the start (uniform in a ball)
    init_radius: float = 0.5  # radius of that ball (the object fits a unit-ish sphere)
    init_opacity: float = 0.1
    lrs: LearningRates = field(default_factory=LearningRates)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    final_prune: FinalPruneConfig = field(default_factory=FinalPruneConfig)  # after the last step, before meshing
    fixed_gaussian_count: int | None = None  # start with this many, never densify or prune (benchmarks, e.g. 30_000)

    # Resolution schedule of the random (SDS) views: render_sizes[i] from step fraction milestones[i - 1] on;
    # milestones None = DreamGaussian's 0.3 and 0.6 for three sizes (128 → 256 → 512), evenly spaced otherwise.
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
        if milestones is None and len(self.render_sizes) == len(DREAMGAUSSIAN_SIZE_MILESTONES) + 1:
            milestones = DREAMGAUSSIAN_SIZE_MILESTONES
        elif milestones is None:
            milestones = [i / len(self.render_sizes) for i in range(1, len(self.render_sizes))]
        return self.render_sizes[sum(step_ratio >= m for m in milestones)]
