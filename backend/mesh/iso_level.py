"""Choosing the marching-cubes iso-level from the Gaussians' own renders: silhouettes, optionally depth too.

No fixed density level suits every fit. On eval-recon's full-size objects (H100, 2000 stage-1 steps) the
surface at DreamGaussian's 1.0 sat 0.02–0.03 inside the true surface while 0.3 sat within 0.001 of it; the
same objects fitted for 4000 steps, or with 8 views per step instead of 4, put the best level elsewhere
(Suzanne at 0.3: 27.1 dB and Chamfer 0.72 % of the diagonal after 2000 steps, 24.1 dB and 1.06 % after 4000).
What does not move is what the Gaussians look like: their rendered alpha. So each candidate level is meshed,
the mesh is rasterized at a ring of views, and the level whose renders agree best with the Gaussians' at the
same views wins. Three criteria (``mesh_config.ISO_CRITERIA``):

- ``"silhouette"``: mean IoU of the mesh's coverage with the Gaussians' alpha > 0.5.
- ``"silhouette+depth"``: the same IoU, but a pixel both cover counts as agreeing only where the mesh is not in
  front of the Gaussians' expected depth there by more than ``DEPTH_TOLERANCE_FRACTION`` of the Gaussians' size.
  A low level that closes a concavity (a bowl's inside filled by the faint density there) leaves the silhouette
  unchanged, so the silhouette criterion cannot see it; the lid sits in front of the depth the Gaussians render
  through it, so this one can. Where no mesh surface lies in front of the Gaussians it is the silhouette IoU
  itself. One-sided because the expected depth is pulled towards the camera wherever the surface slopes (each
  Gaussian composites at its centre's depth, and the nearer ones come first): a two-sided test counted that at
  every level, more the deeper the level, and ranked the H200 bowl's levels backwards (docs/eval_recon.md). A
  mesh too deep is the silhouette's to punish: higher levels shrink it. A tolerance, rather
  than a mean depth error added to the IoU, keeps the score in IoU units with no weight to tune.
- ``"silhouette+median-depth"``: the same against the Gaussians' median depth, the depth at which the accumulated
  alpha along the pixel's ray reaches 0.5 (``render.render_depths``: the reference rasterizer, also on CUDA, as
  gsplat 1.5 renders no median), with the same tolerance, one-sided. Built to avoid the expected depth's pull
  into the semi-transparent outer layer; measured on the H200 fits it sits there too (Suzanne: about 0.01 behind the
  surface the silhouette picks, no more near the silhouette's edges than elsewhere), picks what
  ``"silhouette+depth"`` picks on five of six objects at 128³, and two-sided never opens the bowl; through the
  full-size pipeline it lowers the bowl's Chamfer 2.95 → 2.10 % at −2.5 dB and raises every other object's
  (docs/eval_recon.md, "A median depth for the auto iso-level"). An option, used nowhere by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..camera import REFERENCE_FOVY_DEG, REFERENCE_RADIUS, Camera
from ..gaussians.gaussians import Gaussians
from ..gaussians.render import render_depths, render_gaussians
from .mesh_config import DEPTH_CRITERION, ISO_CRITERIA, MEDIAN_DEPTH_CRITERION, SILHOUETTE_CRITERION
from .rasterize import rasterize_mesh

CANDIDATE_LEVELS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0, 1.5)  # roughly ×1.5 apart
ALPHA_SILHOUETTE = 0.5
# How far in front of the Gaussians' expected depth the mesh may lie, as a fraction of the diagonal of the box
# holding the central 98 % of the Gaussians' centres per axis (outlying floaters ignored): about 0.04 on
# eval-recon's objects (radius 0.6), half the bowl's wall and far less than the depth of its inside
DEPTH_TOLERANCE_FRACTION = 0.02
# The same for the median depth, and whether a mesh behind it by more than that disagrees too. Measured on the six
# H200 fits at 2 %, 5 % and 10 %: two-sided, no tolerance opens the bowl (deeper levels lie behind the median on
# more pixels than the lid lies in front of it); one-sided at 2 % opens it as the expected depth does
# (docs/eval_recon.md, "A median depth for the auto iso-level")
MEDIAN_DEPTH_TOLERANCE_FRACTION = 0.02
MEDIAN_DEPTH_TWO_SIDED = False


@dataclass(frozen=True)
class IsoLevelChoice:
    """The chosen level, the criterion that chose it, and each candidate's mean silhouette IoU and mean
    depth-agreeing IoU (level → score; both are measured whatever the criterion), and its mean median-depth-agreeing
    IoU (only under the median criterion, whose renders are the only ones with a median depth; else empty)."""

    level: float
    criterion: str
    iou_by_level: dict[float, float]
    depth_iou_by_level: dict[float, float]
    median_depth_iou_by_level: dict[float, float]


@dataclass(frozen=True)
class GaussianView:
    """What the Gaussians look like from one camera: alpha > 0.5 [H, W] bool, expected view depth [H, W], median
    view depth [H, W] (None unless rendered)."""

    silhouette: torch.Tensor
    depth: torch.Tensor
    median_depth: torch.Tensor | None = None


@dataclass(frozen=True)
class ViewAgreement:
    """One mesh against one :class:`GaussianView`: silhouette IoU, the IoU counting only the pixels where the
    mesh is not in front of the Gaussians' expected depth by more than the tolerance, and the IoU counting only
    those whose mesh depth agrees with their median depth (None where the view has none)."""

    iou: float
    depth_iou: float
    median_depth_iou: float | None = None


def silhouette_cameras(size: int, radius: float = REFERENCE_RADIUS, fovy_deg: float = REFERENCE_FOVY_DEG
                       ) -> list[Camera]:
    """Ten views: four around the object 20° above, four 20° below (offset by 45°), one from nearly straight
    above and one from below (silhouettes from the poles see what a ring misses)."""
    cameras = [Camera.orbit(20.0, azimuth, size, radius, fovy_deg) for azimuth in (0.0, 90.0, 180.0, 270.0)]
    cameras += [Camera.orbit(-20.0, azimuth, size, radius, fovy_deg) for azimuth in (45.0, 135.0, 225.0, 315.0)]
    cameras += [Camera.orbit(89.0, 0.0, size, radius, fovy_deg), Camera.orbit(-89.0, 0.0, size, radius, fovy_deg)]
    return cameras


def gaussian_views(gaussians: Gaussians, cameras: Sequence[Camera], median_depth: bool = False) -> list[GaussianView]:
    """The Gaussians' silhouette (alpha > 0.5) and expected depth at each camera, and with ``median_depth`` their
    median depth (all three from the reference rasterizer then, whatever the device)."""
    background = torch.zeros(3, device=gaussians.means.device)
    views = []
    with torch.no_grad():
        for camera in cameras:
            if median_depth:
                depths = render_depths(gaussians, camera)
                views.append(GaussianView(depths.alpha[..., 0] > ALPHA_SILHOUETTE, depths.depth[..., 0],
                                          depths.median_depth[..., 0]))
            else:
                render = render_gaussians(gaussians, camera, background)
                views.append(GaussianView(render.alpha[..., 0] > ALPHA_SILHOUETTE, render.depth[..., 0]))
    return views


def central_diagonal(gaussians: Gaussians) -> float:
    """The diagonal of the box of the central 98 % of the centres, per axis (outlying floaters ignored)."""
    means = gaussians.means.detach().float().cpu()
    low, high = torch.quantile(means, 0.01, dim=0), torch.quantile(means, 0.99, dim=0)
    return float(torch.linalg.vector_norm(high - low))


def depth_agreeing_iou(covered: torch.Tensor, mesh_depth: torch.Tensor, target: torch.Tensor,
                       reference_depth: torch.Tensor | None, tolerance: float, two_sided: bool) -> float:
    """IoU of the mesh's coverage and the Gaussians' silhouette (all [H, W]) counting in the intersection only the
    pixels where the mesh's depth is not in front of ``reference_depth`` by more than ``tolerance`` (and, if
    ``two_sided``, not behind it by more either); with ``reference_depth`` None, the plain IoU. 1.0 when both are
    empty."""
    union = int((covered | target).sum())
    if not union:
        return 1.0
    agreeing = covered & target
    if reference_depth is not None:
        agreeing &= mesh_depth >= reference_depth - tolerance  # not in front of what the Gaussians show
        if two_sided:
            agreeing &= mesh_depth <= reference_depth + tolerance
    return float(agreeing.sum()) / union


def view_agreements(vertices: np.ndarray, faces: np.ndarray, views: Sequence[GaussianView],
                    cameras: Sequence[Camera], tolerance: float, median_tolerance: float | None = None
                    ) -> list[ViewAgreement]:
    """The mesh rasterized at each camera against the Gaussians' view there (module docstring). ``tolerance``
    applies to the expected depth, ``median_tolerance`` (default: the same) to the median depth."""
    median_tolerance = tolerance if median_tolerance is None else median_tolerance
    device = views[0].silhouette.device
    vertices_t = torch.as_tensor(vertices, dtype=torch.float32, device=device)
    faces_t = torch.as_tensor(faces, dtype=torch.int64, device=device)
    agreements = []
    for camera, view in zip(cameras, views, strict=True):
        raster = rasterize_mesh(vertices_t, faces_t, camera)
        covered, target = raster.mask, view.silhouette
        median_iou = None if view.median_depth is None else depth_agreeing_iou(
            covered, raster.depth, target, view.median_depth, median_tolerance, MEDIAN_DEPTH_TWO_SIDED)
        agreements.append(ViewAgreement(depth_agreeing_iou(covered, raster.depth, target, None, 0.0, False),
                                        depth_agreeing_iou(covered, raster.depth, target, view.depth, tolerance, False),
                                        median_iou))
    return agreements


def best_level(scores: dict[float, float]) -> float:
    """The level with the highest score; ties go to the level nearest 1.0 (DreamGaussian's)."""
    return max(scores, key=lambda level: (scores[level], -abs(np.log(level))))


def choose_iso_level(
    mesh_at: Callable[[float], tuple[np.ndarray, np.ndarray] | None],
    gaussians: Gaussians,
    view_size: int = 256,
    candidates: Sequence[float] = CANDIDATE_LEVELS,
    criterion: str = SILHOUETTE_CRITERION,
) -> IsoLevelChoice:
    """The candidate level whose mesh agrees best with the Gaussians under ``criterion`` (module docstring).

    ``mesh_at(level)`` returns (vertices, faces) of the iso-surface at ``level``, or None where there is none
    (the density never reaches it); such levels are skipped. Raises ValueError for an unknown criterion or when
    no candidate has a surface.
    """
    if criterion not in ISO_CRITERIA:
        raise ValueError(f"unknown iso-level criterion {criterion!r} (choose from {', '.join(ISO_CRITERIA)})")
    cameras = silhouette_cameras(view_size)
    with_median = criterion == MEDIAN_DEPTH_CRITERION
    views = gaussian_views(gaussians, cameras, median_depth=with_median)
    diagonal = central_diagonal(gaussians)
    ious: dict[float, float] = {}
    depth_ious: dict[float, float] = {}
    median_ious: dict[float, float] = {}
    for level in candidates:
        surface = mesh_at(level)
        if surface is not None:
            agreements = view_agreements(*surface, views, cameras, DEPTH_TOLERANCE_FRACTION * diagonal,
                                         MEDIAN_DEPTH_TOLERANCE_FRACTION * diagonal)
            ious[level] = float(np.mean([a.iou for a in agreements]))
            depth_ious[level] = float(np.mean([a.depth_iou for a in agreements]))
            if with_median:
                median_ious[level] = float(np.mean([a.median_depth_iou for a in agreements]))
    if not ious:
        raise ValueError("no candidate iso-level has a surface")
    scores = {DEPTH_CRITERION: depth_ious, MEDIAN_DEPTH_CRITERION: median_ious}.get(criterion, ious)
    return IsoLevelChoice(best_level(scores), criterion, ious, depth_ious, median_ious)
