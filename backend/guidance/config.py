"""Settings of the Zero123 guidance (no torch here: presets import it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInputError


@dataclass(frozen=True)
class GuidanceConfig:
    """How Zero123 guides the optimisation.

    t_min, t_max: fraction of the 1000 training timesteps the SDS timestep is annealed between;
        ``sds_timestep(step_ratio)`` goes linearly from t_max·1000 = 980 (step_ratio 0) to t_min·1000 = 20 (1).
    seed: seeds the guidance's own noise generator (SDS noise and refine's starting noise).
    cuda_graphs:  replay the UNet, and in SDS the VAE encoder's forward and backward, from CUDA graphs per input
                  shape (CUDA only). The UNet at Zero123's 32×32 latents is launch-bound: 30 ms eager vs 5.5 ms
                  replayed for a CFG batch of 2 on an H100.
    antialias_downscale: shrink renders larger than Zero123's 256 px with an antialiased (tent) filter instead
                  of DreamGaussian's plain bilinear (``False``, default). At the 512 → 256 that stage 1's last
                  SDS size and stage 2 need, plain bilinear with align_corners=False is exactly a 2×2 box average;
                  against a 1024 px render area-averaged to 256 it scores 48.85 dB, the antialiased tent 44.73 dB
                  (blurrier; ``scripts/measure_sds_resize.py``, a checker sphere of 20k Gaussians, CPU).
    compile_vae_encoder: run SDS's VAE encoder (forward and backward) through ``torch.compile`` instead of eager
                  or CUDA-graph replay; the reference and stage 2 stay eager. On an H200 its forward + backward on
                  8 renders of 256² (fp16) took 19.9 ms against 24.6 ms replayed from CUDA graphs, after 30–34 s
                  of compiling in each process (``scripts/profile_vae_encoder.py``, the encoder alone); a batch
                  amortises that, one interactive job does not. Off here; ``batch --compile-vae-encoder auto`` turns
                  it on for rows run in groups (docs/batch.md). Where inductor cannot work (the CPU, no Triton) or
                  compiling fails, the encoder runs as it would without (``backend.torch_compile``).
    """

    t_min: float = 0.02
    t_max: float = 0.98
    seed: int = 0
    cuda_graphs: bool = True
    antialias_downscale: bool = False
    compile_vae_encoder: bool = False

    def __post_init__(self):
        if not 0.0 <= self.t_min <= self.t_max <= 1.0:
            raise BadInputError(f"guidance needs 0 <= t_min <= t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}")
