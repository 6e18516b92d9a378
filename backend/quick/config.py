"""Settings of the quick method, and its presets (named like the DreamGaussian ones: the same CLI flag).

The grid and texture sizes follow the official defaults at ``standard`` (256³ marching cubes; the official
``--texture-resolution`` is 2048, ours 1024 to match the DreamGaussian preset of the same name).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import BadInputError
from .field_mesh_config import FieldMeshConfig

FOREGROUND_RATIO = 0.85  # run.py's --foreground-ratio default


@dataclass(frozen=True)
class QuickConfig:
    """foreground_ratio: how much of TripoSR's input the object fills (its training framing)
    border_ratio:       margin of our reference view; the mesh is scaled so that our reference camera sees the
                        object as large as stage 1's reference image shows it (backend.models.triposr.world_scale)
    mesh:               field → mesh settings
    texture_size:       side of the baked texture
    """

    foreground_ratio: float = FOREGROUND_RATIO
    border_ratio: float = 0.2
    mesh: FieldMeshConfig = field(default_factory=FieldMeshConfig)
    texture_size: int = 1024


def _preset(resolution: int, target_faces: int, texture_size: int) -> QuickConfig:
    base = QuickConfig()
    return dataclasses.replace(base, mesh=dataclasses.replace(base.mesh, resolution=resolution, target_faces=target_faces),
                               texture_size=texture_size)


QUICK_PRESETS: dict[str, QuickConfig] = {
    # one TripoSR pass, a coarse marching-cubes grid and a small texture: the workflow in under a minute on a CPU
    "preview": _preset(resolution=96, target_faces=5_000, texture_size=256),
    "draft": _preset(resolution=128, target_faces=20_000, texture_size=512),
    "standard": _preset(resolution=256, target_faces=50_000, texture_size=1024),
    "high": _preset(resolution=320, target_faces=100_000, texture_size=2048),
    # tests and the offline smoke run: seconds on a CPU
    "smoke": _preset(resolution=24, target_faces=2_000, texture_size=64),
}


def quick_config(preset: str) -> QuickConfig:
    if preset not in QUICK_PRESETS:
        raise BadInputError(f"unknown preset {preset!r} (choose one of {', '.join(QUICK_PRESETS)})")
    return QUICK_PRESETS[preset]
