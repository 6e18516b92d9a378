"""Stage 2: refine the baked texture alone (geometry and UVs fixed) against the photo and Zero123 targets.

DreamGaussian's ``main2.py``, in our code. The texture is an ``nn.Parameter`` in logit space (so it stays in
(0, 1)), optimised with Adam (lr 0.2). Each of the 50 steps' loss is

    reference_weight · MSE(render · valid, photo on white · valid) at the reference view(s)
  + guidance_weight  · MSE(render, guidance.refine(render)) at one fresh random view

where ``valid`` keeps the pixels the mesh covers and faces the camera at view-cos > 0.5 (the interpolated
vertex normal against the camera's viewing axis; the mean still runs over the whole image, as theirs), and the
target is made at that step from the *current* texture with strength rising linearly from 0.8 to 0.95
(``refine_timesteps``: denoising from t 181 down to t 41). Rendered through our rasterizer and ``grid_sample``
(differentiable in the texture); the geometry never moves, so each view is rasterized once.

``target_views > 0`` is our cheaper option: a fixed ring of novel views whose targets are made once, from the
baked texture, in one batched ``refine`` call at the starting strength. With ``guidance=None`` only the
reference view(s) drive the texture.

Several meshes (a batch's rows) refine together in :func:`refine_textures_together`: each keeps its own state,
and the Zero123 targets of all of them come from one batched ``refine`` call per step; :func:`refine_texture`
is a group of one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..camera import Camera, orbit_angles
from ..job_control import JobControl, ensure_control
from .bake import mesh_tensors
from .mesh import Mesh
from .rasterize import rasterize_mesh
from .texture_config import TextureConfig
from .texture_sampling import interpolate_attributes, sample_texture

STAGE = "texture"
UNTEXTURED_SIZE = 1024  # texture size when the mesh comes without a baked texture (starts grey)


class ViewTargetLike(Protocol):
    """What stage 1's ``ViewTarget`` offers: a camera and the image seen from it."""

    camera: Camera
    rgb: torch.Tensor  # [H, W, 3] straight colour in [0, 1]
    alpha: torch.Tensor  # [H, W] in [0, 1]


class RefineGuidance(Protocol):
    """The part of ``Zero123Guidance`` stage 2 uses (INTERFACES.md)."""

    def refine(self, images: torch.Tensor, d_elevation_deg: torch.Tensor, d_azimuth_deg: torch.Tensor,
               d_radius: torch.Tensor, strength: float = 0.8, steps: int = 50,
               guidance_scale: float = 5.0) -> torch.Tensor: ...


@dataclass(frozen=True)
class _CachedView:
    camera: Camera
    uv: torch.Tensor  # [H, W, 2] interpolated UVs
    mask: torch.Tensor  # [H, W, 1] float coverage
    target: torch.Tensor | None = None  # [H, W, 3] on white
    valid: torch.Tensor | None = None  # [H, W, 1] float: pixels the reference loss counts (None: all)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[V, 3] unit normals: the area-weighted mean of the adjacent faces' normals."""
    tri = vertices[faces]
    face_normals = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # length = 2 · area
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, dim=0))
    return F.normalize(normals, dim=-1)


def view_cosine(raster, faces: torch.Tensor, normals: torch.Tensor, camera: Camera) -> torch.Tensor:
    """[H, W] cos between the interpolated vertex normal and the camera's viewing axis (DreamGaussian's
    ``viewcos``: the normal's z in camera space); 0 on background."""
    pixel_normals = F.normalize(interpolate_attributes(raster, faces, normals), dim=-1)
    back = torch.as_tensor(camera.c2w[:3, 2], dtype=pixel_normals.dtype, device=pixel_normals.device)
    return (pixel_normals * back).sum(-1) * raster.mask.to(pixel_normals.dtype)


def _cache_view(vertices, faces, uvs, camera: Camera, target: torch.Tensor | None = None,
                normals: torch.Tensor | None = None, min_cosine: float | None = None) -> _CachedView:
    with torch.no_grad():
        raster = rasterize_mesh(vertices, faces, camera)
        uv = interpolate_attributes(raster, faces, uvs)
        valid = None
        if normals is not None and min_cosine is not None:
            valid = (raster.mask & (view_cosine(raster, faces, normals, camera) > min_cosine))[..., None].float()
    return _CachedView(camera, uv, raster.mask[..., None].float(), target, valid)


def _render(view: _CachedView, texture: torch.Tensor) -> torch.Tensor:
    """[H, W, 3] render of the textured mesh over white."""
    return sample_texture(texture, view.uv) * view.mask + (1 - view.mask)


def reference_loss(view: _CachedView, texture: torch.Tensor) -> torch.Tensor:
    """MSE against the photo on white over the valid pixels; the mean runs over the whole image (theirs)."""
    render = _render(view, texture)
    if view.valid is None:
        return F.mse_loss(render, view.target)
    return F.mse_loss(render * view.valid, view.target * view.valid)


def _novel_cameras(config: TextureConfig, count: int, rng: np.random.Generator, radius: float,
                   fovy_deg: float, ring: bool) -> list[Camera]:
    low, high = config.elevation_range
    if ring:  # evenly spaced around the object, starting half a step away from the reference
        elevations = rng.uniform(low, high, count)
        azimuths = (np.arange(count) + 0.5) * 360.0 / count
    else:  # DreamGaussian's np.random.randint(min_ver, max_ver) and randint(-180, 180): whole degrees
        elevations = rng.integers(int(low), int(high), count)
        azimuths = rng.integers(-180, 180, count)
    return [Camera.orbit(float(e), float(a), config.render_size, radius, fovy_deg)
            for e, a in zip(elevations, azimuths, strict=True)]


def _relative_angles(cameras: Sequence[Camera], reference_angles: tuple[float, float, float],
                     device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Δelevation, Δazimuth (in [-180, 180)), Δradius of ``cameras`` from the reference view, each [B]."""
    ref_elevation, ref_azimuth, ref_radius = reference_angles
    angles = torch.tensor([orbit_angles(c) for c in cameras], dtype=torch.float32, device=device)
    d_azimuth = torch.remainder(angles[:, 1] - ref_azimuth + 180.0, 360.0) - 180.0
    return angles[:, 0] - ref_elevation, d_azimuth, angles[:, 2] - ref_radius


@dataclass(frozen=True)
class TextureJob:
    """One mesh's stage 2, as :func:`refine_texture` takes it (see there)."""

    mesh: Mesh
    reference: ViewTargetLike | Sequence[ViewTargetLike]
    guidance: RefineGuidance | None
    config: TextureConfig = TextureConfig()
    control: JobControl | None = None


def refine_texture(
    mesh: Mesh,
    reference: ViewTargetLike | Sequence[ViewTargetLike],
    guidance: RefineGuidance | None,
    config: TextureConfig = TextureConfig(),
    control: JobControl | None = None,
    *,
    device=None,
) -> Mesh:
    """Stage 2 (module docstring): a copy of ``mesh`` with the refined texture. Needs UVs; starts from
    ``mesh.texture`` (grey if it has none). ``device`` defaults to the reference images' device.

    A group of one of :func:`refine_textures_together`: one loop, whichever way stage 2 is called.
    """
    outcome = refine_textures_together([TextureJob(mesh, reference, guidance, config, control)], device=device)[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def refine_textures_together(jobs: Sequence[TextureJob], *, device=None) -> list[Mesh | Exception]:
    """Several meshes' texture refinements advanced step by step together, sharing one batched Zero123
    ``refine`` call per step (and per round of cached ring targets) among the jobs whose guidances share their
    models and whose step asks for the same schedule (:func:`_make_targets`).

    Each job keeps its own texture logits, Adam, camera generator and cancel; its guidance draws its noise from
    its own generator, so its result is the one :func:`refine_texture` gives alone, up to the float rounding of a
    larger batch. A job that raises (its cancel included) drops out with its exception in its place and the
    others go on; a failure of a shared refine call is the failure of every job that shared it. Jobs may differ
    in step count: a short one finishes first. ``device`` defaults to each job's reference images' device.
    """
    outcomes: list[Mesh | Exception | None] = [None] * len(jobs)
    fits: dict[int, _TextureFit] = {}
    for index, job in enumerate(jobs):
        try:
            fits[index] = _TextureFit(job, device)
        except Exception as exc:  # noqa: BLE001 - one mesh's bad input is its own failure
            outcomes[index] = exc

    def drop(failed: dict[int, Exception]) -> None:
        for index, exc in failed.items():
            outcomes[index] = exc
            del fits[index]

    # 3. Cached ring targets (target_views > 0): one round per batch, each round one call per compatible group.
    while waiting := {i: fit for i, fit in fits.items() if fit.pending_ring}:
        drop(_advance(waiting, _TextureFit.ring_request, _TextureFit.keep_ring_targets))
    # 4. The optimisation steps.
    while running := {i: fit for i, fit in fits.items() if not fit.finished}:
        drop(_advance(running, _TextureFit.begin_step, _TextureFit.finish_step))
    for index, fit in fits.items():
        try:
            outcomes[index] = fit.result()
        except Exception as exc:  # noqa: BLE001 - its cancel at the last report is its own
            outcomes[index] = exc
    return outcomes


@dataclass(frozen=True)
class _RefineRequest:
    """Renders [B, H, W, 3] seen from ``cameras`` that want Zero123 targets at ``strength``."""

    renders: torch.Tensor
    cameras: list[Camera]
    strength: float


def _advance(fits: dict[int, _TextureFit], ask: Callable[[_TextureFit], _RefineRequest | None],
             answer: Callable[[_TextureFit, torch.Tensor | None], None]) -> dict[int, Exception]:
    """One round: each fit ``ask``s (a :class:`_RefineRequest` or None), the requests become targets in as few
    refine calls as the guidances allow, and each fit takes its ``answer``. Returns the fits that failed."""
    failed: dict[int, Exception] = {}
    requests: dict[int, _RefineRequest | None] = {}
    for index, fit in fits.items():
        try:
            requests[index] = ask(fit)
        except Exception as exc:  # noqa: BLE001 - this mesh's failure (or cancel) only
            failed[index] = exc
    targets = _make_targets({i: (fits[i], r) for i, r in requests.items() if r is not None})
    for index in requests:
        found = targets.get(index)
        if isinstance(found, Exception):
            failed[index] = found
            continue
        try:
            answer(fits[index], found)
        except Exception as exc:  # noqa: BLE001
            failed[index] = exc
    return failed


def _make_targets(requests: dict[int, tuple[_TextureFit, _RefineRequest]]) -> dict[int, torch.Tensor | Exception]:
    """Each request's targets [B, H, W, 3] on white, or the error of the call that made them. Zero123 guidances
    on the same models asking for the same strength, schedule length and scale share one ``refine_together``
    call; any other guidance (tests' stand-ins) goes alone through its ``refine``."""
    from ..guidance.zero123_guidance import Zero123Guidance, refine_together

    groups: dict[tuple, list[int]] = {}
    for index, (fit, request) in requests.items():
        config = fit.config
        shared = isinstance(fit.guidance, Zero123Guidance)
        key = ((fit.guidance.refine_group_key, request.strength, config.refine_steps, config.guidance_scale)
               if shared else (index,))
        groups.setdefault(key, []).append(index)
    targets: dict[int, torch.Tensor | Exception] = {}
    for members in groups.values():
        fits = [requests[i][0] for i in members]
        asked = [requests[i][1] for i in members]
        config, strength = fits[0].config, asked[0].strength
        try:
            images = [r.renders.permute(0, 3, 1, 2) for r in asked]
            angles = [_relative_angles(r.cameras, fit.reference_angles, r.renders.device)
                      for fit, r in zip(fits, asked, strict=True)]
            with torch.no_grad():
                if isinstance(fits[0].guidance, Zero123Guidance):
                    found = refine_together([f.guidance for f in fits], images, *zip(*angles, strict=True),
                                            strength=strength, steps=config.refine_steps,
                                            guidance_scale=config.guidance_scale)
                else:
                    found = [fits[0].guidance.refine(images[0], *angles[0], strength=strength,
                                                     steps=config.refine_steps, guidance_scale=config.guidance_scale)]
                for i, request, made in zip(members, asked, found, strict=True):
                    if made.shape[-2:] != request.renders.shape[1:3]:
                        made = F.interpolate(made.float(), size=request.renders.shape[1:3], mode="bilinear",
                                             align_corners=False)
                    targets[i] = made.float().permute(0, 2, 3, 1).clamp(0, 1)
        except Exception as exc:  # noqa: BLE001 - a shared call fails for all who shared it
            targets.update({i: exc for i in members})
    return targets


class _TextureFit:
    """One mesh's stage-2 state between steps: its cached views, texture logits, Adam and camera generator,
    and its own progress and cancel (steps 1-2 of the recipe in the constructor)."""

    def __init__(self, job: TextureJob, device):
        # 1. Check inputs and move data.
        self.control = ensure_control(job.control)
        self.mesh, self.guidance, self.config = job.mesh, job.guidance, job.config
        config = self.config
        references = [job.reference] if hasattr(job.reference, "camera") else list(job.reference)
        if not references:
            raise ValueError("refine_texture needs at least one reference view")
        device = torch.device(device) if device is not None else references[0].rgb.device
        self.vertices, self.faces, self.uvs = mesh_tensors(job.mesh, device)
        self.initial = (torch.as_tensor(job.mesh.texture, dtype=torch.float32, device=device)
                        if job.mesh.texture is not None
                        else torch.full((UNTEXTURED_SIZE, UNTEXTURED_SIZE, 3), 0.5, device=device))
        self.step = 0
        self.pending_ring: list[list[_CachedView]] = []
        self.novel_views: list[_CachedView] = []
        if config.steps == 0:  # nothing to refine: the texture stays as it came
            return

        # 2. Cache the reference views (photo composited on white) and the pixels their loss counts.
        normals = vertex_normals(self.vertices, self.faces)
        self.reference_views = []
        for target in references:
            if tuple(target.rgb.shape) != (target.camera.height, target.camera.width, 3):
                raise ValueError(f"reference rgb has shape {tuple(target.rgb.shape)}, expected "
                                 f"({target.camera.height}, {target.camera.width}, 3)")
            alpha = target.alpha.to(device).float().reshape(target.camera.height, target.camera.width, 1)
            on_white = target.rgb.to(device).float() * alpha + (1 - alpha)
            self.reference_views.append(self._cache_view(target.camera, on_white, normals,
                                                         config.reference_min_cosine))
        self.reference_angles = orbit_angles(references[0].camera)
        self.radius, self.fovy = self.reference_angles[2], references[0].camera.fovy_deg
        self.rng = np.random.default_rng(config.seed)

        # 3. (set up) Our cheaper option: novel views on a ring, their targets made from the initial texture.
        if self.guidance is not None and config.target_views > 0:
            cameras = _novel_cameras(config, config.target_views, self.rng, self.radius, self.fovy, ring=True)
            views = [self._cache_view(camera) for camera in cameras]
            self.ring_count = len(views)
            self.pending_ring = [views[start:start + config.batch_size]
                                 for start in range(0, len(views), config.batch_size)]

        # 4. (set up) The texture logits and their optimiser.
        self.logits = torch.nn.Parameter(torch.logit(self.initial.clamp(1e-3, 1 - 1e-3)))
        self.optimizer = torch.optim.Adam([self.logits], lr=config.lr)
        self.step_state: tuple[torch.Tensor, torch.Tensor, list[_CachedView]] | None = None

    def _cache_view(self, camera: Camera, target: torch.Tensor | None = None, normals: torch.Tensor | None = None,
                    min_cosine: float | None = None) -> _CachedView:
        return _cache_view(self.vertices, self.faces, self.uvs, camera, target, normals, min_cosine)

    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps

    def ring_request(self) -> _RefineRequest:
        """3. The next batch of ring views, rendered from the initial texture."""
        batch = self.pending_ring[0]
        self.control.report(STAGE, 0.0, f"targets {len(self.novel_views) + len(batch)}/{self.ring_count}")
        renders = torch.stack([_render(v, self.initial) for v in batch])
        return _RefineRequest(renders, [v.camera for v in batch], self.config.refine_strength)

    def keep_ring_targets(self, targets: torch.Tensor) -> None:
        batch = self.pending_ring.pop(0)
        self.novel_views += [_CachedView(v.camera, v.uv, v.mask, t) for v, t in zip(batch, targets, strict=True)]

    def begin_step(self) -> _RefineRequest | None:
        """4a. Progress (where a cancel is raised), the reference loss, and this step's fresh random views (their
        targets, made from the current texture, come from the shared refine call)."""
        config = self.config
        self.control.report(STAGE, self.step / config.steps, f"step {self.step + 1}/{config.steps}")
        texture = torch.sigmoid(self.logits)
        loss = sum(reference_loss(v, texture) for v in self.reference_views) / len(self.reference_views)
        loss = config.reference_weight * loss
        views = self.novel_views
        request = None
        if self.guidance is not None and config.target_views == 0:
            cameras = _novel_cameras(config, config.batch_size, self.rng, self.radius, self.fovy, ring=False)
            views = [self._cache_view(camera) for camera in cameras]
            with torch.no_grad():
                renders = torch.stack([_render(v, texture) for v in views])
            request = _RefineRequest(renders, cameras, config.strength_at(self.step))
        self.step_state = (texture, loss, views)
        return request

    def finish_step(self, targets: torch.Tensor | None) -> None:
        """4b. The novel views' loss against their targets, the backward pass and the optimiser step."""
        config = self.config
        texture, loss, views = self.step_state
        self.step_state = None
        if self.guidance is not None:
            if targets is not None:
                views = [_CachedView(v.camera, v.uv, v.mask, t) for v, t in zip(views, targets, strict=True)]
            novel = sum(F.mse_loss(_render(v, texture), v.target) for v in views) / len(views)
            loss = loss + config.guidance_weight * novel
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1

    def result(self) -> Mesh:
        """5. The mesh with its refined texture."""
        if self.config.steps == 0:
            return self.mesh.with_texture(self.initial.cpu().numpy())
        self.control.report(STAGE, 1.0, "done")
        return self.mesh.with_texture(torch.sigmoid(self.logits).detach().cpu().numpy())
