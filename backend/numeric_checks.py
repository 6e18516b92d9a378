"""NaN/inf stop at the first stage that sees them, with a one-line error naming what holds them.

A NaN that reaches a native kernel is not an error message but a crash: PyTorch's CPU backward of
``grid_sample`` on an all-NaN sampling grid segfaults (issue 19), which also takes Blender down. So every value
that enters the pipeline from outside (a photo, weights, a cache entry) and every value a stage hands the next
(Gaussians, mesh vertices, UVs, textures) is checked here, before the next kernel runs.
"""

from __future__ import annotations

import numpy as np

from .errors import BadInputError, ImageTo3DError


class NonFiniteError(BadInputError):
    """A value that must be finite holds NaN or ±inf (exit 2): ``what`` names it, e.g. "the mesh's UVs"."""

    def __init__(self, what: str, nan: bool):
        super().__init__(f"{what} contains {'NaN' if nan else 'infinite'} values: nothing usable can be made from it")
        self.what = what
        self.nan = nan


def _all_finite(value) -> tuple[bool, bool]:
    """(all finite, has NaN) for a NumPy array or a torch tensor (torch imported only when given one)."""
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.complexfloating):
            return True, False
        finite = bool(np.isfinite(value).all())
        return finite, (not finite) and bool(np.isnan(value).any())
    import torch

    if not (torch.is_floating_point(value) or torch.is_complex(value)):
        return True, False
    finite = bool(torch.isfinite(value).all())
    return finite, (not finite) and bool(torch.isnan(value).any())


def require_finite(what: str, *values, error: type[ImageTo3DError] | None = None) -> None:
    """Raise :class:`NonFiniteError` (or ``error(message)``, e.g. ModelsUnavailableError for weights) when any
    of ``values`` (arrays or tensors; None is skipped) holds NaN or ±inf."""
    for value in values:
        if value is None:
            continue
        finite, nan = _all_finite(value)
        if not finite:
            problem = NonFiniteError(what, nan)
            raise problem if error is None else error(str(problem))


def require_finite_module(what: str, module, error: type[ImageTo3DError]) -> None:
    """Every parameter and buffer of a ``torch.nn.Module`` finite, else ``error`` naming the first bad tensor."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_meta:  # not loaded from the checkpoint (e.g. a buffer the model recomputes): no values yet
            continue
        finite, nan = _all_finite(tensor.detach())
        if not finite:
            raise error(f"{what}: weight {name} contains {'NaN' if nan else 'infinite'} values (a damaged or "
                        "wrong checkpoint); download it again")
