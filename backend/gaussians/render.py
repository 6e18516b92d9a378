"""One entry point for rendering Gaussians: gsplat on CUDA, our PyTorch reference rasterizer elsewhere.

Both paths take the camera in gsplat's convention (OpenCV world-to-camera ``viewmat``, intrinsics ``K``
with pixel (0, 0)'s centre at (0.5, 0.5)) and return the same quantities, so stage 1, baking and the tests
never care which one ran.

:func:`render_views` renders C views of one object; :func:`render_views_together` renders C views of each of K
objects, in one gsplat call on CUDA (stage 1 advancing several objects together, ``backend.stage1``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from ..camera import Camera
from .gaussians import Gaussians, covariances
from .reference_rasterizer import rasterize as rasterize_reference
from .reference_rasterizer import ray_peak_depths

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
    gsplat, C tensors [N, 2] from the reference rasterizer; from :func:`render_views_together`, the whole
    call's: one [K, C, N_max, 2] tensor, or C tensors [N_max, 2]): call :meth:`retain_screen_grads` before
    ``backward`` and :meth:`screen_grads` after it to get this object's pixel-space gradients [C, N, 2].
    ``screen_index`` picks this object's rows out of those stacked gradients (empty: all of them).
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    radii: Tensor
    screen_means: tuple[Tensor, ...]
    screen_index: tuple[int | slice, ...] = ()

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
        stacked = grads[0] if len(grads) == 1 and grads[0].ndim >= 3 else torch.stack(grads)
        return stacked[self.screen_index]


@dataclass(frozen=True)
class DepthRender:
    """What one view of the Gaussians shows of their surface, no gradient.

    alpha:        [H, W, 1] accumulated opacity
    depth:        [H, W, 1] expected camera-space depth (alpha-weighted mean, 0 where nothing was hit)
    median_depth: [H, W, 1] camera-space depth of the centre of the Gaussian at which the accumulated alpha
                  reaches 0.5, front to back (0 where it never does: alpha < 0.5 there)
    median_ray_depth: [H, W, 1] the same Gaussian's depth where its density peaks along the pixel's ray
                  (``reference_rasterizer.ray_peak_depths``; 0 where there is none)
    """

    alpha: Tensor
    depth: Tensor
    median_depth: Tensor
    median_ray_depth: Tensor


@torch.no_grad()
def render_depths(gaussians: Gaussians, camera: Camera) -> DepthRender:
    """Render ``camera``'s alpha, expected and median depth with the reference rasterizer on any device: gsplat
    1.5 renders no median depth. On the CPU, 10 views at 256² of 86k Gaussians took 19–21 s of one core (14–18 s
    for render_gaussians; docs/eval_recon.md)."""
    viewmat, K = camera_matrices(camera, gaussians.means.device, gaussians.means.dtype)
    covars = covariances(gaussians)
    out = rasterize_reference(gaussians.means, covars, gaussians.opacities, gaussians.colors, viewmat, K,
                              camera.width, camera.height, median_depth=True)
    return DepthRender(alpha=out.alphas, depth=out.depths, median_depth=out.median_depths,
                       median_ray_depth=ray_peak_depths(gaussians.means, covars, viewmat, K, out.median_gaussian_ids))


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
        return _render_gsplat(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                              gaussians.colors, viewmats, Ks, width, height, backgrounds)
    return _render_reference(gaussians, viewmats, Ks, width, height, backgrounds)


def render_views_together(
    gaussians: Sequence[Gaussians],  # K objects, any counts N_k
    viewmats: Tensor,  # [K, C, 4, 4] OpenCV world-to-camera
    Ks: Tensor,  # [K, C, 3, 3]
    width: int,
    height: int,
    backgrounds: Tensor,  # [K, C, 3]
    backend: str = "auto",
) -> list[RenderBatch]:
    """C views of each of K objects, one :class:`RenderBatch` per object, each what :func:`render_views` gives
    for that object alone (its radii and screen gradients cover its own N_k Gaussians).

    On CUDA this is one gsplat call for all K·C images, so each kernel launch fills more of the GPU: the
    objects are padded to the largest count with inert Gaussians (:func:`stack_gaussians`) and stacked on
    gsplat's leading batch dimension. The padding costs little there: an inert Gaussian is culled by the
    projection kernel's first test (opacity below 1/255) and never reaches the tile intersection, the
    rasterizer or its backward pass, so the price is K·C·(N_max - N_k) threads that return at once, against
    K - 1 fewer launches of every kernel. The reference rasterizer renders the same padded objects one by one.
    One object takes the plain :func:`render_views` path, unpadded.
    """
    count = len(gaussians)
    if count == 0:
        raise ValueError("render_views_together needs at least one object")
    if viewmats.ndim != 4 or viewmats.shape[0] != count or viewmats.shape[2:] != (4, 4):
        raise ValueError(f"viewmats must be [K={count}, C, 4, 4], got {tuple(viewmats.shape)}")
    views = viewmats.shape[1]
    if Ks.shape != (count, views, 3, 3) or backgrounds.shape != (count, views, 3):
        raise ValueError(f"Ks must be [{count}, {views}, 3, 3] and backgrounds [{count}, {views}, 3], got "
                         f"{tuple(Ks.shape)}, {tuple(backgrounds.shape)}")
    if count == 1:
        return [render_views(gaussians[0], viewmats[0], Ks[0], width, height, backgrounds[0], backend)]
    stacked = stack_gaussians(gaussians)
    if resolve_backend(backend, stacked.means.device) == "gsplat":
        whole = _render_gsplat(stacked.means, stacked.quats, stacked.scales, stacked.opacities, stacked.colors,
                               viewmats, Ks, width, height, backgrounds)
        return [RenderBatch(rgb=whole.rgb[k], alpha=whole.alpha[k], depth=whole.depth[k],
                            radii=whole.radii[k, :, :n], screen_means=whole.screen_means,
                            screen_index=(k, slice(None), slice(0, n)))
                for k, n in enumerate(stacked.counts)]
    batches = []
    for k, n in enumerate(stacked.counts):
        padded = _render_reference(stacked.object(k), viewmats[k], Ks[k], width, height, backgrounds[k])
        batches.append(dataclasses.replace(padded, radii=padded.radii[:, :n], screen_index=(slice(None), slice(0, n))))
    return batches


@dataclass(frozen=True)
class StackedGaussians:
    """K objects' Gaussians padded to one count N_max and stacked: means [K, N_max, 3], quats [K, N_max, 4],
    scales [K, N_max, 3], opacities [K, N_max], colors [K, N_max, 3]. Object k's real Gaussians are its first
    ``counts[k]`` rows, in their order; the rest are inert (opacity 0, so every renderer culls them, and
    constant, so no gradient reaches them: the real rows' gradients flow back to each object's own tensors)."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor
    counts: tuple[int, ...]

    def object(self, index: int) -> Gaussians:
        """Object ``index`` with its padding, as N_max Gaussians."""
        return Gaussians(self.means[index], self.scales[index], self.quats[index], self.opacities[index],
                         self.colors[index])


INERT_SCALE = 1e-6  # world units: a point, should a renderer ever draw an opacity-0 Gaussian


@lru_cache(maxsize=8)
def _inert_gaussian(device: torch.device, dtype: torch.dtype) -> Gaussians:
    """One Gaussian that draws nothing (made once per device and dtype, so padding costs no fill per call;
    outside inference mode, so a first call under it cannot keep autograd from using the cached rows later)."""
    with torch.inference_mode(False), torch.no_grad():
        return Gaussians(means=torch.zeros(1, 3, device=device, dtype=dtype),
                         scales=torch.full((1, 3), INERT_SCALE, device=device, dtype=dtype),
                         quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=device, dtype=dtype),
                         opacities=torch.zeros(1, device=device, dtype=dtype),
                         colors=torch.zeros(1, 3, device=device, dtype=dtype))


def stack_gaussians(gaussians: Sequence[Gaussians]) -> StackedGaussians:
    """Pad each object to the largest count with inert Gaussians and stack them (one concatenation a field,
    whatever K)."""
    first = gaussians[0].means
    inert = _inert_gaussian(first.device, first.dtype)
    counts = tuple(len(g) for g in gaussians)
    largest = max(counts)

    def stacked(name: str) -> Tensor:
        pad = getattr(inert, name)
        pieces = []
        for g, n in zip(gaussians, counts, strict=True):
            pieces.append(getattr(g, name))
            if n < largest:
                pieces.append(pad.expand(largest - n, *pad.shape[1:]))
        return torch.cat(pieces).view(len(gaussians), largest, *pad.shape[1:])

    return StackedGaussians(means=stacked("means"), quats=stacked("quats"), scales=stacked("scales"),
                            opacities=stacked("opacities"), colors=stacked("colors"), counts=counts)


def _render_reference(gaussians: Gaussians, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                      backgrounds: Tensor) -> RenderBatch:
    """The pure-PyTorch twin of :func:`_render_gsplat` for one object: one reference rasterization per view."""
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


def _render_gsplat(
    means: Tensor,  # [..., N, 3]
    quats: Tensor,  # [..., N, 4]
    scales: Tensor,  # [..., N, 3]
    opacities: Tensor,  # [..., N]
    colors: Tensor,  # [..., N, 3]
    viewmats: Tensor,  # [..., C, 4, 4]
    Ks: Tensor,  # [..., C, 3, 3]
    width: int,
    height: int,
    backgrounds: Tensor,  # [..., C, 3]
) -> RenderBatch:
    """One gsplat call; with leading batch dimensions every output carries them too (rgb [..., C, H, W, 3],
    radii [..., C, N], screen means [..., C, N, 2])."""
    import gsplat

    rendered, alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        backgrounds=backgrounds, render_mode="RGB+ED", packed=False, rasterize_mode="classic",
    )  # rendered [..., C, H, W, 4] (RGB, expected depth), alphas [..., C, H, W, 1]
    radii = meta["radii"]  # [..., C, N, 2] in gsplat 1.5 ([C, N] in older releases)
    if radii.ndim == means.ndim + 1:
        radii = radii.amax(dim=-1)
    return RenderBatch(rgb=rendered[..., :3], alpha=alphas, depth=rendered[..., 3:4], radii=radii,
                       screen_means=(meta["means2d"],))
