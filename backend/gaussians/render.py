"""One entry point for rendering Gaussians: gsplat on CUDA, our PyTorch reference rasterizer elsewhere.

Both paths take the camera in gsplat's convention (OpenCV world-to-camera ``viewmat``, intrinsics ``K``
with pixel (0, 0)'s centre at (0.5, 0.5)) and return the same quantities, so stage 1, baking and the tests
never care which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..camera import Camera
from .gaussians import Gaussians, covariances
from .reference_rasterizer import rasterize as rasterize_reference

BACKENDS = ("auto", "torch", "gsplat")


@dataclass(frozen=True)
class RenderResult:
    """Differentiable renders of one view.

    rgb:   [H, W, 3] colour composited over the background
    alpha: [H, W, 1] accumulated opacity
    depth: [H, W, 1] expected camera-space depth (0 where nothing was hit)
    radii: [N] screen-space radius in pixels (max of x and y), 0 where the Gaussian is not drawn
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    radii: Tensor


@dataclass(frozen=True)
class RenderBatch:
    """Differentiable renders of C views of one size, plus what densification needs.

    rgb: [C, H, W, 3], alpha: [C, H, W, 1], depth: [C, H, W, 1], radii: [C, N] (pixels, 0 = not drawn).
    ``screen_means`` are the projected centres as they sit in the autograd graph (one [C, N, 2] tensor from
    gsplat, C tensors [N, 2] from the reference rasterizer): call :meth:`retain_screen_grads` before
    ``backward`` and :meth:`screen_grads` after it to get the pixel-space gradients [C, N, 2].
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    radii: Tensor
    screen_means: tuple[Tensor, ...]

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def view(self, index: int) -> RenderResult:
        return RenderResult(self.rgb[index], self.alpha[index], self.depth[index], self.radii[index])

    def retain_screen_grads(self) -> None:
        for t in self.screen_means:
            if t.requires_grad:
                t.retain_grad()

    def screen_grads(self) -> Tensor | None:
        grads = [t.grad for t in self.screen_means]
        if any(g is None for g in grads):
            return None
        return grads[0] if len(grads) == 1 and grads[0].ndim == 3 else torch.stack(grads)


def camera_matrices(camera: Camera, device, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """(viewmat [4, 4] OpenCV world-to-camera, K [3, 3]) as tensors."""
    viewmat = torch.as_tensor(camera.viewmat_opencv, dtype=dtype, device=device)
    K = torch.as_tensor(camera.K, dtype=dtype, device=device)
    return viewmat, K


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    if backend == "auto":
        return "gsplat" if device.type == "cuda" else "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(f"the gsplat backend needs CUDA tensors, got device {device}")
    return backend


def render_gaussians(gaussians: Gaussians, camera: Camera, background: Tensor, backend: str = "auto") -> RenderResult:
    """Render ``gaussians`` seen by ``camera`` over a plain ``background`` ([3], in [0, 1])."""
    viewmat, K = camera_matrices(camera, gaussians.means.device, gaussians.means.dtype)
    background = torch.as_tensor(background, dtype=gaussians.means.dtype, device=gaussians.means.device)
    return render_views(gaussians, viewmat[None], K[None], camera.width, camera.height, background[None],
                        backend).view(0)


def render_views(
    gaussians: Gaussians,
    viewmats: Tensor,  # [C, 4, 4] OpenCV world-to-camera
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    backgrounds: Tensor,  # [C, 3]
    backend: str = "auto",
) -> RenderBatch:
    """Render C views of the same size in one call (one gsplat launch on CUDA)."""
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or Ks.shape != (len(viewmats), 3, 3):
        raise ValueError(f"viewmats must be [C, 4, 4] and Ks [C, 3, 3], got {tuple(viewmats.shape)}, {tuple(Ks.shape)}")
    if backgrounds.shape != (len(viewmats), 3):
        raise ValueError(f"backgrounds must be [C, 3], got {tuple(backgrounds.shape)}")
    if resolve_backend(backend, gaussians.means.device) == "gsplat":
        return _render_gsplat(gaussians, viewmats, Ks, width, height, backgrounds)
    covars = covariances(gaussians)
    outs = [
        rasterize_reference(gaussians.means, covars, gaussians.opacities, gaussians.colors, viewmat, K, width, height,
                            background)
        for viewmat, K, background in zip(viewmats, Ks, backgrounds, strict=True)
    ]
    return RenderBatch(
        rgb=torch.stack([o.colors for o in outs]),
        alpha=torch.stack([o.alphas for o in outs]),
        depth=torch.stack([o.depths for o in outs]),
        radii=torch.stack([o.projection.radii.amax(dim=-1) for o in outs]),
        screen_means=tuple(o.projection.means2d for o in outs),
    )


def _render_gsplat(gaussians: Gaussians, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                   backgrounds: Tensor) -> RenderBatch:
    import gsplat

    colors, alphas, meta = gsplat.rasterization(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.colors,
        viewmats, Ks, width, height,
        backgrounds=backgrounds, render_mode="RGB+ED", packed=False, rasterize_mode="classic",
    )  # colors [C, H, W, 4] (RGB, expected depth), alphas [C, H, W, 1]
    radii = meta["radii"]  # [C, N, 2] in gsplat 1.5 ([C, N] in older releases)
    if radii.ndim == 3:
        radii = radii.amax(dim=-1)
    return RenderBatch(rgb=colors[..., :3], alpha=alphas, depth=colors[..., 3:4], radii=radii,
                       screen_means=(meta["means2d"],))
