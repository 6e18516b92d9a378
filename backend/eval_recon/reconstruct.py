"""Rebuild an object from posed renders with the machinery ``generate`` uses, minus the diffusion prior.

Stage 1 fits Gaussians to every training view at once (photometric + mask loss, ``guidance=None``), then
the same meshing, UV unwrapping, texture baking and GLB export as ``generate`` run unchanged: the stage
functions of backend.generate.stages. Nothing here is a copy of those stages: only the choice of their inputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from ..camera import Camera
from ..export.glb import export_glb
from ..gaussians.gaussians import Gaussians
from ..generate.stages import bake_gaussian_texture, render_straight, unwrap_mesh
from ..job_control import JobControl, ensure_control
from ..mesh.extract import extract_mesh
from ..mesh.mesh_config import MeshConfig
from ..stage1 import ViewTarget, fit_gaussians
from ..stage1_config import Stage1Config
from .config import EvalReconConfig
from .reconstruction import ReconstructionResult, TrainingView, check_views


def stage1_config(config: EvalReconConfig) -> Stage1Config:
    """``generate``'s stage-1 defaults with the evaluation's step count, views per step and, if it sets one, the step
    densification stops at (no SDS: no guidance).

    The background of the fitted views is random black/white per step, so colour and coverage cannot trade
    against each other at the silhouette as they can over one fixed background.
    """
    defaults = Stage1Config()
    densify = defaults.densify
    if config.densify_stop_fraction is not None:
        densify = replace(densify, stop_step=round(config.densify_stop_fraction * config.stage1_steps))
    return replace(defaults, steps=config.stage1_steps, views_per_step=config.views_per_step,
                   num_init=config.stage1_num_init or defaults.num_init, reference_background=None, densify=densify)


def mesh_config(config: EvalReconConfig) -> MeshConfig:
    """``generate``'s meshing defaults with the evaluation's grid resolution, unseen-face culling (and iso-value and
    its criterion, if it sets one)."""
    defaults = MeshConfig()
    threshold = config.mesh_threshold if config.mesh_threshold is not None else defaults.threshold
    return replace(defaults, resolution=config.grid_resolution, threshold=threshold,
                   iso_criterion=config.iso_criterion, cull_unseen_faces=config.cull_unseen_faces)


def render_gaussian_views(gaussians: Gaussians, cameras: Sequence[Camera]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Our own renders of the fitted Gaussians (a diagnostic beside Blender's renders of the final GLB)."""
    return [tuple(t.cpu().numpy() for t in render_straight(gaussians, camera)) for camera in cameras]


def save_gaussians(gaussians: Gaussians, path: Path) -> None:
    """The Gaussians as safetensors (float32 on the CPU, one tensor per field of :class:`Gaussians`)."""
    from safetensors.torch import save_file

    save_file({f.name: getattr(gaussians, f.name).detach().float().cpu().contiguous() for f in fields(gaussians)},
              str(path))


def view_targets(views: Sequence[TrainingView], device: torch.device) -> list[ViewTarget]:
    return [ViewTarget(camera=v.view.camera, rgb=torch.from_numpy(v.rgb).to(device),
                       alpha=torch.from_numpy(v.alpha).to(device)) for v in views]


def reconstruct(views: Sequence[TrainingView], config: EvalReconConfig, glb_path: Path, *, device: torch.device,
                seed: int = 0, control: JobControl | None = None, metadata: dict | None = None
                ) -> ReconstructionResult:
    """Fit → mesh → UVs → baked texture → GLB at ``glb_path``."""
    check_views(views)
    control = ensure_control(control)
    timings: dict[str, float] = {}

    # 1. Stage 1 on all training views, no diffusion guidance
    start = time.perf_counter()
    fitted = fit_gaussians(view_targets(views, device), stage1_config(config), None, device=device, seed=seed,
                           control=control)
    gaussians = fitted.gaussians
    timings["stage1"] = time.perf_counter() - start

    # 2. Density grid → marching cubes → cleanup, then UVs
    start = time.perf_counter()
    mesh = extract_mesh(gaussians, mesh_config(config), control=control)
    mesh = unwrap_mesh(mesh, config.texture_size, control)
    timings["mesh"] = time.perf_counter() - start

    # 3. Texture baked from Gaussian renders at generate's 26 bake views
    start = time.perf_counter()
    mesh = bake_gaussian_texture(mesh, gaussians, config.bake_size, config.texture_size, control,
                                 ownership=config.bake_ownership)
    timings["bake"] = time.perf_counter() - start

    # 4. Export, as generate does
    start = time.perf_counter()
    export_glb(mesh, glb_path, dict(metadata or {}))
    timings["export"] = time.perf_counter() - start
    return ReconstructionResult(glb_path, mesh.vertices, mesh.faces, len(gaussians), gaussians, timings)
