"""The fidelity loop of ``eval-recon`` (docs/design.md §6), in three phases that exchange files (layout.py).

render-gt: Blender renders each object's training and held-out views and writes the ground-truth surface.
fit: :mod:`.reconstruct` rebuilds each object from its training views alone and exports a GLB (no Blender:
this phase can run on a GPU host without bpy). score: Blender imports that GLB and renders the held-out views
under the same (emission-only) lighting; we compare the two sets of held-out images (PSNR on the object,
silhouette IoU) and the two surfaces (Chamfer distance). ``all`` runs the three in order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic_output import AtomicOutputDir, output_path
from ..errors import BadInputError
from ..job_control import JobControl
from . import metrics
from .blender_job import load_surface, render_views
from .cameras import NamedCamera, held_out_cameras, training_cameras
from .config import BUILTIN_OBJECTS, EvalReconConfig, fit_settings
from .contact_sheet import make_contact_sheet, stack_contact_sheets
from .layout import (
    FIT_NAME,
    GAUSSIAN_VIEWS_NAME,
    GAUSSIANS_NAME,
    GLB_NAME,
    GROUND_TRUTH_DIR,
    MANIFEST_NAME,
    MODEL_SURFACE_NAME,
    OURS_DIR,
    SURFACE_NAME,
    FitRecord,
    GroundTruthRecord,
    Manifest,
    check_fit_settings,
    load_ground_truth,
    read_fit,
    read_manifest,
    write_json,
)
from .reconstruction import Reconstructor, TrainingView

PHASES = ("all", "render-gt", "fit", "score")  # render-gt and score run Blender; fit never does (GPU host, no bpy)

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
class PhaseResult:
    """What ``--phase render-gt`` or ``--phase fit`` made (the metrics come from ``--phase score``)."""

    phase: str
    out_dir: Path
    objects: list[str]
    wall_time_s: float
    fits: dict[str, FitRecord] = field(default_factory=dict)  # phase fit: per object


@dataclass(frozen=True)
class EvalReconResult:
    size: str
    objects: list[ObjectEvalResult]
    passed: bool
    wall_time_s: float
    metrics_path: Path
    contact_sheet_path: Path


def builtin_objects(names: Sequence[str] | None = None) -> list[ObjectSpec]:
    """The named built-in objects (default: all, in BUILTIN_OBJECTS' order)."""
    unknown = [n for n in names or () if n not in BUILTIN_OBJECTS]
    if unknown:
        raise BadInputError(f"unknown built-in object {unknown[0]!r} (choose from {', '.join(BUILTIN_OBJECTS)})")
    return [ObjectSpec(name, builtin=name) for name in (BUILTIN_OBJECTS if names is None else names)]


def mesh_file_object(path: str | Path) -> ObjectSpec:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"--object {path}: no such file")
    return ObjectSpec(path.stem, path=path.resolve())


def chosen_objects(values: Sequence[str]) -> list[ObjectSpec]:
    """``--object`` values: a built-in object's name (built-in names win: Blender imports files by extension, so
    a file called ``mug`` could not be read anyway) or a mesh file. Each object needs its own folder name."""
    specs = [builtin_objects([v])[0] if v in BUILTIN_OBJECTS else mesh_file_object(v) for v in values]
    names = [s.name for s in specs]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise BadInputError(f"--object: two objects would share the folder name {repeated!r}")
    return specs


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


def render_ground_truth(spec: ObjectSpec, config: EvalReconConfig, object_dir: Path, *, blender: str | None = None,
                        control: JobControl | None = None) -> GroundTruthRecord:
    """Phase render-gt for one object: Blender renders the training + held-out views and writes the true surface
    under ``object_dir`` (one Blender run). Needs bpy (or ``blender``)."""
    train_cams = training_cameras(config.train_views, config.image_size)
    held_cams = held_out_cameras(config.held_out_views, config.image_size, config.train_views)
    start = time.perf_counter()
    render_views(spec.to_job(), [*train_cams, *held_cams], object_dir / GROUND_TRUTH_DIR,
                 samples=config.cycles_samples, surface_out=object_dir / SURFACE_NAME, blender=blender,
                 control=control, stage=f"ground truth of {spec.name}")
    return GroundTruthRecord(spec.name, spec.to_job(), train_cams, held_cams, time.perf_counter() - start)


def fit_object(truth: GroundTruthRecord, config: EvalReconConfig, object_dir: Path, *, device, seed: int = 0,
               control: JobControl | None = None, rebuild: Reconstructor | None = None) -> FitRecord:
    """Phase fit for one object: rebuild it from its training renders alone; writes model.glb and what scoring
    needs from the fit (layout.py) into ``object_dir``, all at once. Never runs Blender.

    ``rebuild`` is :func:`.reconstruct.reconstruct` (generate's machinery) unless a test passes another.
    """
    rebuild = rebuild or _default_reconstructor()
    started = time.perf_counter()
    train_images = load_ground_truth(object_dir, truth.train)
    load_ground_truth(object_dir, truth.held_out)  # fail now, not after the fit, if the ground truth is partial
    views = [TrainingView(c, rgb, alpha) for c, (rgb, alpha) in zip(truth.train, train_images, strict=True)]
    with AtomicOutputDir(object_dir) as staging:
        rebuilt = rebuild(views, config, staging / GLB_NAME, device=device, seed=seed, control=control,
                          metadata={"eval_recon": {"object": truth.name, "size": config.name}})
        np.savez(staging / MODEL_SURFACE_NAME, vertices=np.asarray(rebuilt.vertices), faces=np.asarray(rebuilt.faces))
        if rebuilt.gaussians is not None:  # rendered here, where the GPU is, at full float precision
            from .reconstruct import render_gaussian_views, save_gaussians

            renders = render_gaussian_views(rebuilt.gaussians, [c.camera for c in truth.held_out])
            np.savez_compressed(staging / GAUSSIAN_VIEWS_NAME, rgb=np.stack([rgb for rgb, _ in renders]),
                                alpha=np.stack([alpha for _, alpha in renders]))
            save_gaussians(rebuilt.gaussians, staging / GAUSSIANS_NAME)
        record = FitRecord(rebuilt.gaussian_count, int(rebuilt.faces.shape[0]), rebuilt.gaussians is not None,
                           time.perf_counter() - started, dict(rebuilt.timings),
                           json.loads(json.dumps(fit_settings(config))))
        write_json(staging / FIT_NAME, asdict(record))
    return record


def score_object(truth: GroundTruthRecord, config: EvalReconConfig, object_dir: Path, *, seed: int = 0,
                 blender: str | None = None, control: JobControl | None = None) -> ObjectEvalResult:
    """Phase score for one object: Blender re-renders model.glb at the held-out views under the same lighting;
    compare with the ground truth; writes ``ours/`` and contact_sheet.png into ``object_dir``. Needs bpy."""
    fit = read_fit(object_dir)
    held_cams = truth.held_out
    held_truth = load_ground_truth(object_dir, held_cams)
    timings = {"render_ground_truth": truth.render_seconds, **fit.timings}
    with AtomicOutputDir(object_dir) as staging:
        # 1. Blender re-renders our GLB at the held-out views
        start = time.perf_counter()
        held_ours = render_views({"path": str(object_dir / GLB_NAME), "normalise": False}, held_cams,
                                 staging / OURS_DIR, samples=config.cycles_samples, blender=blender, control=control,
                                 stage=f"re-render of {truth.name}")
        timings["render_ours"] = time.perf_counter() - start

        # 2. Compare (and, to see where any loss comes from, the Gaussians themselves)
        scored = score_views(held_cams, held_truth, held_ours)
        gaussian_psnr = gaussian_iou = None
        if fit.has_gaussian_views:
            with np.load(object_dir / GAUSSIAN_VIEWS_NAME) as data:
                gaussian_views = list(zip(data["rgb"], data["alpha"], strict=True))
            gaussian_scores = score_views(held_cams, held_truth, gaussian_views)
            gaussian_psnr = float(np.mean([v.psnr for v in gaussian_scores]))
            gaussian_iou = float(np.mean([v.iou for v in gaussian_scores]))
        gt_vertices, gt_faces = load_surface(object_dir / SURFACE_NAME)
        our_vertices, our_faces = load_surface(object_dir / MODEL_SURFACE_NAME)
        gt_points = metrics.sample_surface(gt_vertices, gt_faces, config.chamfer_points, seed=seed)
        our_points = metrics.sample_surface(our_vertices, our_faces, config.chamfer_points, seed=seed + 1)
        chamfer = metrics.chamfer_distance(gt_points, our_points)
        chamfer_fraction = chamfer / metrics.bounding_box_diagonal(gt_points)
        mean_psnr = float(np.mean([v.psnr for v in scored]))
        mean_iou = float(np.mean([v.iou for v in scored]))
        limits = config.thresholds
        passed = (mean_psnr >= limits.min_psnr_db and mean_iou >= limits.min_iou
                  and (limits.max_chamfer_fraction is None or chamfer_fraction <= limits.max_chamfer_fraction))

        captions = [f"{v.psnr:.1f}dB IoU {v.iou:.2f}" for v in scored]
        sheet = make_contact_sheet(held_truth, held_ours, captions,
                                   title=f"{truth.name} ({config.name}): {mean_psnr:.2f} dB, IoU {mean_iou:.3f}, "
                                         f"Chamfer {100 * chamfer_fraction:.2f}% of diagonal")
        Image.fromarray(sheet).save(staging / "contact_sheet.png")
    return ObjectEvalResult(truth.name, scored, mean_psnr, float(np.mean([v.psnr_full_frame for v in scored])),
                            mean_iou, gaussian_psnr, gaussian_iou, chamfer, chamfer_fraction, fit.gaussian_count,
                            fit.mesh_faces, passed, timings)


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


def _render_phase(config: EvalReconConfig, objects: Sequence[ObjectSpec], out_dir: Path, *,
                  blender: str | None, control: JobControl | None) -> Manifest:
    if not objects:
        raise BadInputError("eval-recon needs at least one object")
    started = time.perf_counter()
    with AtomicOutputDir(out_dir) as staging:  # an object's folder is replaced whole: no stale fit survives
        records = []
        for spec in objects:
            (staging / spec.name).mkdir()
            records.append(render_ground_truth(spec, config, staging / spec.name, blender=blender, control=control))
        manifest = Manifest(config, records, time.perf_counter() - started)
        write_json(staging / MANIFEST_NAME, manifest.to_json())
    return manifest


def _check_objects(manifest: Manifest, objects: Sequence[ObjectSpec] | None, out_dir: Path) -> None:
    rendered = [o.name for o in manifest.objects]
    if objects is not None and [o.name for o in objects] != rendered:
        raise BadInputError(f"{out_dir} holds the ground truth of {', '.join(rendered)}, not of "
                            f"{', '.join(o.name for o in objects)}: run --phase render-gt again")


def _fit_phase(manifest: Manifest, out_dir: Path, *, device, seed: int, control: JobControl | None,
               rebuild: Reconstructor | None) -> dict[str, FitRecord]:
    if device is None or isinstance(device, str):  # resolved only now: a missing manifest fails without torch
        from ..device import resolve_device

        device = resolve_device(device or "auto")
    for truth in manifest.objects:  # every object's ground truth is there before the first (long) fit starts
        load_ground_truth(out_dir / truth.name, [*truth.train, *truth.held_out])
    return {truth.name: fit_object(truth, manifest.config, out_dir / truth.name, device=device, seed=seed,
                                   control=control, rebuild=rebuild) for truth in manifest.objects}


def _score_phase(manifest: Manifest, out_dir: Path, *, seed: int, blender: str | None,
                 control: JobControl | None) -> EvalReconResult:
    started = time.perf_counter()
    fits = [read_fit(out_dir / truth.name) for truth in manifest.objects]  # all fitted, before Blender starts
    for truth, fit in zip(manifest.objects, fits, strict=True):
        check_fit_settings(fit, manifest.config, out_dir / truth.name)
    results = [score_object(truth, manifest.config, out_dir / truth.name, seed=seed, blender=blender,
                            control=control) for truth in manifest.objects]
    # wall time of the whole evaluation: the three phases' own times, wherever each ran
    wall_time = manifest.wall_time_s + sum(f.wall_time_s for f in fits) + time.perf_counter() - started
    with AtomicOutputDir(out_dir) as staging:
        sheets = [np.asarray(Image.open(out_dir / r.name / "contact_sheet.png").convert("RGB")) for r in results]
        Image.fromarray(stack_contact_sheets(sheets)).save(staging / "contact_sheet.png")
        write_json(staging / "metrics.json", metrics_document(manifest.config, results, wall_time))
    return EvalReconResult(manifest.config.name, results, all(r.passed for r in results), wall_time,
                           out_dir / "metrics.json", out_dir / "contact_sheet.png")


def run_eval_recon(config: EvalReconConfig | None, objects: Sequence[ObjectSpec] | None, out_dir: str | Path, *,
                   phase: str = "all", device=None, seed: int = 0, blender: str | None = None,
                   control: JobControl | None = None, rebuild: Reconstructor | None = None
                   ) -> EvalReconResult | PhaseResult:
    """Run ``phase`` of the evaluation (``all``: the three in order, in one atomic output folder).

    ``render-gt`` needs ``config`` and ``objects`` and writes the manifest and the ground truth; ``fit`` and
    ``score`` take both from the manifest of ``out_dir`` (``config``/``objects``, when given, must match it).
    ``render-gt`` and ``score`` run Blender; ``fit`` never does. ``all`` and ``score`` give an
    :class:`EvalReconResult` (``out_dir`` gets metrics.json, contact_sheet.png); the others a :class:`PhaseResult`.
    """
    if phase not in PHASES:
        raise BadInputError(f"unknown eval-recon phase {phase!r} (choose from {', '.join(PHASES)})")
    out_dir = output_path(out_dir)
    if phase == "all":
        if config is None or objects is None:
            raise BadInputError("eval-recon --phase all needs a size and objects")
        with AtomicOutputDir(out_dir) as staging:  # a failure in any phase leaves nothing behind
            manifest = _render_phase(config, objects, staging, blender=blender, control=control)
            _fit_phase(manifest, staging, device=device, seed=seed, control=control, rebuild=rebuild)
            result = _score_phase(manifest, staging, seed=seed, blender=blender, control=control)
        return replace(result, metrics_path=out_dir / "metrics.json",
                       contact_sheet_path=out_dir / "contact_sheet.png")
    if phase == "render-gt":
        if config is None or objects is None:
            raise BadInputError("eval-recon --phase render-gt needs a size and objects")
        manifest = _render_phase(config, objects, out_dir, blender=blender, control=control)
        return PhaseResult(phase, out_dir, [o.name for o in manifest.objects], manifest.wall_time_s)
    manifest = read_manifest(out_dir, config)
    _check_objects(manifest, objects, out_dir)
    if phase == "fit":
        started = time.perf_counter()
        fits = _fit_phase(manifest, out_dir, device=device, seed=seed, control=control, rebuild=rebuild)
        return PhaseResult(phase, out_dir, list(fits), time.perf_counter() - started, fits)
    return _score_phase(manifest, out_dir, seed=seed, blender=blender, control=control)
