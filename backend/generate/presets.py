"""Pipeline configuration in one place: one config dataclass per stage, composed, and the named presets.

Presets trade time for quality: ``preview`` a rough shape to try the workflow, ``draft`` for a quick look,
``standard`` (the default: the reference method's 500 stage-1 steps), ``high`` for a final asset. ``--steps`` overrides the stage-1 step count.
Their names, descriptions and the default are declared in backend.choices; this module says what each does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..choices import DEFAULT_PRESET, check_seed
from ..errors import BadInputError
from ..guidance.config import GuidanceConfig
from ..mesh.mesh_config import MeshConfig
from ..mesh.texture_config import TextureConfig
from ..stage1_config import Stage1Config


@dataclass(frozen=True)
class PipelineConfig:
    """Everything after segmentation, for one object."""

    reference_size: int = 256  # side of the square reference image fed to stage 1 and Zero123
    border_ratio: float = 0.2  # empty margin around the object in the reference image
    stage1: Stage1Config = field(default_factory=Stage1Config)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    bake_size: int = 512  # render size of the views the texture is baked from
    texture_size: int = 1024


def _preset(stage1_steps: int, grid: int, target_faces: int, texture_steps: int, texture_size: int,
            bake_size: int) -> PipelineConfig:
    base = PipelineConfig()
    return dataclasses.replace(
        base,
        stage1=dataclasses.replace(base.stage1, steps=stage1_steps),
        mesh=dataclasses.replace(base.mesh, resolution=grid, target_faces=target_faces),
        texture=dataclasses.replace(base.texture, steps=texture_steps),
        texture_size=texture_size,
        bake_size=bake_size,
    )


def _preview_preset() -> PipelineConfig:
    """A rough shape to try the workflow, not final quality: stage 1 short (30 steps, 1000 Gaussians, 32-64 px
    views), a coarse mesh (48³ grid, 3000 faces), a small texture (128 px baked from 64 px views), no stage 2.

    With the tiny models on a shared 2-core CPU at load average 12 the whole command takes 39 s wall, stage 1
    7.7 s of it (docs/user-guide.md, "How long Preview takes"; the 106 s measured before were torch's threads
    spinning against each other, backend/openmp_wait.py). With real Zero123-XL each step adds a diffusion
    forward and a VAE backward at 256 px, so on a CPU it is minutes; the Quick method's preview
    (QUICK_PRESETS) is the one for a CPU."""
    base = PipelineConfig()
    return dataclasses.replace(
        base,
        reference_size=64,
        stage1=dataclasses.replace(base.stage1, steps=30, num_init=1000, render_sizes=(32, 64)),
        mesh=dataclasses.replace(base.mesh, resolution=48, target_faces=3_000),
        texture=dataclasses.replace(base.texture, steps=0),
        texture_size=128,
        bake_size=64,
    )


PRESETS: dict[str, PipelineConfig] = {
    "preview": _preview_preset(),
    "draft": _preset(stage1_steps=250, grid=96, target_faces=20_000, texture_steps=20, texture_size=512, bake_size=256),
    "standard": _preset(stage1_steps=500, grid=128, target_faces=50_000, texture_steps=50, texture_size=1024,
                        bake_size=512),
    "high": _preset(stage1_steps=1000, grid=192, target_faces=100_000, texture_steps=100, texture_size=2048,
                    bake_size=512),
}


def pipeline_config(preset: str = DEFAULT_PRESET, steps: int | None = None) -> PipelineConfig:
    if preset not in PRESETS:
        raise BadInputError(f"unknown preset {preset!r} (choose one of {', '.join(PRESETS)})")
    config = PRESETS[preset]
    if steps is not None:
        if steps < 1:
            raise BadInputError(f"--steps must be at least 1, got {steps}")
        config = dataclasses.replace(config, stage1=dataclasses.replace(config.stage1, steps=steps))
    return config


def seeded(config: PipelineConfig, seed: int) -> PipelineConfig:
    """``config`` with every seeded stage driven by the job's one ``seed``: the SDS noise (guidance) and the
    stage-2 views (texture); stage 1 takes the seed as an argument."""
    return dataclasses.replace(config, guidance=dataclasses.replace(config.guidance, seed=check_seed(seed)),
                               texture=dataclasses.replace(config.texture, seed=seed))


def _smoke_preset() -> PipelineConfig:
    """Tiny sizes for tests and the offline smoke run (``IMAGE_TO_3D_MODELS=tiny``) on a CPU: it exercises
    every stage in seconds; the shape it makes means nothing."""
    base = PipelineConfig()
    return dataclasses.replace(
        base,
        reference_size=64,
        stage1=dataclasses.replace(base.stage1, steps=30, num_init=1000, render_sizes=(32, 64)),
        mesh=dataclasses.replace(base.mesh, resolution=32, target_faces=2_000),
        texture=dataclasses.replace(base.texture, steps=3, render_size=48, target_views=2, batch_size=2,
                                    refine_steps=2),
        texture_size=64,
        bake_size=48,
    )


PRESETS["smoke"] = _smoke_preset()
