"""Diffusion priors for unseen views: Zero123 score distillation and refinement targets.

``config.py`` (``GuidanceConfig``) and ``protocol.py`` (``GuidanceLike``) import no torch; ``Zero123Guidance``
(``zero123_guidance.py``, which imports diffusers) is loaded on first use.
"""

from .config import GuidanceConfig
from .protocol import GuidanceLike

__all__ = ["GuidanceConfig", "GuidanceLike", "Zero123Guidance"]


def __getattr__(name: str):
    if name == "Zero123Guidance":
        from .zero123_guidance import Zero123Guidance

        return Zero123Guidance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
