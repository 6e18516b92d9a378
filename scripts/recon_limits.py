"""What limits an eval-recon result: re-mesh and re-bake the fitted Gaussians of a finished run, one change at a time.

    python scripts/recon_limits.py --out DIR [--object NAME ...] [--variant NAME ...] [--device cpu|cuda]

DIR is an ``eval-recon`` output folder whose fit is done (``gaussians.safetensors`` per object). For each object
and each variant this rebuilds the GLB from the SAME Gaussians with one setting changed, has Blender render it at
the held-out views (as ``--phase score`` does) and scores it. Nothing is fitted again, so the differences are the
meshing/baking settings alone. Results: ``DIR/limits.json`` and a table on stdout; the GLBs and renders stay in
``DIR/<object>/limits/<variant>/``. Needs bpy (the renders) and torch (the meshing; a GPU is optional).

Variants (the first reproduces the run's own GLB; the last two swap in the TRUE surface to split the loss into
geometry and appearance):

- ``as-run``: the run's settings.
- ``grid-x2``: twice the density-grid resolution.
- ``iso-auto``, ``iso-0.1``, ``iso-0.3``, ``iso-1.0``: another marching-cubes iso-level (``auto`` = backend/mesh/iso_level.py).
- ``iso-auto-depth``: ``auto`` with the ``silhouette+depth`` criterion (``MeshConfig.iso_criterion``).
- ``iso-auto-median-depth``: ``auto`` with the ``silhouette+median-depth`` criterion.
- ``no-smoothing``: Taubin smoothing off.      ``no-decimation``: keep every marching-cubes face.
- ``bake-x4``: bake renders 4× larger and a 2× texture.
- ``visible-only``: the run's mesh without the faces no bake view sees (rasterized at 4× the render size;
  ``MeshConfig.cull_unseen_faces``): a density that is high only near the surface meshes as a thick shell, whose
  inner wall no render shows but Chamfer counts. (On a run made with that option already on, it changes nothing.)
- ``gt-views``: the run's mesh baked from the ground-truth training views instead of the Gaussians: what our mesh
  (its shape, its UVs) loses even with true colours, against ``true-surface-gt-views``.
- ``true-surface``: the ground-truth surface, unwrapped and baked from the Gaussians (geometry error removed).
- ``true-surface-gt-views``: the ground-truth surface baked from the ground-truth training views: what UVs, seams,
  texture resolution and the few views of the bake alone lose.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.errors import BadInputError  # noqa: E402
from backend.eval_recon import metrics  # noqa: E402
from backend.eval_recon.blender_job import load_surface, render_views  # noqa: E402
from backend.eval_recon.config import EvalReconConfig  # noqa: E402
from backend.eval_recon.evaluate import score_views  # noqa: E402
from backend.eval_recon.layout import (  # noqa: E402
    GAUSSIANS_NAME,
    SURFACE_NAME,
    GroundTruthRecord,
    load_ground_truth,
    read_manifest,
)
from backend.eval_recon.reconstruct import mesh_config, render_straight  # noqa: E402
from backend.export.glb import export_glb  # noqa: E402
from backend.gaussians.gaussians import Gaussians  # noqa: E402
from backend.job_control import JobControl  # noqa: E402
from backend.mesh.bake import bake_cameras, bake_texture  # noqa: E402
from backend.mesh.extract import extract_mesh  # noqa: E402
from backend.mesh.mesh import Mesh  # noqa: E402
from backend.mesh.mesh_config import DEPTH_CRITERION, MEDIAN_DEPTH_CRITERION  # noqa: E402
from backend.mesh.texture_config import BAKE_OWNERSHIPS  # noqa: E402
from backend.mesh.uv_unwrap import UnwrapConfig, unwrap_uvs  # noqa: E402
from backend.mesh.visibility import drop_unseen_faces  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """One change against the run's settings."""

    name: str
    mesh: dict  # MeshConfig fields to replace
    texture_scale: int = 1
    bake_scale: int = 1
    true_surface: bool = False
    colours_from_ground_truth: bool = False  # bake from the ground-truth training renders instead of the Gaussians
    visible_only: bool = False  # drop the faces no bake view sees
    unwrap: dict = field(default_factory=dict)  # UnwrapConfig fields to replace (the UV seams' share)


VARIANTS = {v.name: v for v in (
    Variant("as-run", {}),
    Variant("grid-x2", {"resolution": None}),  # None: twice the run's, filled in per run
    Variant("iso-auto", {"threshold": "auto"}),
    Variant("iso-auto-depth", {"threshold": "auto", "iso_criterion": DEPTH_CRITERION}),
    Variant("iso-auto-median-depth", {"threshold": "auto", "iso_criterion": MEDIAN_DEPTH_CRITERION}),
    Variant("iso-0.1", {"threshold": 0.1}),
    Variant("iso-0.3", {"threshold": 0.3}),
    Variant("iso-1.0", {"threshold": 1.0}),
    Variant("no-smoothing", {"smoothing_iterations": 0}),
    Variant("no-decimation", {"target_faces": 0}),
    Variant("bake-x4", {}, texture_scale=2, bake_scale=4),
    Variant("bake-x2", {}, texture_scale=2, bake_scale=2),  # a 2048² texture baked from 1024² renders
    # UV seams: xatlas charting the whole mesh at once instead of grid parts of ~1000 faces (fewer cuts), and four
    # times the free texels around each chart (less bleeding across a seam when the texture is filtered)
    Variant("uv-whole-mesh", {}, unwrap={"faces_per_part": 0}),
    Variant("uv-padding-8", {}, unwrap={"padding": 8}),
    Variant("visible-only", {}, visible_only=True),
    Variant("gt-views", {}, colours_from_ground_truth=True),
    Variant("true-surface", {}, true_surface=True),
    Variant("true-surface-gt-views", {}, true_surface=True, colours_from_ground_truth=True),
)}


@dataclass(frozen=True)
class VariantScore:
    object: str
    variant: str
    psnr: float
    iou: float
    chamfer_fraction: float
    faces: int
    seconds: float


def load_gaussians(path: Path, device: torch.device) -> Gaussians:
    from safetensors.torch import load_file

    if not path.is_file():
        raise BadInputError(f"{path} missing: run eval-recon --phase fit (or all) on this folder first")
    tensors = load_file(str(path))
    return Gaussians(**{name: tensor.to(device) for name, tensor in tensors.items()})


# Marching cubes of one object with one set of mesh settings, kept for the other variants of this run that mesh
# alike (as-run, gt-views, visible-only, bake-x4 all start from the run's mesh): at full size meshing is most of
# a variant's time.
_MESHES: dict[tuple, Mesh] = {}


def build_mesh(variant: Variant, config: EvalReconConfig, gaussians: Gaussians | None, object_dir: Path,
               truth: GroundTruthRecord) -> Mesh:
    texture_size = config.texture_size * variant.texture_scale
    if variant.true_surface:
        vertices, faces = load_surface(object_dir / SURFACE_NAME)
        mesh = Mesh(vertices.astype(np.float32), faces.astype(np.int64))
    else:
        changes = dict(variant.mesh)
        if changes.get("resolution", 0) is None:
            changes["resolution"] = 2 * config.grid_resolution
        settings = replace(mesh_config(config), **changes)
        key = (str(object_dir), repr(settings))
        if key not in _MESHES:
            # the iso-level in use (an "auto" one is chosen inside) goes to stdout beside the scores
            level_report = JobControl(on_progress=lambda p: print(
                f"{object_dir.name:8s} {variant.name:22s} {p.message}", flush=True)
                if p.message.startswith("marching cubes at") else None)
            _MESHES[key] = extract_mesh(gaussians, settings, level_report)
        mesh = _MESHES[key]
    if variant.visible_only:
        mesh = drop_unseen_faces(mesh, bake_cameras(4 * config.image_size))
    mesh = unwrap_uvs(mesh, UnwrapConfig(resolution=texture_size, **variant.unwrap))
    if variant.colours_from_ground_truth:
        views = load_ground_truth(object_dir, truth.train)
        by_camera = {id(c.camera): (torch.from_numpy(rgb), torch.from_numpy(alpha))
                     for c, (rgb, alpha) in zip(truth.train, views, strict=True)}
        return bake_texture(mesh, lambda camera: by_camera[id(camera)], [c.camera for c in truth.train], texture_size,
                            ownership=config.bake_ownership)
    return bake_texture(mesh, lambda camera: render_straight(gaussians, camera),
                        bake_cameras(config.bake_size * variant.bake_scale), texture_size,
                        ownership=config.bake_ownership)


def score_variant(variant: Variant, config: EvalReconConfig, truth: GroundTruthRecord, object_dir: Path,
                  device: torch.device, blender: str | None, suffix: str = "") -> VariantScore:
    """``suffix`` ("@best", say) names results baked otherwise than the run (``--bake-ownership``)."""
    started = time.perf_counter()
    folder = object_dir / "limits" / (variant.name + suffix)
    folder.mkdir(parents=True, exist_ok=True)
    # the ground-truth bake needs no fit: it bounds what the bake can do on this size's views before any fit exists
    gaussians = (None if variant.colours_from_ground_truth and variant.true_surface
                 else load_gaussians(object_dir / GAUSSIANS_NAME, device))
    mesh = build_mesh(variant, config, gaussians, object_dir, truth)
    export_glb(mesh, folder / "model.glb")
    ours = render_views({"path": str(folder / "model.glb"), "normalise": False}, truth.held_out, folder / "ours",
                        samples=config.cycles_samples, blender=blender)
    scored = score_views(truth.held_out, load_ground_truth(object_dir, truth.held_out), ours)
    gt_vertices, gt_faces = load_surface(object_dir / SURFACE_NAME)
    gt_points = metrics.sample_surface(gt_vertices, gt_faces, config.chamfer_points, seed=0)
    our_points = metrics.sample_surface(mesh.vertices, mesh.faces, config.chamfer_points, seed=1)
    chamfer = metrics.chamfer_distance(gt_points, our_points) / metrics.bounding_box_diagonal(gt_points)
    return VariantScore(truth.name, variant.name + suffix, float(np.mean([v.psnr for v in scored])),
                        float(np.mean([v.iou for v in scored])), float(chamfer), int(mesh.faces.shape[0]),
                        time.perf_counter() - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="an eval-recon output folder with a finished fit")
    parser.add_argument("--object", action="append", default=None, help="only these objects (repeatable)")
    parser.add_argument("--variant", action="append", default=None, choices=list(VARIANTS),
                        help="only these variants (repeatable; default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bake-ownership", choices=BAKE_OWNERSHIPS, default=None,
                        help="bake every variant with this ownership (backend/mesh/bake.py) instead of the run's; "
                             "results are named VARIANT@OWNERSHIP")
    parser.add_argument("--blender", default=None, help="a blender binary to render with (default: the bpy module)")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.out)
        objects = [o for o in manifest.objects if args.object is None or o.name in args.object]
        if not objects:
            raise BadInputError(f"none of {args.object} is in {args.out}")
        device = torch.device(args.device)
        config, suffix = manifest.config, ""
        if args.bake_ownership not in (None, config.bake_ownership):
            config, suffix = replace(config, bake_ownership=args.bake_ownership), f"@{args.bake_ownership}"
        results = []
        for truth in objects:
            for name in args.variant or list(VARIANTS):
                score = score_variant(VARIANTS[name], config, truth, args.out / truth.name, device,
                                      args.blender, suffix)
                results.append(score)
                print(f"{score.object:8s} {score.variant:22s} {score.psnr:6.2f} dB  IoU {score.iou:.3f}  "
                      f"Chamfer {100 * score.chamfer_fraction:.2f}%  {score.faces:6d} faces  {score.seconds:.0f} s",
                      flush=True)
    except BadInputError as exc:
        print(f"recon_limits: error: {exc}", file=sys.stderr)
        return 2
    previous = json.loads((args.out / "limits.json").read_text()) if (args.out / "limits.json").is_file() else []
    kept = [r for r in previous if (r["object"], r["variant"]) not in {(s.object, s.variant) for s in results}]
    (args.out / "limits.json").write_text(json.dumps(kept + [asdict(s) for s in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
