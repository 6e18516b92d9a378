"""The ways ``generate`` can make a mesh (docs/quick-method.md says when to use which)."""

from __future__ import annotations

from .errors import BadInputError

DREAMGAUSSIAN = "dreamgaussian"  # Gaussians fitted with Zero123 SDS, mesh, baked + refined texture (minutes)
QUICK = "quick"  # one TripoSR forward pass: mesh from its density, texture from its colour field (seconds)
QUICK_REFINE = "quick+refine"  # DreamGaussian's stages, stage 1 started from TripoSR's surface with fewer steps
METHODS = (DREAMGAUSSIAN, QUICK, QUICK_REFINE)
DEFAULT_METHOD = DREAMGAUSSIAN  # until quick and quick+refine are compared with real weights


def check_method(method: str) -> str:
    if method not in METHODS:
        raise BadInputError(f"unknown method {method!r} (choose one of {', '.join(METHODS)})")
    return method
