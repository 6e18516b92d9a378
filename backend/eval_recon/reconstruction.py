"""What a reconstruction takes (posed ground-truth renders) and gives (a GLB and its mesh).

Kept apart from :mod:`.reconstruct`, which imports the fitting stages, so that the evaluation loop can be
driven (and tested) with any function of this shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cameras import NamedCamera


@dataclass(frozen=True)
class TrainingView:
    """One ground-truth render the reconstruction may see."""

    view: NamedCamera
    rgb: np.ndarray  # [H, W, 3] float32 straight (not premultiplied) colour in [0, 1]
    alpha: np.ndarray  # [H, W] float32 in [0, 1]


@dataclass(frozen=True)
class ReconstructionResult:
    glb_path: Path
    vertices: np.ndarray  # [V, 3] float32, our world: the surface the GLB holds (for Chamfer)
    faces: np.ndarray  # [F, 3] int64
    gaussian_count: int
    gaussians: Any = None  # backend.gaussians.Gaussians when Gaussians were fitted
    timings: dict[str, float] = field(default_factory=dict)


# (training views, config, GLB path to write, device, seed, control) → result
Reconstructor = Callable[..., ReconstructionResult]


def check_views(views: Sequence[TrainingView]) -> None:
    from ..errors import BadInputError

    if not views:
        raise BadInputError("a reconstruction needs at least one training view")
    for v in views:
        size = (v.view.camera.height, v.view.camera.width)
        if v.rgb.shape != (*size, 3) or v.alpha.shape != size:
            raise BadInputError(f"view {v.view.name}: rgb {v.rgb.shape} / alpha {v.alpha.shape} do not match the "
                                f"camera's {size}")

