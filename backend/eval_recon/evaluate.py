"""The fidelity loop of ``eval-recon`` (DESIGN.md §6), one object at a time.

For each object: Blender renders the training and held-out views and writes the ground-truth surface;
:mod:`.reconstruct` rebuilds the object from the training views alone and exports a GLB; Blender imports
that GLB and renders the held-out views under the same (emission-only) lighting; we compare the two sets of
held-out images (PSNR on the object, silhouette IoU) and the two surfaces (Chamfer distance).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic_output import AtomicOutputDir
from ..job_control import JobControl, ensure_control
from . import metrics
from .blender_job import load_surface, render_views
from .cameras import NamedCamera, held_out_cameras, training_cameras
from .config import BUILTIN_OBJECTS, EvalReconConfig
from .contact_sheet import make_contact_sheet
from .reconstruction import Reconstructor, TrainingView

PSNR_DEFINITION = ("PSNR over the pixels inside the union of the two silhouettes (alpha > 0.5 in either), both "
                   "images composited over a fixed mid-grey (0.5) background; psnr_full_frame averages over the "
                   "whole frame instead")
CHAMFER_DEFINITION = ("symmetric mean nearest-neighbour distance between points sampled uniformly by area on the "
                      "ground-truth and reconstructed surfaces, divided by the ground truth's bounding-box diagonal")


@dataclass(frozen=True)
class ObjectSpec:
    """A built-in object of scripts/recon_blender.py or a mesh file Blender can import."""

    name: str
    builtin: str | None = None
    path: Path | None = None

    def to_job(self) -> dict:
        return {"builtin": self.builtin} if self.builtin else {"path": str(self.path), "normalise": True}


@dataclass(frozen=True)
class ViewMetrics:
    name: str
    elevation_deg: float
    azimuth_deg: float
    psnr: float
    psnr_full_frame: float
    iou: float


@dataclass(frozen=True)
class ObjectEvalResult:
    name: str
    views: list[ViewMetrics]
    psnr: float  # mean over held-out views
    psnr_full_frame: float
    iou: float
    gaussian_psnr: float | None  # the fitted Gaussians rendered by our rasterizer at the held-out views (diagnostic:
    gaussian_iou: float | None  # what meshing + baking lose is the gap to psnr / iou)
    chamfer: float  # world units
    chamfer_fraction: float  # of the ground truth's bounding-box diagonal
    gaussian_count: int
    mesh_faces: int
    passed: bool
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalReconResult:
    size: str
    objects: list[ObjectEvalResult]
    passed: bool
    wall_time_s: float
    metrics_path: Path
    contact_sheet_path: Path


def builtin_objects() -> list[ObjectSpec]:
    return [ObjectSpec(name, builtin=name) for name in BUILTIN_OBJECTS]


def mesh_file_object(path: str | Path) -> ObjectSpec:
    from ..errors import BadInputError

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"--object {path}: no such file")
    return ObjectSpec(path.stem, path=path.resolve())


def score_views(cameras: Sequence[NamedCamera], truth: Sequence[tuple[np.ndarray, np.ndarray]],
                ours: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[ViewMetrics]:
    """Per held-out view: PSNR on the object, full-frame PSNR, silhouette IoU."""
    scored = []
    for view, (rgb_t, alpha_t), (rgb_o, alpha_o) in zip(cameras, truth, ours, strict=True):
        object_psnr, full_psnr = metrics.object_psnr(rgb_o, alpha_o, rgb_t, alpha_t)
        scored.append(ViewMetrics(view.name, view.elevation_deg, view.azimuth_deg, object_psnr, full_psnr,
                                  metrics.silhouette_iou(alpha_o, alpha_t)))
    return scored


def _default_reconstructor() -> Reconstructor:
    from .reconstruct import reconstruct  # torch and the fitting stages: imported only when fitting

    return reconstruct


def evaluate_object(spec: ObjectSpec, config: EvalReconConfig, out_dir: Path, *, device, seed: int = 0,
                    blender: str | None = None, control: JobControl | None = None,
                    rebuild: Reconstructor | None = None) -> ObjectEvalResult:
    """Run the whole loop for one object; writes images, the GLB and a contact sheet under ``out_dir``.

    ``rebuild`` is :func:`.reconstruct.reconstruct` (generate's machinery) unless a test passes another.
    """
    rebuild = rebuild or _default_reconstructor()
    control = ensure_control(control)
    timings: dict[str, float] = {}
    train_cams = training_cameras(config.train_views, config.image_size)
    held_cams = held_out_cameras(config.held_out_views, config.image_size, config.train_views)

    # 1. Ground truth: training + held-out renders and the surface, in one Blender run
    start = time.perf_counter()
    surface_path = out_dir / "ground_truth_surface.npz"
    truth_all = render_views(spec.to_job(), [*train_cams, *held_cams], out_dir / "ground_truth",
                             samples=config.cycles_samples, surface_out=surface_path, blender=blender,
                             control=control, stage=f"ground truth of {spec.name}")
    train_images, held_truth = truth_all[:len(train_cams)], truth_all[len(train_cams):]
    timings["render_ground_truth"] = time.perf_counter() - start

    # 2. Rebuild from the training views alone
    glb_path = out_dir / "model.glb"
    views = [TrainingView(c, rgb, alpha) for c, (rgb, alpha) in zip(train_cams, train_images, strict=True)]
    rebuilt = rebuild(views, config, glb_path, device=device, seed=seed, control=control,
                          metadata={"eval_recon": {"object": spec.name, "size": config.name}})
    timings.update(rebuilt.timings)

    # 3. Blender re-renders our GLB at the held-out views, same lighting
    start = time.perf_counter()
    held_ours = render_views({"path": str(glb_path), "normalise": False}, held_cams, out_dir / "ours",
                             samples=config.cycles_samples, blender=blender, control=control,
                             stage=f"re-render of {spec.name}")
    timings["render_ours"] = time.perf_counter() - start

    # 4. Compare (and, to see where any loss comes from, the Gaussians themselves)
    scored = score_views(held_cams, held_truth, held_ours)
    gaussian_psnr = gaussian_iou = None
    if rebuilt.gaussians is not None:
        from .reconstruct import render_gaussian_views

        gaussian_scores = score_views(held_cams, held_truth,
                                      render_gaussian_views(rebuilt.gaussians, [c.camera for c in held_cams]))
        gaussian_psnr = float(np.mean([v.psnr for v in gaussian_scores]))
        gaussian_iou = float(np.mean([v.iou for v in gaussian_scores]))
    gt_vertices, gt_faces = load_surface(surface_path)
    gt_points = metrics.sample_surface(gt_vertices, gt_faces, config.chamfer_points, seed=seed)
    our_points = metrics.sample_surface(rebuilt.vertices, rebuilt.faces, config.chamfer_points,
                                        seed=seed + 1)
    chamfer = metrics.chamfer_distance(gt_points, our_points)
    chamfer_fraction = chamfer / metrics.bounding_box_diagonal(gt_points)
    mean_psnr = float(np.mean([v.psnr for v in scored]))
    mean_iou = float(np.mean([v.iou for v in scored]))
    limits = config.thresholds
    passed = (mean_psnr >= limits.min_psnr_db and mean_iou >= limits.min_iou
              and (limits.max_chamfer_fraction is None or chamfer_fraction <= limits.max_chamfer_fraction))

    captions = [f"{v.psnr:.1f}dB IoU {v.iou:.2f}" for v in scored]
    sheet = make_contact_sheet(held_truth, held_ours, captions,
                               title=f"{spec.name} ({config.name}): {mean_psnr:.2f} dB, IoU {mean_iou:.3f}, "
                                     f"Chamfer {100 * chamfer_fraction:.2f}% of diagonal")
    Image.fromarray(sheet).save(out_dir / "contact_sheet.png")
    return ObjectEvalResult(spec.name, scored, mean_psnr, float(np.mean([v.psnr_full_frame for v in scored])),
                            mean_iou, gaussian_psnr, gaussian_iou, chamfer, chamfer_fraction, rebuilt.gaussian_count,
                            int(rebuilt.faces.shape[0]), passed, timings)


def _stack_sheets(paths: Sequence[Path]) -> np.ndarray:
    sheets = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    width = max(s.shape[1] for s in sheets)
    padded = [np.pad(s, ((0, 8), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    return np.concatenate(padded, axis=0)


def metrics_document(config: EvalReconConfig, results: Sequence[ObjectEvalResult], wall_time_s: float) -> dict:
    return {
        "size": config.name,
        "config": asdict(config),
        "psnr_definition": PSNR_DEFINITION,
        "chamfer_definition": CHAMFER_DEFINITION,
        "lighting": "emission-only materials (base colour), no lights, Standard view transform: view-independent",
        "passed": all(r.passed for r in results),
        "wall_time_s": wall_time_s,
        "objects": {r.name: asdict(r) for r in results},
    }


def run_eval_recon(config: EvalReconConfig, objects: Sequence[ObjectSpec], out_dir: str | Path, *, device,
                   seed: int = 0, blender: str | None = None, control: JobControl | None = None,
                   rebuild: Reconstructor | None = None) -> EvalReconResult:
    """Evaluate every object; ``out_dir`` gets metrics.json, contact_sheet.png and a folder per object."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    results = []
    with AtomicOutputDir(out_dir) as staging:
        for spec in objects:
            object_dir = staging / spec.name
            object_dir.mkdir()
            results.append(evaluate_object(spec, config, object_dir, device=device, seed=seed, blender=blender,
                                           control=control, rebuild=rebuild))
        Image.fromarray(_stack_sheets([staging / r.name / "contact_sheet.png" for r in results])).save(
            staging / "contact_sheet.png")
        wall_time = time.perf_counter() - started
        (staging / "metrics.json").write_text(json.dumps(metrics_document(config, results, wall_time), indent=2))
    return EvalReconResult(config.name, results, all(r.passed for r in results), wall_time,
                           out_dir / "metrics.json", out_dir / "contact_sheet.png")
