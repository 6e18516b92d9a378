"""What dropping the faces no bake view sees (``MeshConfig.cull_unseen_faces``) does to a finished eval-recon fit.

    python scripts/recon_unseen_faces.py --out DIR [--object NAME ...] [--view-size N]

No Blender and no re-meshing: the fit's own mesh (``model_surface.npz``, which is ``extract_mesh``'s output, UVs
aside) is culled as ``extract_mesh`` culls after decimation, and both versions are measured against the ground
truth: Chamfer (as ``--phase score`` computes it: the size's point count, seeds 0 and 1), its two one-sided halves,
area against the true surface's, and the silhouette IoU of our own rasterization at the held-out views (a hole the
cull opened in a visible wall would lower it). Prints a table; writes ``DIR/unseen_faces.json``.
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

from backend.errors import BadInputError  # noqa: E402
from backend.eval_recon import metrics  # noqa: E402
from backend.eval_recon.blender_job import load_surface  # noqa: E402
from backend.eval_recon.layout import MODEL_SURFACE_NAME, SURFACE_NAME, load_ground_truth, read_manifest  # noqa: E402
from backend.mesh.bake import bake_cameras  # noqa: E402
from backend.mesh.mesh import Mesh  # noqa: E402
from backend.mesh.mesh_config import MeshConfig  # noqa: E402
from backend.mesh.rasterize import rasterize_mesh  # noqa: E402
from backend.mesh.visibility import drop_unseen_faces  # noqa: E402


@dataclass(frozen=True)
class SurfaceScore:
    object: str
    culled: bool
    faces: int
    area_ratio: float  # our area / the true surface's
    chamfer_fraction: float  # symmetric, of the ground truth's bounding-box diagonal
    ours_to_truth_fraction: float
    truth_to_ours_fraction: float
    silhouette_iou: float  # our rasterizer at the held-out views, against the ground truth's alpha > 0.5


def _area(vertices: np.ndarray, faces: np.ndarray) -> float:
    corners = np.asarray(vertices, np.float64)[faces]
    return float(0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]),
                                      axis=1).sum())


def score_surface(name: str, culled: bool, mesh: Mesh, gt_vertices, gt_faces, gt_points, held_out, truth_alphas
                  ) -> SurfaceScore:
    from scipy.spatial import cKDTree

    ours = metrics.sample_surface(mesh.vertices, mesh.faces, len(gt_points), seed=1)
    diagonal = metrics.bounding_box_diagonal(gt_points)
    ours_to_truth = float(cKDTree(gt_points).query(ours)[0].mean()) / diagonal
    truth_to_ours = float(cKDTree(ours).query(gt_points)[0].mean()) / diagonal
    vertices, faces = torch.from_numpy(mesh.vertices.astype(np.float32)), torch.from_numpy(mesh.faces)
    ious = [metrics.silhouette_iou((rasterize_mesh(vertices, faces, c.camera).tri_id >= 0).float().numpy(), alpha)
            for c, alpha in zip(held_out, truth_alphas, strict=True)]
    return SurfaceScore(name, culled, mesh.face_count, _area(mesh.vertices, mesh.faces) / _area(gt_vertices, gt_faces),
                        0.5 * (ours_to_truth + truth_to_ours), ours_to_truth, truth_to_ours, float(np.mean(ious)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="an eval-recon output folder with a finished fit")
    parser.add_argument("--object", action="append", default=None, help="only these objects (repeatable)")
    parser.add_argument("--view-size", type=int, default=MeshConfig().cull_view_size,
                        help="pixels of the bake views that decide what is seen (MeshConfig.cull_view_size)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    try:
        manifest = read_manifest(args.out)
        objects = [o for o in manifest.objects if args.object is None or o.name in args.object]
        if not objects:
            raise BadInputError(f"none of {args.object} is in {args.out}")
        for truth in objects:
            started = time.perf_counter()
            folder = args.out / truth.name
            if not (folder / MODEL_SURFACE_NAME).is_file():
                raise BadInputError(f"{folder / MODEL_SURFACE_NAME} missing: run eval-recon --phase fit first")
            with np.load(folder / MODEL_SURFACE_NAME) as surface:
                run_mesh = Mesh(surface["vertices"].astype(np.float32), surface["faces"].astype(np.int64))
            gt_vertices, gt_faces = load_surface(folder / SURFACE_NAME)
            gt_points = metrics.sample_surface(gt_vertices, gt_faces, manifest.config.chamfer_points, seed=0)
            alphas = [alpha for _, alpha in load_ground_truth(folder, truth.held_out)]
            culled_mesh = drop_unseen_faces(run_mesh, bake_cameras(args.view_size))
            for culled, mesh in ((False, run_mesh), (True, culled_mesh)):
                score = score_surface(truth.name, culled, mesh, gt_vertices, gt_faces, gt_points, truth.held_out,
                                      alphas)
                results.append(score)
                print(f"{score.object:8s} {'culled' if culled else 'as run':7s} {score.faces:6d} faces  area "
                      f"{score.area_ratio:.2f}×  Chamfer {100 * score.chamfer_fraction:.2f}% (ours→truth "
                      f"{100 * score.ours_to_truth_fraction:.2f}%, truth→ours {100 * score.truth_to_ours_fraction:.2f}%)"
                      f"  IoU {score.silhouette_iou:.4f}  {time.perf_counter() - started:.0f} s", flush=True)
    except BadInputError as exc:
        print(f"recon_unseen_faces: error: {exc}", file=sys.stderr)
        return 2
    (args.out / "unseen_faces.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
