"""Zero123 as a prior for unseen views: score distillation (stage 1) and multi-step refinement (stage 2).

Conditioning, as Zero123 was trained (cvlab-columbia/zero123 ``gradio_new.py`` / ldm ``get_input``):

- context token: ``clip_camera_projection([CLIP image_embeds(reference), camera embedding])``, shape [B, 1, D];
- camera embedding (Zero123 / Zero123-XL): ``[Δpolar (rad), sin Δazimuth, cos Δazimuth, Δradius]`` with
  Δpolar = -Δelevation in our convention (``backend.camera``: positive elevation = camera above, whereas
  Zero123's polar angle grows downwards from the pole). Stable Zero123 replaces Δradius with the reference
  view's absolute polar angle in radians, ``radians(90 - reference elevation)`` (threestudio, DreamGaussian);
- channel-wise: the reference's VAE latents, the posterior MEAN (no sampling) and NOT multiplied by the VAE
  scaling factor — the ldm model concatenates ``encode_first_stage(x).mode()`` (unscaled), and the diffusers
  ports (DreamGaussian divides its scaled latents by ``scaling_factor`` again) do the same;
- classifier-free guidance: the unconditional branch zeroes BOTH the projected context token (zeros after the
  projection, not a projection of zeros) and the concatenated reference latents, exactly like the reference
  sampler's ``uc = {'c_concat': zeros, 'c_crossattn': zeros_like(c)}``; the UNet runs once on the batch
  [conditional; unconditional] and ε̂ = ε_u + s (ε_c - ε_u).

The noisy latents themselves are the VAE posterior mean of the rendered images × scaling factor.

Precision: the parts hold fp16 weights on CUDA and every input is cast to that dtype (no autocast needed); the
SDS arithmetic (noise, weights, loss) is float32. Only the VAE encoder is differentiated (for the renders);
the UNet always runs without gradient, and ``refine`` runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from ..cuda_graph import GraphCache
from ..errors import BadInputError
from ..models.zero123 import Zero123Models
from ..torch_compile import CompiledCall, inductor_backend_for
from .config import GuidanceConfig


def zero123_camera_embedding(
    d_elevation_deg: torch.Tensor,  # [B]
    d_azimuth_deg: torch.Tensor,  # [B]
    d_radius: torch.Tensor,  # [B]
) -> torch.Tensor:  # [B, 4]
    """Zero123's relative camera: [Δpolar (rad) = -Δelevation, sin Δazimuth, cos Δazimuth, Δradius]."""
    d_polar = -torch.deg2rad(d_elevation_deg)
    d_azimuth = torch.deg2rad(d_azimuth_deg)
    return torch.stack([d_polar, torch.sin(d_azimuth), torch.cos(d_azimuth), d_radius], dim=-1)


def stable_zero123_camera_embedding(
    d_elevation_deg: torch.Tensor,  # [B]
    d_azimuth_deg: torch.Tensor,  # [B]
    reference_elevation_deg: float,
) -> torch.Tensor:  # [B, 4]
    """Stable Zero123's: [Δpolar (rad), sin Δazimuth, cos Δazimuth, polar angle of the reference (rad)]."""
    embedding = zero123_camera_embedding(d_elevation_deg, d_azimuth_deg, torch.zeros_like(d_elevation_deg))
    embedding[:, 3] = math.radians(90.0 - reference_elevation_deg)
    return embedding


def sds_timestep(step_ratio: float, t_min: float = 0.02, t_max: float = 0.98, num_train_timesteps: int = 1000) -> int:
    """Annealed SDS timestep: t = t_max·N - (t_max·N - t_min·N)·step_ratio, rounded (980 → 20 for N = 1000)."""
    if not 0.0 <= step_ratio <= 1.0:
        raise BadInputError(f"step_ratio must be in [0, 1], got {step_ratio}")
    high, low = t_max * num_train_timesteps, t_min * num_train_timesteps
    return int(round(high - (high - low) * step_ratio))


def refine_timesteps(scheduler: DDIMScheduler, strength: float, steps: int, device=None) -> torch.Tensor:
    """The timesteps one ``refine`` call runs, as DreamGaussian's ``Zero123.refine`` picks them.

    ``scheduler.set_timesteps(steps)`` (with Zero123's ``steps_offset`` 1: 981, 961, …, 1 for 50), then from
    index ``int(steps · strength)`` on. Its stage 2 raises strength from 0.8 to 0.95: t 181 → 41.
    """
    scheduler.set_timesteps(steps, device=device)
    return scheduler.timesteps[int(steps * strength):]


@dataclass(frozen=True)
class _ObjectsStacked:
    """Several objects' per-sample inputs to one batched Zero123 call, each object's ``B_i`` samples in turn:
    its checked image count, its camera embeddings and its own reference (CLIP embedding, latents), which is
    what keeps each object's result its own (``sds_losses_together``, ``refine_together``)."""

    sizes: list[int]  # B_i per object
    camera: torch.Tensor  # [ΣB, 4]
    embedding: torch.Tensor  # [ΣB, 1, D] reference CLIP embedding per sample
    concat: torch.Tensor  # [ΣB, 4, h, w] reference latents per sample

    @classmethod
    def of(cls, guidances: Sequence[Zero123Guidance], images: Sequence[torch.Tensor],
           d_elevation_deg: Sequence, d_azimuth_deg: Sequence, d_radius: Sequence) -> _ObjectsStacked:
        sizes, cameras = [], []
        for guidance, image, d_elev, d_azim, d_rad in zip(guidances, images, d_elevation_deg, d_azimuth_deg,
                                                          d_radius, strict=True):
            guidance._check_reference()
            size = guidance._check_images(image)
            sizes.append(size)
            cameras.append(guidance._camera_embedding(d_elev, d_azim, d_rad, size))
        pairs = list(zip(guidances, sizes, strict=True))
        with torch.no_grad():  # the references are fixed inputs, never differentiated
            embedding = torch.cat([g.reference_embedding.expand(n, -1, -1) for g, n in pairs])
            concat = torch.cat([g.reference_latents.expand(n, -1, -1, -1) for g, n in pairs])
        return cls(sizes, torch.cat(cameras), embedding, concat)

    def noise(self, guidances: Sequence[Zero123Guidance], generators: Sequence[torch.Generator | None],
              shape: torch.Size) -> torch.Tensor:
        """[ΣB, *shape] float32: each object's noise drawn from its generator (None: its guidance's own), in the
        order the one-object methods draw it."""
        lead = guidances[0]
        return torch.cat([torch.randn((size, *shape), generator=generator or guidance.generator, device=lead.device,
                                      dtype=torch.float32)
                          for guidance, generator, size in zip(guidances, generators, self.sizes, strict=True)])


def sds_losses_together(
    guidances: Sequence[Zero123Guidance],  # one per object; all with the same ``sds_group_key``
    images: Sequence[torch.Tensor],  # per object [B_i, 3, H, W] in [0, 1] (one H, W), differentiable renders
    d_elevation_deg: Sequence[torch.Tensor],  # per object [B_i]
    d_azimuth_deg: Sequence[torch.Tensor],  # per object [B_i]
    d_radius: Sequence[torch.Tensor],  # per object [B_i]
    step_ratios: Sequence[float],  # per object, in [0, 1]
    guidance_scale: float = 5.0,
) -> list[torch.Tensor]:  # per object, [] scalar
    """Score distillation for several objects at once: one VAE encoding and one UNet call for all of them.

    Each object keeps what makes its loss its own: its reference (CLIP embedding and latents, stacked per
    sample), its timestep (from its own step ratio), and its noise, drawn from its own guidance's generator in
    the same order as :meth:`Zero123Guidance.sds_loss` draws it, so a batch of one is exactly that method. The
    classifier-free-guidance batch is [conditional of every object; unconditional of every object], 2·ΣB_i.
    Each loss's gradient reaches only its own object's images: the VAE encoder and the UNet treat samples
    independently (group norm, no batch statistics).
    """
    lead = guidances[0]
    if any(g.sds_group_key != lead.sds_group_key for g in guidances):
        raise BadInputError("sds_losses_together needs guidances that share their models and timestep range")
    stacked = _ObjectsStacked.of(guidances, images, d_elevation_deg, d_azimuth_deg, d_radius)
    sizes = stacked.sizes
    timestep = torch.cat([torch.full((size,), sds_timestep(ratio, lead.config.t_min, lead.config.t_max,
                                                           lead.num_train_timesteps), device=lead.device,
                                     dtype=torch.long)
                          for size, ratio in zip(sizes, step_ratios, strict=True)])  # [ΣB]

    latents = lead._encode(torch.cat(list(images)))  # [ΣB, 4, h, w] float32, with gradient
    noise = stacked.noise(guidances, [None] * len(guidances), latents.shape[1:])
    with torch.no_grad():
        noisy = lead._add_noise(latents.detach(), noise, timestep)
        noise_pred = lead._predict_noise(noisy, timestep, stacked.camera, guidance_scale, stacked.embedding,
                                         stacked.concat)
        weight = (1.0 - lead.alphas_cumprod[timestep]).view(-1, 1, 1, 1)
        grad = torch.nan_to_num(weight * (noise_pred - noise))
        target = latents.detach() - grad
    return [0.5 * F.mse_loss(own_latents, own_target, reduction="sum")
            for own_latents, own_target in zip(latents.split(sizes), target.split(sizes), strict=True)]


@torch.inference_mode()
def refine_together(
    guidances: Sequence[Zero123Guidance],  # one per object; all with the same ``refine_group_key``
    images: Sequence[torch.Tensor],  # per object [B_i, 3, H_i, W_i] in [0, 1]
    d_elevation_deg: Sequence[torch.Tensor | float],  # per object [B_i] (or one value for all its images)
    d_azimuth_deg: Sequence[torch.Tensor | float],  # per object [B_i]
    d_radius: Sequence[torch.Tensor | float],  # per object [B_i]
    strength: float = 0.8,
    steps: int = 50,
    guidance_scale: float = 5.0,
    generators: Sequence[torch.Generator | None] | None = None,  # per object; None: that guidance's own
) -> list[torch.Tensor]:  # per object [B_i, 3, H_i, W_i] in [0, 1], float32
    """:meth:`Zero123Guidance.refine` for several objects at once: one VAE encoding, one DDIM loop whose every
    step is one UNet call for all of them, one decoding.

    As :func:`sds_losses_together`, each object keeps its own reference (CLIP embedding and latents, stacked per
    sample) and its own noise, drawn from its own generator in the order ``refine`` draws it, so a batch of one is
    exactly that method and each object's result is its result alone up to the float rounding of a larger batch
    (the VAE and UNet treat samples independently; DDIM with η = 0 draws nothing more). The objects share the
    schedule (``strength``, ``steps``) and the scale; each object's images are resized to the model's side on
    their own and its result back to their size, so the objects may differ in image size.
    """
    lead = guidances[0]
    if any(g.refine_group_key != lead.refine_group_key for g in guidances):
        raise BadInputError("refine_together needs guidances that share their models")
    if not 0.0 <= strength < 1.0:
        raise BadInputError(f"refine strength must be in [0, 1), got {strength}")
    if steps < 1:
        raise BadInputError(f"refine needs at least one step, got {steps}")
    generators = list(generators) if generators is not None else [None] * len(guidances)
    stacked = _ObjectsStacked.of(guidances, images, d_elevation_deg, d_azimuth_deg, d_radius)
    sizes = stacked.sizes
    batch = sum(sizes)
    timesteps = refine_timesteps(lead.scheduler, strength, steps, lead.device)

    # each object's images at the model's side on their own (they may differ in size), then one encoding
    latents = lead._encode(torch.cat([lead._resize(image.to(lead.device, torch.float32)) for image in images]))
    noise = stacked.noise(guidances, generators, latents.shape[1:])
    latents = noise if strength == 0 else lead._add_noise(latents, noise, timesteps[:1].expand(batch))
    for t in timesteps:
        noise_pred = lead._predict_noise(latents, t.expand(batch), stacked.camera, guidance_scale, stacked.embedding,
                                         stacked.concat)
        latents = lead.scheduler.step(noise_pred, t, latents).prev_sample

    decoded = lead.models.vae.decode((latents / lead.scaling_factor).to(lead.dtype)).sample.float()
    refined = ((decoded + 1.0) / 2.0).clamp(0.0, 1.0)
    outputs = []
    for own, image in zip(refined.split(sizes), images, strict=True):
        if own.shape[-2:] != image.shape[-2:]:
            own = F.interpolate(own, image.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
        outputs.append(own)
    return outputs


def _is_channels_last(module: torch.nn.Module) -> bool:
    """Whether ``module``'s first 4-D weight is stored channels-last (the layout inputs should match)."""
    for parameter in module.parameters():
        if parameter.ndim == 4:
            return parameter.is_contiguous(memory_format=torch.channels_last) and not parameter.is_contiguous()
    return False


@dataclass
class _ModelGraphs:
    """The CUDA graphs captured for one set of Zero123 models: the UNet's ε and the VAE encoder's posterior mean
    (forward and backward), each per input shape."""

    unet: GraphCache
    encoder: dict[tuple, object] = field(default_factory=dict)  # (shape, dtype, layout) → make_graphed_callables


# Keyed by the UNet module, so the graphs go when the models are dropped (the graph cache holds the UNet only
# through a weak reference, or the entry would keep its own key alive).
_GRAPHS_BY_UNET: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GRAPHS_LOCK = threading.Lock()


def _shared_graphs(models: Zero123Models) -> _ModelGraphs:
    with _GRAPHS_LOCK:
        graphs = _GRAPHS_BY_UNET.get(models.unet)
        if graphs is None:
            unet_ref = weakref.ref(models.unet)
            graphs = _GRAPHS_BY_UNET[models.unet] = _ModelGraphs(
                GraphCache(lambda sample, timesteps, context: _unet_eps(unet_ref(), sample, timesteps, context)))
        return graphs


def _vae_posterior_mean(vae: torch.nn.Module, vae_in: torch.Tensor) -> torch.Tensor:
    return vae.encode(vae_in).latent_dist.mean


class _PosteriorMean(torch.nn.Module):
    """The VAE encoder's posterior mean as a module of its own: what stage 1's compiled encoder compiles."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, vae_in: torch.Tensor) -> torch.Tensor:
        return _vae_posterior_mean(self.vae, vae_in)


_COMPILED_ENCODER_KEY = "_image_to_3d_compiled_posterior_mean"
_COMPILED_ENCODER_LOCK = threading.Lock()


def _compiled_encoder(vae: torch.nn.Module, device: torch.device) -> CompiledCall | None:
    """SDS's VAE encoder through torch.compile (GuidanceConfig.compile_vae_encoder) where inductor can work on
    ``device`` (``backend.torch_compile``), else None. One per loaded VAE, kept on the VAE itself, so every
    guidance on it (a batch worker makes one per row) shares one compilation and it goes with the model."""
    backend = inductor_backend_for(device)
    if backend is None:
        return None
    with _COMPILED_ENCODER_LOCK:
        call = vae.__dict__.get(_COMPILED_ENCODER_KEY)
        if call is None:
            call = vae.__dict__[_COMPILED_ENCODER_KEY] = CompiledCall(_PosteriorMean(vae), "Zero123's VAE encoder",
                                                                      backend)
        return call


def _unet_eps(unet, sample: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The UNet's ε prediction as a function of tensors only (what a CUDA graph captures)."""
    return unet(sample, timesteps, encoder_hidden_states=context).sample


class Zero123Guidance:
    """Zero123 conditioned on one reference image; implements GuidanceLike (``backend.guidance``).

    Usage::

        guidance = Zero123Guidance(load_zero123(mode, device), GuidanceConfig())
        guidance.set_reference(reference_rgb_on_white)            # [1, 3, H, W] in [0, 1], once
        loss = guidance.sds_loss(renders, d_elev, d_azim, d_radius, step_ratio=step / steps)
        (lambda_sds * loss).backward()                            # gradients reach the renders only
    """

    def __init__(self, models: Zero123Models, config: GuidanceConfig | None = None):
        self.models = models
        self.config = config or GuidanceConfig()
        self.device = models.device
        self.dtype = models.dtype
        # Own copy (set_timesteps mutates it), with the published config's spacing ("leading", steps_offset 1) as
        # DreamGaussian's: refine's 50-step schedule is 981, 961, …, 1 and strength 0.8 starts at 181.
        self.scheduler = DDIMScheduler.from_config(models.scheduler.config)
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(self.device, torch.float32)  # [N]
        self.scaling_factor = float(models.vae.config.scaling_factor)
        self.generator = torch.Generator(self.device).manual_seed(self.config.seed)
        self.unet = models.unet
        # CUDA graphs per input shape (backend.cuda_graph), shared by every guidance on these models: a batch
        # worker makes one guidance per row, and each would otherwise capture its graphs again.
        graphs = _shared_graphs(models) if self.device.type == "cuda" and self.config.cuda_graphs else None
        self._encoder_graphs: dict[tuple, object] = graphs.encoder if graphs else {}
        self._unet_graphs = graphs.unet if graphs else None
        # SDS's compiled VAE encoder, shared per loaded VAE; None where not asked for or inductor cannot work
        self._compiled_encoder = (_compiled_encoder(models.vae, self.device) if self.config.compile_vae_encoder
                                  else None)
        self.reference_embedding: torch.Tensor | None = None  # [1, 1, D] CLIP image_embeds of the reference
        self.reference_latents: torch.Tensor | None = None  # [1, 4, h, w] unscaled posterior mean
        self.reference_elevation_deg = 0.0

    # ------------------------------------------------------------------------------------------ reference

    @torch.no_grad()
    def set_reference(self, rgb: torch.Tensor, elevation_deg: float = 0.0) -> None:
        """Encode the reference view once: ``rgb`` [1, 3, H, W] in [0, 1], the object over white."""
        if rgb.ndim != 4 or rgb.shape[0] != 1 or rgb.shape[1] != 3:
            raise BadInputError(f"reference must be [1, 3, H, W], got {list(rgb.shape)}")
        rgb = rgb.to(self.device, torch.float32).clamp(0.0, 1.0)
        size = self.models.clip_image_size
        clip_in = F.interpolate(rgb, (size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        mean = torch.tensor(self.models.clip_mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.models.clip_std, device=self.device).view(1, 3, 1, 1)
        clip_in = ((clip_in - mean) / std).to(self.dtype)
        embeds = self.models.image_encoder(pixel_values=clip_in).image_embeds  # [1, D]
        self.reference_embedding = embeds.unsqueeze(1)
        vae_in = self._resize(rgb).to(self.dtype) * 2.0 - 1.0
        self.reference_latents = self.models.vae.encode(vae_in).latent_dist.mean  # unscaled: see module doc
        self.reference_elevation_deg = float(elevation_deg)

    # ------------------------------------------------------------------------------------------------ SDS

    def sds_loss(
        self,
        images: torch.Tensor,  # [B, 3, H, W] in [0, 1], differentiable renders
        d_elevation_deg: torch.Tensor,  # [B] target view minus reference view
        d_azimuth_deg: torch.Tensor,  # [B]
        d_radius: torch.Tensor,  # [B]
        step_ratio: float,
        guidance_scale: float = 5.0,
    ) -> torch.Tensor:  # [] scalar
        """Score distillation loss; its gradient w.r.t. the image latents is w(t)·(ε̂ - ε), w(t) = 1 - ᾱ_t.

        The rendered images are resized to the model's side (256), encoded by the VAE (with gradient), noised
        at the annealed timestep t (``sds_timestep``), and the UNet predicts ε̂ with CFG without gradient. The
        loss is ``0.5·Σ(latents - stopgrad(latents - grad))²``, summed over the batch and latent elements, so
        d loss / d latents is exactly ``grad`` per view (DreamGaussian's convention; weight it with lambda_sds).
        """
        return sds_losses_together([self], [images], [d_elevation_deg], [d_azimuth_deg], [d_radius], [step_ratio],
                                   guidance_scale)[0]

    @property
    def sds_group_key(self) -> tuple:
        """Guidances with equal keys can share one batched SDS call (:func:`sds_losses_together`): the same
        models, hence the same VAE and UNet, and the same timestep range."""
        return (id(self.models), self.config.t_min, self.config.t_max)

    # --------------------------------------------------------------------------------------------- refine

    @property
    def refine_group_key(self) -> tuple:
        """Guidances with equal keys can share one batched refine call (:func:`refine_together`): the same
        models, hence the same VAE, UNet and DDIM schedule."""
        return (id(self.models),)

    @torch.inference_mode()
    def refine(
        self,
        images: torch.Tensor,  # [B, 3, H, W] in [0, 1]
        d_elevation_deg: torch.Tensor,  # [B]
        d_azimuth_deg: torch.Tensor,  # [B]
        d_radius: torch.Tensor,  # [B]
        strength: float = 0.8,
        steps: int = 50,
        guidance_scale: float = 5.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # [B, 3, H, W] in [0, 1], float32
        """Multi-step DDIM "image-to-image": encode, noise, denoise to t≈0, decode — DreamGaussian's ``refine``.

        ``strength`` and ``steps`` mean what they mean there (:func:`refine_timesteps`): the DDIM schedule has
        ``steps`` steps, the first ``int(steps · strength)`` of them are skipped, and denoising starts at the
        next one (strength 0.8 of 50: t = 181, 10 steps; 0.95: t = 41, 3 steps; 0: from pure noise).
        ``generator`` (on the guidance's device) makes the result reproducible; by default the guidance's own,
        seeded once from ``GuidanceConfig.seed``. A batch of one object of :func:`refine_together`.
        """
        return refine_together([self], [images], [d_elevation_deg], [d_azimuth_deg], [d_radius], strength, steps,
                               guidance_scale, [generator])[0]

    # ------------------------------------------------------------------------------------------ internals

    def _predict_noise(
        self,
        noisy_latents: torch.Tensor,  # [B, 4, h, w]
        timesteps: torch.Tensor,  # [B] long
        cameras: torch.Tensor,  # [B, 4]
        guidance_scale: float,
        embedding: torch.Tensor | None = None,  # [B, 1, D] per-sample reference embeddings (default: our own)
        concat: torch.Tensor | None = None,  # [B, 4, h, w] per-sample reference latents (default: our own)
    ) -> torch.Tensor:  # [B, 4, h, w] float32
        """ε̂ with classifier-free guidance: one UNet call on [conditional; unconditional] (see module doc).

        ``embedding`` and ``concat`` let one call condition each sample on its own reference (several objects
        in one batch, :func:`sds_losses_together`); by default every sample is conditioned on ours."""
        batch = noisy_latents.shape[0]
        if embedding is None:
            embedding = self.reference_embedding.expand(batch, -1, -1)
        if concat is None:
            concat = self.reference_latents.expand(batch, -1, -1, -1)
        context = self.models.clip_camera_projection(torch.cat([embedding, cameras[:, None, :].to(self.dtype)], -1))
        use_cfg = guidance_scale != 1.0
        if use_cfg:
            context = torch.cat([context, torch.zeros_like(context)])
            concat = torch.cat([concat, torch.zeros_like(concat)])
            noisy_latents = torch.cat([noisy_latents, noisy_latents])
            timesteps = torch.cat([timesteps, timesteps])
        unet_in = torch.cat([noisy_latents.to(self.dtype), concat], dim=1)
        if self.device.type == "cuda":
            unet_in = unet_in.contiguous(memory_format=torch.channels_last)
        prediction = self._run_unet(unet_in, timesteps, context).float()
        if not use_cfg:
            return prediction
        conditional, unconditional = prediction.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    def _run_unet(self, sample: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The UNet's ε prediction, replayed from a CUDA graph per input shape where enabled."""
        if self._unet_graphs is None:
            return _unet_eps(self.unet, sample, timesteps, context)
        return self._unet_graphs(sample, timesteps, context)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] in [0, 1] → [B, 4, h, w] float32
        """VAE posterior mean × scaling factor, differentiable w.r.t. the images."""
        vae_in = self._resize(images.to(self.device, torch.float32)).to(self.dtype) * 2.0 - 1.0
        channels_last = self.device.type == "cuda" and _is_channels_last(self.models.vae)
        if channels_last:  # match the weights' layout, or every convolution converts
            vae_in = vae_in.contiguous(memory_format=torch.channels_last)
        else:
            vae_in = vae_in.contiguous()
        return self._posterior_mean(vae_in).float() * self.scaling_factor

    def _posterior_mean(self, vae_in: torch.Tensor) -> torch.Tensor:
        """The VAE encoder's posterior mean. In SDS (gradients wanted) it runs compiled where the config says so,
        else on CUDA its forward and backward replay from CUDA graphs per input shape."""
        sds = vae_in.requires_grad and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        compiled = self._compiled_encoder
        if sds and compiled is not None and compiled.failure is None:  # after a failure: the graphs below, as before
            return compiled(vae_in)
        if not (sds and self.device.type == "cuda" and self.config.cuda_graphs):
            return _vae_posterior_mean(self.models.vae, vae_in)
        channels_last = vae_in.is_contiguous(memory_format=torch.channels_last) and not vae_in.is_contiguous()
        key = (tuple(vae_in.shape), vae_in.dtype, channels_last)
        encoder = self._encoder_graphs.get(key)
        if encoder is None:
            vae = self.models.vae
            example = torch.zeros_like(vae_in).requires_grad_(True)
            encoder = self._encoder_graphs[key] = torch.cuda.make_graphed_callables(
                lambda x: _vae_posterior_mean(vae, x), (example,))
        return encoder(vae_in)

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        size = self.models.image_size
        if images.shape[-2:] == (size, size):
            return images
        downscale = images.shape[-1] > size or images.shape[-2] > size
        antialias = downscale and self.config.antialias_downscale
        return F.interpolate(images, (size, size), mode="bilinear", align_corners=False, antialias=antialias)

    def _add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Forward diffusion q(x_t | x_0) = √ᾱ_t x_0 + √(1-ᾱ_t) ε, per batch element."""
        alpha_bar = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        return alpha_bar.sqrt() * latents + (1.0 - alpha_bar).sqrt() * noise

    def _camera_embedding(self, d_elevation_deg, d_azimuth_deg, d_radius, batch: int) -> torch.Tensor:  # [B, 4]
        d_elevation_deg = self._per_view(d_elevation_deg, batch, "d_elevation_deg")
        d_azimuth_deg = self._per_view(d_azimuth_deg, batch, "d_azimuth_deg")
        if self.models.variant == "stable-zero123":
            return stable_zero123_camera_embedding(d_elevation_deg, d_azimuth_deg, self.reference_elevation_deg)
        return zero123_camera_embedding(d_elevation_deg, d_azimuth_deg, self._per_view(d_radius, batch, "d_radius"))

    def _per_view(self, values: torch.Tensor | float | Sequence[float], batch: int, name: str) -> torch.Tensor:
        values = torch.as_tensor(values, dtype=torch.float32).to(self.device).reshape(-1)
        if values.numel() == 1:
            return values.expand(batch)
        if values.numel() != batch:
            raise BadInputError(f"{name} needs one value per image ({batch}), got {values.numel()}")
        return values

    def _check_images(self, images: torch.Tensor) -> int:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
            raise BadInputError(f"images must be [B, 3, H, W], got {list(images.shape)}")
        return images.shape[0]

    def _check_reference(self) -> None:
        if self.reference_embedding is None:
            raise BadInputError("Zero123Guidance.set_reference(...) must be called before guiding")
