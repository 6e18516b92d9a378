"""3D Gaussians: the data (gaussians.py), the renderer (gsplat on CUDA, a PyTorch reference on CPU).

``learning_rates`` (``LearningRates``) and ``densify_config`` (``DensifyConfig``, ``FinalPruneConfig``) import no
torch; the names below load lazily (PEP 562), so importing them does not load torch either.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gaussians import Gaussians, covariances, quat_to_rotmat

_HOME = {"Gaussians": ".gaussians", "covariances": ".gaussians", "quat_to_rotmat": ".gaussians"}

__all__ = ["Gaussians", "covariances", "quat_to_rotmat"]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value  # loaded once; a test may monkeypatch it here
    return value
