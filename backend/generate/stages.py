"""The recipe's stages as named functions, in flow order: what ``generate``, bench and eval-recon all call.

photo → mask (backend.segment) → :func:`cut_out_reference` → :func:`load_guidance` → Gaussians fit
(backend.stage1.fit_gaussians) → mesh (backend.mesh.extract_mesh) → :func:`unwrap_mesh` →
:func:`bake_gaussian_texture` → texture refine (backend.mesh.refine_texture) → export (backend.export).
Stages are reached through their modules (``preprocess.prepare_reference``, ``mesh.unwrap_uvs``) so a test can
stand in for one. Each stage is wired here once, so the three callers
cannot drift apart (they did: eval-recon baked straight colour, generate and bench colour over white).
See docs/design.md §1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import mesh as mesh_stages
from .. import preprocess
from ..camera import Camera, reference_camera
from ..gaussians.gaussians import Gaussians
from ..gaussians.render import render_gaussians
from ..job_control import JobControl, ensure_control
from ..mesh.mesh import Mesh
from ..mesh.uv_unwrap import UnwrapConfig
from ..preprocess import ReferenceCrop, ReferenceImage
from ..stage1 import ViewTarget


@dataclass(frozen=True)
class Reference:
    """The recentred square cut-out every later stage is conditioned on."""

    image: ReferenceImage  # rgb [S, S, 3] and alpha [S, S] float32 in [0, 1] (numpy)
    target: ViewTarget  # the same on ``device``, seen from backend.camera.reference_camera
    crop: ReferenceCrop  # the photo square it shows (x0, y0, side in photo pixels)

    def on_white(self) -> torch.Tensor:  # [1, 3, S, S]: what Zero123 is conditioned on
        rgb, alpha = self.target.rgb, self.target.alpha[..., None]
        return (rgb * alpha + (1 - alpha)).permute(2, 0, 1)[None]


def cut_out_reference(rgb: np.ndarray, mask: np.ndarray, size: int, border_ratio: float, device) -> Reference:
    """rgb: [H, W, 3] float32 photo; mask: [H, W] bool at the photo's size."""
    image = preprocess.prepare_reference(rgb, mask.astype(np.float32), size=size, border_ratio=border_ratio)
    target = ViewTarget(reference_camera(size), torch.as_tensor(image.rgb, device=device),
                        torch.as_tensor(image.alpha, device=device))
    return Reference(image, target, preprocess.reference_crop(mask, size, border_ratio))


def load_guidance(zero123_models, config, reference: Reference | None = None):
    """Zero123 guidance (backend.guidance.Zero123Guidance), conditioned on ``reference`` when given."""
    from ..guidance import Zero123Guidance

    guidance = Zero123Guidance(zero123_models, config)
    if reference is not None:
        guidance.set_reference(reference.on_white())
    return guidance


def unwrap_mesh(mesh: Mesh, texture_size: int, control: JobControl | None = None) -> Mesh:
    """UV charts for a ``texture_size`` texture (the mesh itself comes from backend.mesh.extract_mesh)."""
    control = ensure_control(control)
    control.report("uv_unwrap", 0.0)
    mesh = mesh_stages.unwrap_uvs(mesh, UnwrapConfig(resolution=texture_size))
    control.report("uv_unwrap", 1.0)
    return mesh


def render_straight(gaussians: Gaussians, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb [H, W, 3] straight colour, alpha [H, W]) of the Gaussians at ``camera``, no gradients."""
    with torch.no_grad():
        out = render_gaussians(gaussians, camera, torch.zeros(3, device=gaussians.means.device))
    alpha = out.alpha[..., 0]
    rgb = out.rgb / alpha.clamp_min(1e-6)[..., None]  # over black, the render is premultiplied: undo that
    return rgb.clamp(0.0, 1.0), alpha


def bake_gaussian_texture(mesh: Mesh, gaussians: Gaussians, bake_size: int, texture_size: int,
                          control: JobControl | None = None, cameras: Sequence[Camera] | None = None,
                          ownership: str = "first") -> Mesh:
    """The mesh's texture baked from straight-colour renders of the Gaussians at the 26 bake views: a
    silhouette texel takes the object's colour, never a blend with the background. ``ownership``: which view
    colours a texel (``backend.mesh.bake``; DreamGaussian's ``"first"``)."""
    cameras = mesh_stages.bake_cameras(bake_size) if cameras is None else cameras
    return mesh_stages.bake_texture(mesh, lambda camera: render_straight(gaussians, camera), cameras, texture_size,
                                    ownership=ownership, control=control)
