"""A pure-PyTorch differentiable Gaussian rasterizer: our CPU renderer and the reference gsplat is tested against.

It mirrors the maths of gsplat 1.5 (``fully_fused_projection`` + ``rasterize_to_pixels`` in classic mode),
so the two agree to float precision (``tests/test_render.py`` checks it on CUDA):

- EWA splatting: the camera-space covariance is projected with the Jacobian of the perspective projection,
  evaluated at the centre clamped to 1.3x the field of view (as gsplat does), then dilated by ``eps2d`` = 0.3
  px² (a low-pass filter so no splat is thinner than a pixel).
- Gaussians nearer than ``near_plane`` or beyond ``far_plane`` are culled; the rest are sorted by depth.
- Pixel centres sit at ``(x + 0.5, y + 0.5)``.
- Front-to-back compositing: ``alpha = min(0.999, opacity * exp(-sigma))`` (gsplat clamps at 0.999),
  contributions with ``alpha < 1/255`` are skipped, and a pixel stops at the Gaussian that would take its
  transmittance to 1e-4 or below (that Gaussian is excluded, as in gsplat).

How it is made fast enough to train with on a CPU (about 45 ms of one core for forward + backward of 2k
Gaussians at 64²): instead of gsplat's tiles, every (pixel, Gaussian) pair where the Gaussian's alpha can
reach 1/255 is listed once (its ellipse, solved row by row), sorted by pixel and, within a pixel, by depth.
Transmittance is then a segmented cumulative sum of ``log(1 - alpha)`` over that flat list (kept in float64),
and a hand-written backward pass (``_CompositePairs``) walks it back as gsplat's backward kernel does.
Pairs are processed in runs of whole pixels of at most ``max_pairs`` pairs, so memory stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0  # contributions below this are skipped (gsplat's ALPHA_THRESHOLD)
MAX_ALPHA = 0.999  # per-Gaussian alpha clamp (gsplat)
TRANSMITTANCE_MIN = 1e-4  # a pixel is done once its transmittance would fall to this
MEDIAN_ALPHA = 0.5  # the accumulated alpha whose crossing gives the median depth (transmittance 0.5)
FOV_CLAMP = 0.3  # the Jacobian is evaluated at the centre clamped to (1 + 0.3) x the half field of view
EXTEND_SIGMA = 3.33  # the widest box, in standard deviations


@dataclass(frozen=True)
class Projection:
    """Gaussians projected into one image (mirrors gsplat's ``fully_fused_projection`` outputs).

    means2d: [N, 2] pixel coordinates of the centres (x right, y down)
    conics:  [N, 3] (a, b, c) of the inverse 2D covariance: sigma = 0.5 (a dx² + c dy²) + b dx dy
    depths:  [N]    camera-space z (OpenCV: +z forward)
    radii:   [N, 2] int32 half-widths of the screen-space box in pixels, 0 where the Gaussian is culled
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor


@dataclass(frozen=True)
class Rasterization:
    """One rendered image. colors: [H, W, D] (background added), alphas: [H, W, 1], depths: [H, W, 1]
    (expected depth, ``sum w z / sum w``, 0 where nothing was hit). median_depths: [H, W, 1] or None (only when
    asked for, no gradient): the depth of the Gaussian whose alpha takes the pixel's accumulated alpha to
    ``MEDIAN_ALPHA`` or above, front to back; 0 where the accumulated alpha never gets there.
    median_gaussian_ids: [H, W] int64 or None (with median_depths): that Gaussian's index, -1 where none."""

    colors: Tensor
    alphas: Tensor
    depths: Tensor
    projection: Projection
    median_depths: Tensor | None = None
    median_gaussian_ids: Tensor | None = None


def project_gaussians(
    means: Tensor,  # [N, 3] world space
    covars: Tensor,  # [N, 3, 3] world space
    opacities: Tensor,  # [N]
    viewmat: Tensor,  # [4, 4] world-to-camera, OpenCV axes
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projection:
    """Mirrors gsplat ``fully_fused_projection`` (pinhole, classic mode, opacity-aware boxes)."""
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    means_c = means @ rot.T + trans  # [N, 3]
    covars_c = rot @ covars @ rot.T  # [N, 3, 3]
    tx, ty, tz = means_c.unbind(-1)

    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + FOV_CLAMP * tan_fovx, cx / fx + FOV_CLAMP * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + FOV_CLAMP * tan_fovy, cy / fy + FOV_CLAMP * tan_fovy
    # Guard the division for culled Gaussians at z ≈ 0 so they cannot put NaNs into the gradients.
    safe_tz = torch.where(tz.abs() < 1e-6, torch.full_like(tz, 1e-6), tz)
    clamped_x = safe_tz * torch.clamp(tx / safe_tz, min=-lim_x_neg, max=lim_x_pos)
    clamped_y = safe_tz * torch.clamp(ty / safe_tz, min=-lim_y_neg, max=lim_y_pos)
    zeros = torch.zeros_like(tz)
    jac = torch.stack(
        [fx / safe_tz, zeros, -fx * clamped_x / safe_tz**2, zeros, fy / safe_tz, -fy * clamped_y / safe_tz**2], dim=-1
    ).reshape(-1, 2, 3)
    covars2d = jac @ covars_c @ jac.transpose(-1, -2)  # [N, 2, 2]
    means2d = torch.stack([fx * tx / safe_tz + cx, fy * ty / safe_tz + cy], dim=-1)  # [N, 2]

    covars2d = covars2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    c00, c01, c10, c11 = covars2d[:, 0, 0], covars2d[:, 0, 1], covars2d[:, 1, 0], covars2d[:, 1, 1]
    det = c00 * c11 - c01 * c10
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack([c11 / det_safe, -0.5 * (c01 + c10) / det_safe, c00 / det_safe], dim=-1)

    with torch.no_grad():
        # The box that holds every pixel where alpha >= 1/255 (gsplat's opacity-aware extent).
        extend = torch.sqrt(2.0 * torch.log(opacities.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp(max=EXTEND_SIGMA)
        radii = torch.stack([torch.ceil(extend * c00.clamp(min=0).sqrt()), torch.ceil(extend * c11.clamp(min=0).sqrt())],
                            dim=-1)
        valid = (det > 0) & (tz >= near_plane) & (tz <= far_plane) & (opacities >= ALPHA_THRESHOLD)
        valid &= (radii > 0).any(dim=-1)
        inside = ((means2d[:, 0] + radii[:, 0] > 0) & (means2d[:, 0] - radii[:, 0] < width)
                  & (means2d[:, 1] + radii[:, 1] > 0) & (means2d[:, 1] - radii[:, 1] < height))
        radii = torch.where((valid & inside)[:, None], radii, torch.zeros_like(radii)).to(torch.int32)
    return Projection(means2d=means2d, conics=conics, depths=tz, radii=radii)


@dataclass(frozen=True)
class _PixelLists:
    """Every (pixel, Gaussian) pair inside a Gaussian's box, grouped by pixel, front to back within a pixel.

    The pairs of pixel ``p`` are ``pairs[offsets[p] : offsets[p] + counts[p]]``.
    """

    gaussian_ids: Tensor  # [M] int64
    pixel_ids: Tensor  # [M] int64, y * width + x, non-decreasing
    offsets: Tensor  # [H * W] int64
    counts: Tensor  # [H * W] int64


@torch.no_grad()
def _pixel_lists(projection: Projection, opacities: Tensor, width: int, height: int) -> _PixelLists:
    """List, per pixel and front to back, the Gaussians whose alpha there reaches 1/255.

    That region is an ellipse: opacity * exp(-sigma) >= 1/255 <=> sigma <= log(255 * opacity). Row by row
    inside the Gaussian's box it is an interval of x, solved in closed form, so the pairs in the box's
    corners (about a third of them) are never made. The interval is widened by a hair so that rounding
    cannot drop a pair; the exact per-pair test in ``_pair_alphas`` stays the authority.
    """
    device = projection.means2d.device
    visible = torch.nonzero((projection.radii > 0).all(dim=-1)).squeeze(1)
    # Depth order first; the stable sort by pixel below keeps it within each pixel.
    visible = visible[torch.argsort(projection.depths[visible], stable=True)]
    centre = projection.means2d.detach()[visible].double()
    radius = projection.radii[visible].double()
    a, b, c = projection.conics.detach()[visible].double().unbind(1)
    level = torch.log(opacities.detach()[visible].double() / ALPHA_THRESHOLD).clamp(min=0)  # sigma bound

    # Rows of each Gaussian's box: pixel centres y + 0.5 within [centre - radius, centre + radius].
    row_lo = torch.ceil(centre[:, 1] - radius[:, 1] - 0.5).long().clamp(0, height)
    row_hi = torch.floor(centre[:, 1] + radius[:, 1] - 0.5).long().clamp(-1, height - 1)
    rows_per_gaussian = (row_hi - row_lo + 1).clamp(min=0)
    row_owner = torch.repeat_interleave(torch.arange(len(visible), device=device), rows_per_gaussian)  # [R]
    row_first = torch.repeat_interleave(torch.cumsum(rows_per_gaussian, 0) - rows_per_gaussian, rows_per_gaussian)
    y = row_lo.index_select(0, row_owner) + torch.arange(len(row_owner), device=device) - row_first

    # On row y: a dx² + 2 b dx dy + c dy² <= 2 level, an interval of dx around -b dy / a.
    ra, rb, rc = a.index_select(0, row_owner), b.index_select(0, row_owner), c.index_select(0, row_owner)
    dy = y.double() + 0.5 - centre[:, 1].index_select(0, row_owner)
    disc = (rb * dy) ** 2 - ra * (rc * dy * dy - 2 * level.index_select(0, row_owner))
    half = torch.sqrt(disc.clamp(min=0)) / ra
    mid = centre[:, 0].index_select(0, row_owner) - rb * dy / ra
    box_x = centre[:, 0].index_select(0, row_owner), radius[:, 0].index_select(0, row_owner)
    x_lo = torch.maximum(torch.ceil(mid - half - 0.5 - 1e-3), torch.ceil(box_x[0] - box_x[1] - 0.5)).long()
    x_hi = torch.minimum(torch.floor(mid + half - 0.5 + 1e-3), torch.floor(box_x[0] + box_x[1] - 0.5)).long()
    x_lo, x_hi = x_lo.clamp(0, width), x_hi.clamp(-1, width - 1)
    per_row = torch.where(disc >= 0, (x_hi - x_lo + 1).clamp(min=0), 0)  # [R]

    # One entry per pair; repeat_interleave rather than fancy indexing (much faster on the CPU), int32 for
    # the index arithmetic and the sort (about twice as fast as int64).
    per_pair = torch.repeat_interleave(
        torch.stack([visible.index_select(0, row_owner).int(), (torch.cumsum(per_row, 0) - per_row).int(),
                     (y * width + x_lo).int()], dim=1),
        per_row, dim=0)  # [M, 3]
    owner, first, row_start = per_pair.unbind(1)
    pixel_ids = row_start + torch.arange(len(owner), device=device, dtype=torch.int32) - first
    pixel_ids, order = torch.sort(pixel_ids, stable=True)
    pixel_ids = pixel_ids.long()
    counts = torch.bincount(pixel_ids, minlength=width * height)
    return _PixelLists(gaussian_ids=owner.index_select(0, order).long(), pixel_ids=pixel_ids,
                       offsets=torch.cumsum(counts, 0) - counts, counts=counts)


def _pair_alphas(splats: Tensor, gaussian_ids: Tensor, pixel_ids: Tensor, width: int):
    """Per-pair geometry, structure-of-arrays: (dx, dy, splat [6, M], gauss = exp(-sigma), alpha, has_grad)."""
    splat = splats.index_select(1, gaussian_ids)  # [6, M]
    dx = (pixel_ids % width).to(splats.dtype) + 0.5 - splat[0]
    dy = torch.div(pixel_ids, width, rounding_mode="floor").to(splats.dtype) + 0.5 - splat[1]
    sigma = 0.5 * (splat[2] * dx * dx + splat[4] * dy * dy) + splat[3] * dx * dy
    gauss = torch.exp(-sigma)
    raw_alpha = splat[5] * gauss
    # alpha is clamped at MAX_ALPHA (no gradient there) and zero where skipped (gsplat's rules).
    drawn = (sigma >= 0) & (raw_alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(drawn, raw_alpha.clamp(max=MAX_ALPHA), torch.zeros_like(raw_alpha))
    return dx, dy, splat, gauss, alpha, drawn & (raw_alpha < MAX_ALPHA)


def _pair_transmittance(alpha: Tensor, segment_starts: Tensor) -> Tensor:
    """Transmittance in front of each pair [M], zero once the pixel is done, for pairs grouped by pixel.

    T = exp(segmented cumulative sum of log(1 - alpha)); the running sum over all pixels is kept in float64
    so that subtracting a segment's start loses nothing.
    """
    log_transmit = torch.log1p(-alpha).double()
    before = torch.cumsum(log_transmit, dim=0) - log_transmit
    log_before = before - before.index_select(0, segment_starts)
    alive = (log_before + log_transmit) > math.log(TRANSMITTANCE_MIN)  # once false, false for the rest
    return torch.where(alive, torch.exp(log_before), 0.0).to(alpha.dtype)


@torch.no_grad()
def _median_gaussian_ids(splats: Tensor, gaussian_ids: Tensor, pixel_ids: Tensor, segment_starts: Tensor,
                         first_pixel: int, num_pixels: int, width: int) -> Tensor:
    """[num_pixels] int64: per pixel of a run of whole pixels, the Gaussian whose alpha takes the accumulated alpha
    to MEDIAN_ALPHA or above, -1 where none does (``Rasterization.median_gaussian_ids``).

    A pair crosses where the transmittance behind it, T (1 - alpha), is at most 1 - MEDIAN_ALPHA; the pixel's
    first crossing pair (pairs are front to back within a pixel) is the one. A pair the pixel stops before
    (transmittance zeroed) would also read as crossing, but it comes after the true crossing: a pixel stops only
    once T (1 - alpha) <= 1e-4, which with alpha <= 0.999 needs T <= 0.1 already.
    """
    alpha = _pair_alphas(splats, gaussian_ids, pixel_ids, width)[4]
    transmit = _pair_transmittance(alpha, segment_starts)
    crossed = (transmit * (1.0 - alpha) <= 1.0 - MEDIAN_ALPHA) & (alpha > 0)
    past_end = len(alpha)
    order = torch.arange(past_end, device=alpha.device)
    first = torch.full((num_pixels,), past_end, dtype=order.dtype, device=alpha.device).scatter_reduce_(
        0, pixel_ids - first_pixel, torch.where(crossed, order, past_end), "amin")
    found = first < past_end
    ids = torch.full((num_pixels,), -1, dtype=torch.int64, device=alpha.device)
    ids[found] = gaussian_ids.index_select(0, first[found])
    return ids


class _CompositePairs(torch.autograd.Function):
    """Front-to-back compositing of (pixel, Gaussian) pairs with a hand-written backward pass.

    Autograd through the dozen elementwise steps is several times slower on the CPU; here the backward
    walks the transmittance back as gsplat's backward kernel does:
    d out / d alpha_i = T_i s_i - (sum over later pairs j of the pixel of w_j s_j) / (1 - alpha_i),
    with s_i = feature_i · grad_out_pixel and w_i = alpha_i T_i. Per-pair data is kept structure-of-arrays
    ([channels, M]) because CPU gathers and scatter-adds along the last dimension are much faster.
    """

    @staticmethod
    def forward(ctx, splats, features, gaussian_ids, pixel_ids, segment_starts, segment_ends, first_pixel, num_pixels,
                width):
        # splats [6, N], features [D, N] → image [D, num_pixels]
        dx, dy, splat, gauss, alpha, has_grad = _pair_alphas(splats, gaussian_ids, pixel_ids, width)
        transmit = _pair_transmittance(alpha, segment_starts)
        weights = alpha * transmit
        feature = features.index_select(1, gaussian_ids)  # [D, M]
        image = torch.zeros(features.shape[0], num_pixels, dtype=features.dtype, device=features.device)
        local_pixels = pixel_ids - first_pixel
        image.index_add_(1, local_pixels, feature * weights)
        ctx.save_for_backward(gaussian_ids, local_pixels, segment_ends, dx, dy, splat, gauss, alpha, has_grad,
                              transmit, feature)
        ctx.num_gaussians = splats.shape[1]
        return image

    @staticmethod
    def backward(ctx, grad_image):
        gaussian_ids, local_pixels, segment_ends, dx, dy, splat, gauss, alpha, has_grad, transmit, feature = \
            ctx.saved_tensors
        n = ctx.num_gaussians
        weights = alpha * transmit
        grad_pixel = grad_image.index_select(1, local_pixels)  # [D, M]
        grad_features = grad_pixel.new_zeros(grad_pixel.shape[0], n).index_add_(1, gaussian_ids, grad_pixel * weights)

        shade = (feature * grad_pixel).sum(dim=0)  # s_i
        running = torch.cumsum((weights * shade).double(), dim=0)
        later = (running.index_select(0, segment_ends) - running).to(alpha.dtype)  # sum of w_j s_j over later pairs j
        grad_alpha = torch.where(has_grad, transmit * shade - later / (1.0 - alpha), 0.0)

        grad_sigma = -grad_alpha * alpha
        grad_splat = torch.stack([
            -grad_sigma * (splat[2] * dx + splat[3] * dy),  # x
            -grad_sigma * (splat[4] * dy + splat[3] * dx),  # y
            0.5 * grad_sigma * dx * dx,  # conic a
            grad_sigma * dx * dy,  # conic b
            0.5 * grad_sigma * dy * dy,  # conic c
            grad_alpha * gauss,  # opacity
        ])
        grad_splats = grad_splat.new_zeros(6, n).index_add_(1, gaussian_ids, grad_splat)
        return grad_splats, grad_features, None, None, None, None, None, None, None


def rasterize(
    means: Tensor,  # [N, 3]
    covars: Tensor,  # [N, 3, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    viewmat: Tensor,  # [4, 4] world-to-camera, OpenCV axes
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    background: Tensor | None = None,  # [D]
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    max_pairs: int = 1 << 21,
    median_depth: bool = False,
) -> Rasterization:
    """Render one view; differentiable with respect to means, covars, opacities and colors.

    Mirrors ``gsplat.rasterization(..., render_mode="RGB+ED", rasterize_mode="classic")``. ``median_depth``
    adds ``median_depths`` (no gradient), which gsplat 1.5 cannot render.
    """
    n, d = colors.shape
    if means.shape != (n, 3) or covars.shape != (n, 3, 3) or opacities.shape != (n,):
        raise ValueError(f"inconsistent shapes: means {tuple(means.shape)}, covars {tuple(covars.shape)}, "
                         f"opacities {tuple(opacities.shape)}, colors {tuple(colors.shape)}")
    projection = project_gaussians(means, covars, opacities, viewmat, K, width, height, eps2d, near_plane, far_plane)
    lists = _pixel_lists(projection, opacities, width, height)
    splats = torch.cat([projection.means2d.T, projection.conics.T, opacities[None]])  # [6, N]
    features = torch.cat([colors.T, projection.depths[None], torch.ones_like(opacities[None])])  # [D + 2, N]

    # Runs of whole pixels, each with at most max_pairs pairs, so memory stays bounded.
    total = len(lists.gaussian_ids)
    ends = torch.cumsum(lists.counts, 0)
    runs, first_pixel = [], 0
    while total and first_pixel < width * height:
        start = int(lists.offsets[first_pixel])
        last_pixel = int(torch.searchsorted(ends, start + max_pairs, right=True))  # pixels fully inside the budget
        last_pixel = min(max(last_pixel, first_pixel + 1), width * height)
        runs.append((first_pixel, last_pixel, start, int(ends[last_pixel - 1])))
        first_pixel = last_pixel

    image = torch.zeros(d + 2, width * height, dtype=means.dtype, device=means.device)
    median_ids = torch.full((width * height,), -1, dtype=torch.int64, device=means.device) if median_depth else None
    for first_pixel, last_pixel, lo, hi in runs:
        if hi == lo:
            continue
        pixel_ids = lists.pixel_ids[lo:hi]
        run_counts = lists.counts[first_pixel:last_pixel]
        segment_starts = torch.repeat_interleave(lists.offsets[first_pixel:last_pixel] - lo, run_counts)
        segment_ends = segment_starts + torch.repeat_interleave(run_counts - 1, run_counts)
        if median_ids is not None:
            median_ids[first_pixel:last_pixel] = _median_gaussian_ids(
                splats.detach(), lists.gaussian_ids[lo:hi], pixel_ids, segment_starts, first_pixel,
                last_pixel - first_pixel, width)
        run = _CompositePairs.apply(splats, features, lists.gaussian_ids[lo:hi], pixel_ids, segment_starts,
                                    segment_ends, first_pixel, last_pixel - first_pixel, width)
        image = image.index_add(1, torch.arange(first_pixel, last_pixel, device=means.device), run) \
            if len(runs) > 1 else run
    image = image.T.reshape(height, width, d + 2)
    out_colors, depth_sum, out_alphas = image[..., :d], image[..., d:d + 1], image[..., d + 1:]
    if background is not None:
        out_colors = out_colors + background * (1.0 - out_alphas)
    median_depths = None
    if median_ids is not None:
        found = median_ids >= 0
        median_depths = torch.zeros(width * height, dtype=means.dtype, device=means.device)
        median_depths[found] = projection.depths.detach().index_select(0, median_ids[found])
        median_ids, median_depths = median_ids.reshape(height, width), median_depths.reshape(height, width, 1)
    return Rasterization(colors=out_colors, alphas=out_alphas, depths=depth_sum / out_alphas.clamp(min=1e-10),
                         projection=projection, median_depths=median_depths, median_gaussian_ids=median_ids)


@torch.no_grad()
def ray_peak_depths(
    means: Tensor,  # [N, 3] world space
    covars: Tensor,  # [N, 3, 3] world space
    viewmat: Tensor,  # [4, 4] world-to-camera, OpenCV axes
    K: Tensor,  # [3, 3]
    gaussian_ids: Tensor,  # [H, W] int64, -1 where none (Rasterization.median_gaussian_ids)
) -> Tensor:  # [H, W, 1]
    """Per pixel, the camera-space depth at which Gaussian ``gaussian_ids[y, x]``'s 3D density peaks along the
    pixel's ray through its centre (x + 0.5, y + 0.5); 0 where the id is -1.

    With the ray p(z) = z d, d = ((x + 0.5 - cx) / fx, (y + 0.5 - cy) / fy, 1), the exponent
    (z d - mu)^T Sigma^-1 (z d - mu) is least at z = d^T Sigma^-1 mu / d^T Sigma^-1 d. Where a flat Gaussian lies
    on a slope this is where the ray crosses its plane, while its centre's depth (what the rasterizer composites)
    is off by the slope times the distance from the centre.
    """
    height, width = gaussian_ids.shape
    flat = gaussian_ids.reshape(-1)
    found = torch.nonzero(flat >= 0).squeeze(1)
    ids = flat.index_select(0, found)
    rot, trans = viewmat[:3, :3].double(), viewmat[:3, 3].double()
    mean_c = means.detach().double().index_select(0, ids) @ rot.T + trans  # [P, 3]
    covar_c = rot @ covars.detach().double().index_select(0, ids) @ rot.T  # [P, 3, 3]
    covar_c = covar_c + 1e-12 * torch.eye(3, dtype=torch.float64, device=means.device)  # a zero scale stays solvable
    K = K.double()
    direction = torch.stack([((found % width).double() + 0.5 - K[0, 2]) / K[0, 0],
                             (torch.div(found, width, rounding_mode="floor").double() + 0.5 - K[1, 2]) / K[1, 1],
                             torch.ones(len(found), dtype=torch.float64, device=means.device)], dim=-1)  # [P, 3]
    weighted = torch.linalg.solve(covar_c, direction)  # Sigma^-1 d, [P, 3]
    depth = (weighted * mean_c).sum(-1) / (weighted * direction).sum(-1)
    out = torch.zeros(height * width, dtype=means.dtype, device=means.device)
    out[found] = depth.to(means.dtype)
    return out.reshape(height, width, 1)
