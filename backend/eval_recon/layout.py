"""The files the three phases of ``eval-recon`` exchange in its output folder (docs/eval_recon.md).

Each phase can run alone, on another machine (the fit on a GPU host without bpy, the renders where Blender
is), so everything a later phase needs is a plain file::

    DIR/manifest.json                      render-gt: size, config, and per object its cameras and files
    DIR/<object>/ground_truth/<view>.png   render-gt: RGBA renders, training (train-NN) and held-out (heldout-NN)
    DIR/<object>/ground_truth_surface.npz  render-gt: the true surface (vertices [V, 3], faces [F, 3])
    DIR/<object>/model.glb                 fit: the reconstruction
    DIR/<object>/model_surface.npz         fit: the GLB's surface in our world (vertices, faces), for Chamfer
    DIR/<object>/gaussian_views.npz        fit: the fitted Gaussians at the held-out views (rgb [V, H, W, 3],
                                           alpha [V, H, W], float32), for gaussian_psnr / gaussian_iou
    DIR/<object>/gaussians.safetensors     fit: the fitted Gaussians themselves (for inspection)
    DIR/<object>/fit.json                  fit: counts and timings, written last (the fit is complete)
    DIR/<object>/ours/<view>.png           score: Blender's renders of model.glb at the held-out views
    DIR/<object>/contact_sheet.png, DIR/contact_sheet.png, DIR/metrics.json   score
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from .blender_job import load_render
from .cameras import NamedCamera
from .config import EvalReconConfig, config_for_ground_truth, config_from_json, fit_settings, ground_truth_settings

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
GROUND_TRUTH_DIR = "ground_truth"
SURFACE_NAME = "ground_truth_surface.npz"
GLB_NAME = "model.glb"
MODEL_SURFACE_NAME = "model_surface.npz"
GAUSSIAN_VIEWS_NAME = "gaussian_views.npz"
GAUSSIANS_NAME = "gaussians.safetensors"
FIT_NAME = "fit.json"
OURS_DIR = "ours"


@dataclass(frozen=True)
class GroundTruthRecord:
    """What ``--phase render-gt`` made for one object (its entry in the manifest)."""

    name: str
    source: dict  # the object as scripts/recon_blender.py was given it
    train: list[NamedCamera]
    held_out: list[NamedCamera]
    render_seconds: float

    def to_json(self) -> dict:
        return {"name": self.name, "source": self.source, "ground_truth_dir": GROUND_TRUTH_DIR,
                "surface": SURFACE_NAME, "train": [c.to_json() for c in self.train],
                "held_out": [c.to_json() for c in self.held_out], "render_seconds": self.render_seconds}

    @classmethod
    def from_json(cls, data: dict) -> GroundTruthRecord:
        try:
            return cls(str(data["name"]), dict(data["source"]), [NamedCamera.from_json(c) for c in data["train"]],
                       [NamedCamera.from_json(c) for c in data["held_out"]], float(data["render_seconds"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"bad object in the eval-recon manifest: {exc!r}") from exc


@dataclass(frozen=True)
class Manifest:
    config: EvalReconConfig
    objects: list[GroundTruthRecord]
    wall_time_s: float  # of the render-gt phase

    def to_json(self) -> dict:
        return {"format": MANIFEST_FORMAT, "size": self.config.name, "config": asdict(self.config),
                "wall_time_s": self.wall_time_s, "objects": [o.to_json() for o in self.objects]}


@dataclass(frozen=True)
class FitRecord:
    """What ``--phase fit`` made for one object (``fit.json``)."""

    gaussian_count: int
    mesh_faces: int
    has_gaussian_views: bool  # gaussian_views.npz was written (a stand-in reconstructor may fit no Gaussians)
    wall_time_s: float
    timings: dict[str, float] = field(default_factory=dict)
    config: dict | None = None  # the fit settings it was made with (config.fit_settings); None in older fit.json


def check_fit_settings(record: FitRecord, config: EvalReconConfig, object_dir: Path) -> None:
    """BadInputError when ``record`` was fitted with other fit settings than ``config`` has (scores would be
    reported under settings the fit never used); a fit.json from before fit settings were recorded passes, and a
    setting added since the fit counts as made at its default (a new setting's default keeps the old behaviour)."""
    if record.config is None:
        return
    now = json.loads(json.dumps(fit_settings(config)))
    then = {**json.loads(json.dumps(fit_settings(EvalReconConfig()))), **record.config}
    changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    if changed:
        raise BadInputError(f"{object_dir} was fitted with other settings than size {config.name!r} has now "
                            f"({', '.join(changed)}): run --phase fit again")


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2))


def _read_json(path: Path, missing: str) -> dict:
    if not path.is_file():
        raise BadInputError(missing)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read {path}: {exc}") from exc


def read_manifest(out_dir: Path, config: EvalReconConfig | None = None) -> Manifest:
    """The manifest of ``out_dir``; BadInputError when there is none or its ground truth was made for another ``config``.

    The manifest's config is the one the later phases use: ``config`` when given, else the size of the ground truth
    as :mod:`.config` defines it now (:func:`.config.config_for_ground_truth`): the manifest freezes only the
    ground-truth settings, so a fit with new fit settings needs no new ground truth.
    """
    data = _read_json(out_dir / MANIFEST_NAME,
                      f"no ground truth in {out_dir} ({MANIFEST_NAME} missing): run --phase render-gt first")
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise BadInputError(f"{out_dir / MANIFEST_NAME} is not an eval-recon manifest of format {MANIFEST_FORMAT}")
    rendered = config_from_json(data.get("config", {}))
    if config is not None and config.name != rendered.name:
        raise BadInputError(f"{out_dir} was rendered for size {rendered.name!r}, not {config.name!r}: pass "
                            f"--size {rendered.name} (or leave --size out), or run --phase render-gt again")
    if config is not None and ground_truth_settings(config) != ground_truth_settings(rendered):
        raise BadInputError(f"{out_dir} was rendered for size {rendered.name!r} with other ground-truth settings "
                            f"than it has now: run --phase render-gt again")
    try:
        objects = [GroundTruthRecord.from_json(o) for o in data["objects"]]
        wall_time = float(data["wall_time_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"bad eval-recon manifest {out_dir / MANIFEST_NAME}: {exc!r}") from exc
    return Manifest(config if config is not None else config_for_ground_truth(rendered), objects, wall_time)


def load_ground_truth(object_dir: Path, cameras: list[NamedCamera]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ground-truth renders of ``cameras`` (rgb [H, W, 3], alpha [H, W] float32), in camera order."""
    folder = object_dir / GROUND_TRUTH_DIR
    missing = [c.name for c in cameras if not (folder / f"{c.name}.png").is_file()]
    if missing or not (object_dir / SURFACE_NAME).is_file():
        what = f"{folder / missing[0]}.png" if missing else object_dir / SURFACE_NAME
        raise BadInputError(f"ground truth incomplete ({what} missing): run --phase render-gt first")
    return [load_render(folder / f"{c.name}.png") for c in cameras]


def read_fit(object_dir: Path) -> FitRecord:
    data = _read_json(object_dir / FIT_NAME,
                      f"no reconstruction in {object_dir} ({FIT_NAME} missing): run --phase fit first")
    try:
        settings = data.get("config")
        record = FitRecord(int(data["gaussian_count"]), int(data["mesh_faces"]), bool(data["has_gaussian_views"]),
                           float(data["wall_time_s"]), {k: float(v) for k, v in data["timings"].items()},
                           dict(settings) if settings is not None else None)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInputError(f"bad {object_dir / FIT_NAME}: {exc!r}") from exc
    needed = [GLB_NAME, MODEL_SURFACE_NAME] + ([GAUSSIAN_VIEWS_NAME] if record.has_gaussian_views else [])
    for name in needed:
        if not (object_dir / name).is_file():
            raise BadInputError(f"reconstruction incomplete ({object_dir / name} missing): run --phase fit again")
    return record
