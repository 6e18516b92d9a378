"""Density of a set of 3D Gaussians sampled on a regular grid: the volume marching cubes reads.

density(x) = Σᵢ opacityᵢ · exp(-½ (x - μᵢ)ᵀ Σᵢ⁻¹ (x - μᵢ))

The grid is evaluated block by block on the Gaussians' device. Only Gaussians whose 3σ box overlaps a block
are evaluated against it, and the (points × Gaussians) work is split into chunks of at most
``pair_budget`` pairs, so memory stays bounded whatever the Gaussian count.

The quadratic form is one matmul: with A = Σ⁻¹ and coordinates taken relative to the block centre (which keeps
float32 cancellation small), xᵀAx - 2xᵀAμ + μᵀAμ = φ(x) · c where φ(x) = [x², y², z², 2xy, 2xz, 2yz, x, y, z, 1]
and c holds the matching entries of A, -2Aμ and μᵀAμ per Gaussian. The terms cancel, so the matmuls run in
full float32 even where the caller enabled TF32 (its 10-bit mantissa would shift the surface visibly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..gaussians.gaussians import Gaussians, quat_to_rotmat
from ..job_control import JobControl, ensure_control

SIGMA_EXTENT = 3.0  # a Gaussian's support: its 3σ box
PROGRESS_STAGE = "mesh"


BOX_FILL = 0.9  # the Gaussians' box fills ±0.9 of the grid's ±1 along its longest axis (DreamGaussian)
BOX_MIN_OPACITY = 0.005  # Gaussians fainter than this do not count towards the box (DreamGaussian's pre-filter)


def grid_coordinates(resolution: int, bound: float, device=None, centre: float = 0.0) -> torch.Tensor:
    """[R] sample positions along one axis: R points from centre - bound to centre + bound inclusive."""
    return torch.linspace(-bound, bound, resolution, device=device, dtype=torch.float32) + centre


def gaussian_box(gaussians: Gaussians) -> tuple[tuple[float, float, float], float]:
    """(centre, bound): the cube DreamGaussian samples its density in, from the Gaussians themselves.

    The box of the centres of the Gaussians with opacity above ``BOX_MIN_OPACITY``, centred, with its longest
    side scaled to ``2 · BOX_FILL`` of the cube's side ``2 · bound``: bound = longest side / (2 · 0.9). An
    empty or single-point set falls back to the unit cube around its centre.
    """
    means = gaussians.means.detach().float()
    visible = gaussians.opacities.detach() > BOX_MIN_OPACITY
    if bool(visible.any()):
        means = means[visible]
    if means.shape[0] == 0:
        return (0.0, 0.0, 0.0), 1.0
    low, high = means.amin(0), means.amax(0)
    centre = tuple(float(c) for c in (low + high) / 2)
    side = float((high - low).amax())
    return centre, (side / (2 * BOX_FILL) if side > 1e-6 else 1.0)


def _quadratic_coefficients(means: torch.Tensor, inv_cov: torch.Tensor) -> torch.Tensor:
    """[G, 10] coefficients c such that φ(x)·c = (x-μ)ᵀA(x-μ) (φ as in the module docstring)."""
    a = inv_cov
    a_mu = (a @ means[:, :, None])[:, :, 0]  # [G, 3]
    mu_a_mu = (means * a_mu).sum(-1)  # [G]
    return torch.stack(
        [a[:, 0, 0], a[:, 1, 1], a[:, 2, 2], a[:, 0, 1], a[:, 0, 2], a[:, 1, 2],
         -2 * a_mu[:, 0], -2 * a_mu[:, 1], -2 * a_mu[:, 2], mu_a_mu],
        dim=-1,
    )


def _point_features(points: torch.Tensor) -> torch.Tensor:
    """[P, 3] → [P, 10] φ(x) (module docstring)."""
    x, y, z = points.unbind(-1)
    return torch.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z, x, y, z, torch.ones_like(x)], dim=-1)


@contextmanager
def _full_float32_matmul() -> Iterator[None]:
    # The CUDA TF32 switch only (CPU matmuls are always full float32). torch 2.11 refuses to read the global
    # precision once legacy and new APIs were mixed, so read and restore the one flag we change.
    matmul = torch.backends.cuda.matmul
    previous = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32 = previous


@torch.no_grad()
def density_grid(
    gaussians: Gaussians,
    resolution: int = 128,
    bound: float = 1.0,
    block: int = 32,
    pair_budget: int = 1 << 24,
    control: JobControl | None = None,
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """Gaussian density on a resolution³ grid over centre + [-bound, bound]³, on the Gaussians' device.

    Returns ``[R, R, R]`` float32 indexed ``[ix, iy, iz]``, where index i along axis k sits at
    ``centre[k] - bound + 2·bound·i/(R-1)`` (see :func:`grid_coordinates`). ``block`` is the edge of the cubic
    blocks (in samples) evaluated together;
    ``pair_budget`` caps the point × Gaussian pairs held at once (memory ≈ 4 bytes × budget × a few).
    ``control`` gets a progress report (stage "mesh", first 40%) per slab of blocks, and can cancel.
    """
    if resolution < 2:
        raise ValueError(f"density grid resolution must be at least 2, got {resolution}")
    if bound <= 0:
        raise ValueError(f"density grid bound must be positive, got {bound}")
    with _full_float32_matmul():
        return _density_grid(gaussians, resolution, bound, block, pair_budget, ensure_control(control), centre)


def _density_grid(gaussians: Gaussians, resolution: int, bound: float, block: int, pair_budget: int,
                  control: JobControl, centre: tuple[float, float, float]) -> torch.Tensor:
    device = gaussians.means.device
    means = gaussians.means.detach().float()
    scales = gaussians.scales.detach().float().clamp_min(1e-6)
    rot = quat_to_rotmat(gaussians.quats.detach().float())  # [N, 3, 3]
    opacities = gaussians.opacities.detach().float()

    # Σ⁻¹ = R diag(1/s²) Rᵀ; the 3σ box half-extent along world axis k is 3·sqrt(Σ_kk).
    inv_cov = (rot / scales[:, None, :] ** 2) @ rot.transpose(-1, -2)  # [N, 3, 3]
    cov_diag = ((rot * scales[:, None, :]) ** 2).sum(-1)  # [N, 3]
    half_extent = SIGMA_EXTENT * cov_diag.sqrt()
    box_lo, box_hi = means - half_extent, means + half_extent

    axes = [grid_coordinates(resolution, bound, device, c) for c in centre]
    grid = torch.zeros((resolution,) * 3, dtype=torch.float32, device=device)
    starts = range(0, resolution, block)
    for x0 in starts:
        control.report(PROGRESS_STAGE, 0.4 * x0 / resolution, "density grid")
        for y0 in starts:
            for z0 in starts:
                xs, ys, zs = axes[0][x0:x0 + block], axes[1][y0:y0 + block], axes[2][z0:z0 + block]
                lo = torch.stack([xs[0], ys[0], zs[0]])
                hi = torch.stack([xs[-1], ys[-1], zs[-1]])
                overlaps = ((box_hi >= lo) & (box_lo <= hi)).all(-1)
                index = overlaps.nonzero()[:, 0]
                if index.numel() == 0:
                    continue
                centre = (lo + hi) / 2
                points = torch.stack(torch.meshgrid(xs, ys, zs, indexing="ij"), dim=-1).reshape(-1, 3)
                features = _point_features(points - centre)  # [P, 10]
                values = torch.zeros(points.shape[0], dtype=torch.float32, device=device)
                chunk = max(1, pair_budget // points.shape[0])
                for g0 in range(0, index.numel(), chunk):
                    sel = index[g0:g0 + chunk]
                    coeff = _quadratic_coefficients(means[sel] - centre, inv_cov[sel])  # [G, 10]
                    mahalanobis = (features @ coeff.T).clamp_min(0)  # [P, G]
                    values += torch.exp(-0.5 * mahalanobis) @ opacities[sel]
                grid[x0:x0 + block, y0:y0 + block, z0:z0 + block] = values.reshape(len(xs), len(ys), len(zs))
    return grid
