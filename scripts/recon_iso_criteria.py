"""How each auto iso-level criterion ranks the candidate levels of a finished eval-recon fit, and what each level's
raw surface is worth against the ground truth.

    python scripts/recon_iso_criteria.py --out DIR --json RESULTS.json [--object NAME ...] [--resolution 128]

DIR is an ``eval-recon`` output folder with a fit (``gaussians.safetensors`` and ``ground_truth_surface.npz`` per
object); nothing is written into it. For each object: the density grid at ``--resolution`` (the Gaussians' box, as
``extract_mesh`` builds it), marching cubes at every ``iso_level.CANDIDATE_LEVELS`` (no cleanup, smoothing,
decimation or cull), each level's mesh rasterized at the chooser's ten views and scored under every criterion
setting below with ``iso_level.depth_agreeing_iou`` (the chooser's own test), and each level's Chamfer against the
true surface (20k points, seeds 0 and 1, as ``--phase score``; % of the true surface's bounding-box diagonal) with
its two one-sided halves. Which level each setting picks uses ``iso_level.best_level`` (ties: nearest 1.0).

Settings (name: depth compared, tolerance as a fraction of ``iso_level.central_diagonal``, one- or two-sided):
``silhouette``; ``expected-1s-2%`` (the ``silhouette+depth`` criterion), ``-5%``, ``-10%``; ``median-1s-2%``,
``-5%``; ``median-2s-2%``, ``-5%``, ``-10%``; the same five with ``ray`` for ``median``: the median Gaussian's
depth where its density peaks along the pixel's ray rather than at its centre. The Gaussians' views come from the
reference rasterizer (all three depths from one render: ``render.render_depths``). Run it with one torch thread on a shared machine
(``OMP_NUM_THREADS=1``): 80–170 s an object of 29k–86k Gaussians on one core of a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.errors import BadInputError, NoSurfaceError  # noqa: E402
from backend.eval_recon import metrics  # noqa: E402
from backend.eval_recon.blender_job import load_surface  # noqa: E402
from backend.eval_recon.layout import GAUSSIANS_NAME, SURFACE_NAME, read_manifest  # noqa: E402
from backend.gaussians.gaussians import Gaussians  # noqa: E402
from backend.gaussians.render import render_depths  # noqa: E402
from backend.mesh.density_grid import density_grid, gaussian_box  # noqa: E402
from backend.mesh.extract import marching_cubes  # noqa: E402
from backend.mesh.iso_level import (  # noqa: E402
    ALPHA_SILHOUETTE,
    CANDIDATE_LEVELS,
    best_level,
    central_diagonal,
    depth_agreeing_iou,
    silhouette_cameras,
)
from backend.mesh.rasterize import rasterize_mesh  # noqa: E402

VIEW_SIZE = 256  # choose_iso_level's default
CHAMFER_POINTS = 20_000


@dataclass(frozen=True)
class DepthSetting:
    """One way of scoring a level: which Gaussian depth a pixel both cover is compared with, how far off it may be
    (fraction of the central diagonal), one- or two-sided; ``depth`` None: the silhouette IoU alone."""

    name: str
    depth: str | None  # "expected", "median" or None
    tolerance_fraction: float = 0.0
    two_sided: bool = False


SETTINGS = (
    DepthSetting("silhouette", None),
    *(DepthSetting(f"expected-1s-{round(100 * f)}%", "expected", f) for f in (0.02, 0.05, 0.10)),
    *(DepthSetting(f"median-1s-{round(100 * f)}%", "median", f) for f in (0.02, 0.05)),
    *(DepthSetting(f"median-2s-{round(100 * f)}%", "median", f, True) for f in (0.02, 0.05, 0.10)),
    *(DepthSetting(f"ray-1s-{round(100 * f)}%", "ray", f) for f in (0.02, 0.05)),
    *(DepthSetting(f"ray-2s-{round(100 * f)}%", "ray", f, True) for f in (0.02, 0.05, 0.10)),
)


@dataclass(frozen=True)
class LevelScore:
    object: str
    level: float
    faces: int
    scores: dict[str, float]  # setting name → mean over the ten views
    chamfer_fraction: float
    ours_to_truth_fraction: float
    truth_to_ours_fraction: float


def load_gaussians(path: Path) -> Gaussians:
    from safetensors.torch import load_file

    if not path.is_file():
        raise BadInputError(f"{path} missing: run eval-recon --phase fit (or all) on this folder first")
    return Gaussians(**load_file(str(path)))


def chamfer_halves(vertices: np.ndarray, faces: np.ndarray, truth_points: np.ndarray) -> tuple[float, float, float]:
    """(symmetric, ours → truth, truth → ours) mean nearest distances as fractions of the truth's diagonal."""
    from scipy.spatial import cKDTree

    ours = metrics.sample_surface(vertices, faces, CHAMFER_POINTS, seed=1)
    diagonal = metrics.bounding_box_diagonal(truth_points)
    ours_to_truth = float(cKDTree(truth_points).query(ours)[0].mean()) / diagonal
    truth_to_ours = float(cKDTree(ours).query(truth_points)[0].mean()) / diagonal
    return 0.5 * (ours_to_truth + truth_to_ours), ours_to_truth, truth_to_ours


def score_object(name: str, object_dir: Path, resolution: int) -> list[LevelScore]:
    gaussians = load_gaussians(object_dir / GAUSSIANS_NAME)
    truth_vertices, truth_faces = load_surface(object_dir / SURFACE_NAME)
    truth_points = metrics.sample_surface(truth_vertices, truth_faces, CHAMFER_POINTS, seed=0)
    centre, bound = gaussian_box(gaussians)
    grid = density_grid(gaussians, resolution, bound, centre=centre).cpu().numpy()
    cameras = silhouette_cameras(VIEW_SIZE)
    with torch.no_grad():
        renders = [render_depths(gaussians, camera) for camera in cameras]
    diagonal = central_diagonal(gaussians)
    results = []
    for level in CANDIDATE_LEVELS:
        try:
            vertices, faces = marching_cubes(grid, level, bound, centre)
        except NoSurfaceError:
            continue
        vertices_t, faces_t = torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces)
        per_view: dict[str, list[float]] = {s.name: [] for s in SETTINGS}
        for camera, render in zip(cameras, renders, strict=True):
            raster = rasterize_mesh(vertices_t, faces_t, camera)
            for setting in SETTINGS:
                reference = {"expected": render.depth, "median": render.median_depth,
                             "ray": render.median_ray_depth}.get(setting.depth)
                per_view[setting.name].append(depth_agreeing_iou(
                    raster.mask, raster.depth, render.alpha[..., 0] > ALPHA_SILHOUETTE,
                    None if reference is None else reference[..., 0], setting.tolerance_fraction * diagonal,
                    setting.two_sided))
        chamfer, ours_to_truth, truth_to_ours = chamfer_halves(vertices, faces, truth_points)
        results.append(LevelScore(name, level, int(len(faces)), {k: float(np.mean(v)) for k, v in per_view.items()},
                                  chamfer, ours_to_truth, truth_to_ours))
    return results


def picks(levels: list[LevelScore]) -> dict[str, LevelScore]:
    """Setting name → the level it picks."""
    by_level = {s.level: s for s in levels}
    return {setting.name: by_level[best_level({s.level: s.scores[setting.name] for s in levels})]
            for setting in SETTINGS}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="an eval-recon output folder with a finished fit")
    parser.add_argument("--json", required=True, type=Path, help="where to write the per-level scores")
    parser.add_argument("--object", action="append", default=None, help="only these objects (repeatable)")
    parser.add_argument("--resolution", type=int, default=128, help="density grid samples per axis")
    args = parser.parse_args(argv)
    try:
        objects = [o.name for o in read_manifest(args.out).objects if args.object is None or o.name in args.object]
        if not objects:
            raise BadInputError(f"none of {args.object} is in {args.out}")
        results: list[LevelScore] = []
        for name in objects:
            started = time.perf_counter()
            levels = score_object(name, args.out / name, args.resolution)
            results += levels
            for level in levels:
                print(f"{name:8s} {level.level:5.2f} {level.faces:7d} faces  Chamfer {100 * level.chamfer_fraction:.2f}% "
                      f"({100 * level.ours_to_truth_fraction:.2f} / {100 * level.truth_to_ours_fraction:.2f})  "
                      + "  ".join(f"{k} {v:.3f}" for k, v in level.scores.items()), flush=True)
            for setting, pick in picks(levels).items():
                print(f"{name:8s} {setting:16s} picks {pick.level:g}: Chamfer {100 * pick.chamfer_fraction:.2f}%  "
                      f"IoU {pick.scores['silhouette']:.3f}", flush=True)
            print(f"{name:8s} {time.perf_counter() - started:.0f} s", flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    except BadInputError as exc:
        print(f"recon_iso_criteria: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
