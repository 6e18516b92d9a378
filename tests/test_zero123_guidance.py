"""Zero123 guidance on tiny models (CPU): camera embedding, timestep schedule, SDS gradients, refine."""

from __future__ import annotations

import math

import pytest
import torch

from backend.errors import BadInputError
from backend.guidance import GuidanceConfig, Zero123Guidance
from backend.guidance.zero123_guidance import (
    refine_timesteps,
    sds_timestep,
    stable_zero123_camera_embedding,
    zero123_camera_embedding,
)
from backend.models.mode import ModelMode
from backend.models.zero123 import load_zero123


@pytest.fixture(scope="module")
def models():
    return load_zero123(ModelMode.TINY, "cpu")


@pytest.fixture
def guidance(models):
    guidance = Zero123Guidance(models, GuidanceConfig(seed=3))
    reference = torch.ones(1, 3, 40, 40)
    reference[:, :, 10:30, 12:28] = torch.tensor([0.8, 0.3, 0.1]).view(1, 3, 1, 1)
    guidance.set_reference(reference, elevation_deg=0.0)
    return guidance


def _views(batch: int):
    return torch.linspace(-20, 20, batch), torch.linspace(30, 300, batch), torch.zeros(batch)


def test_camera_embedding_convention():
    zero = torch.zeros(1)
    assert torch.allclose(zero123_camera_embedding(zero, zero, zero), torch.tensor([[0.0, 0.0, 1.0, 0.0]]))
    up = zero123_camera_embedding(torch.tensor([30.0]), torch.tensor([90.0]), torch.tensor([0.25]))
    # Camera 30° higher → Zero123 polar angle 30° smaller: Δpolar = -Δelevation.
    assert torch.allclose(up, torch.tensor([[-math.pi / 6, 1.0, 0.0, 0.25]]), atol=1e-6)
    stable = stable_zero123_camera_embedding(torch.tensor([30.0]), torch.tensor([0.0]), reference_elevation_deg=10.0)
    assert torch.allclose(stable, torch.tensor([[-math.pi / 6, 0.0, 1.0, math.radians(80.0)]]), atol=1e-6)


def test_timestep_schedule_is_annealed_980_to_20():
    assert sds_timestep(0.0) == 980
    assert sds_timestep(1.0) == 20
    assert sds_timestep(0.5) == 500
    assert [sds_timestep(r) for r in (0.0, 0.25, 0.75)] == sorted([sds_timestep(r) for r in (0.0, 0.25, 0.75)])[::-1]
    with pytest.raises(BadInputError):
        sds_timestep(1.5)


def test_reference_is_cached_once(guidance, models):
    assert guidance.reference_embedding.shape == (1, 1, models.clip_camera_projection.embedding_dim)
    assert guidance.reference_latents.shape == (1, 4, models.latent_size, models.latent_size)
    with pytest.raises(BadInputError):
        Zero123Guidance(models).sds_loss(torch.rand(1, 3, 32, 32), *_views(1), step_ratio=0.5)


def test_sds_loss_is_finite_and_reaches_the_images(guidance):
    images = torch.rand(2, 3, 48, 48, requires_grad=True)
    loss = guidance.sds_loss(images, *_views(2), step_ratio=0.3)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert images.grad.shape == images.shape
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in guidance.models.unet.parameters())


def _noise_predictor(guidance, offset: float):
    """A stand-in UNet prediction: the exact noise sds_loss will draw next, plus ``offset``."""
    state = guidance.generator.get_state()

    def predict(noisy_latents, timesteps, cameras, guidance_scale, *per_sample_reference):
        replay = torch.Generator().set_state(state)
        return torch.randn(noisy_latents.shape, generator=replay) + offset

    return predict


def _image_grad(guidance, monkeypatch, offset: float, step_ratio: float) -> torch.Tensor:
    monkeypatch.setattr(guidance, "_predict_noise", _noise_predictor(guidance, offset))
    images = torch.full((1, 3, 32, 32), 0.5, requires_grad=True)
    guidance.sds_loss(images, *_views(1), step_ratio=step_ratio).backward()
    return images.grad


def test_sds_gradient_is_weighted_noise_residual(guidance, monkeypatch):
    # Perfect noise prediction → ε̂ - ε = 0 → no gradient at all.
    assert torch.count_nonzero(_image_grad(guidance, monkeypatch, 0.0, 0.5)) == 0
    # Gradient is linear in the residual and weighted by w(t) = 1 - ᾱ_t.
    one = _image_grad(guidance, monkeypatch, 1.0, 0.5)
    two = _image_grad(guidance, monkeypatch, 2.0, 0.5)
    assert one.abs().sum() > 0
    tolerance = dict(rtol=1e-3, atol=1e-4 * one.abs().max().item())  # float32 cancellation in the VAE backward
    torch.testing.assert_close(two, 2 * one, **tolerance)
    late = _image_grad(guidance, monkeypatch, 1.0, 1.0)  # t = 20
    alphas = guidance.alphas_cumprod
    torch.testing.assert_close(late, one * (1 - alphas[20]) / (1 - alphas[500]), **tolerance)


def test_classifier_free_guidance_zeroes_both_conditionings(guidance, monkeypatch):
    seen = {}
    real_unet = guidance.unet

    def recording_unet(sample, timestep, encoder_hidden_states):
        seen.update(sample=sample, context=encoder_hidden_states, timestep=timestep)
        return real_unet(sample, timestep, encoder_hidden_states=encoder_hidden_states)

    monkeypatch.setattr(guidance, "unet", recording_unet)
    noisy = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        guided = guidance._predict_noise(noisy, torch.tensor([400, 400]), torch.zeros(2, 4), guidance_scale=5.0)
        conditional, unconditional = real_unet(seen["sample"], seen["timestep"],
                                               encoder_hidden_states=seen["context"]).sample.chunk(2)
    assert seen["sample"].shape == (4, 8, 16, 16) and seen["context"].shape[:2] == (4, 1)
    assert torch.equal(seen["sample"][:2, :4], noisy) and torch.equal(seen["sample"][2:, :4], noisy)
    assert torch.equal(seen["sample"][:2, 4:], guidance.reference_latents.expand(2, -1, -1, -1))
    assert torch.count_nonzero(seen["sample"][2:, 4:]) == 0  # unconditional: zero reference latents
    assert torch.count_nonzero(seen["context"][2:]) == 0  # unconditional: zero context token
    assert torch.count_nonzero(seen["context"][:2]) > 0
    torch.testing.assert_close(guided, unconditional + 5.0 * (conditional - unconditional))


def test_refine_shape_range_and_determinism(guidance):
    images = torch.rand(2, 3, 40, 40)
    views = _views(2)
    first = guidance.refine(images, *views, strength=0.6, steps=3, generator=torch.Generator().manual_seed(1))
    again = guidance.refine(images, *views, strength=0.6, steps=3, generator=torch.Generator().manual_seed(1))
    other = guidance.refine(images, *views, strength=0.6, steps=3, generator=torch.Generator().manual_seed(2))
    assert first.shape == images.shape and first.dtype == torch.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_refine_runs_exactly_the_requested_steps(guidance, monkeypatch):
    calls = []
    predict = guidance._predict_noise

    def counting(noisy_latents, timesteps, *conditioning):
        calls.append(int(timesteps[0]))
        return predict(noisy_latents, timesteps, *conditioning)

    monkeypatch.setattr(guidance, "_predict_noise", counting)
    # DreamGaussian's convention: a 4-step schedule, the first int(4 · 0.5) = 2 steps skipped, 2 run
    guidance.refine(torch.rand(1, 3, 32, 32), 0.0, 45.0, 0.0, strength=0.5, steps=4)
    assert calls == [int(t) for t in refine_timesteps(guidance.scheduler, 0.5, 4)] and len(calls) == 2
    assert calls == [251, 1]  # the published spacing ("leading", steps_offset 1): 751, 501, 251, 1
    calls.clear()
    guidance.refine(torch.rand(1, 3, 32, 32), 0.0, 45.0, 0.0, strength=0.0, steps=4)  # from pure noise
    assert len(calls) == 4
    with pytest.raises(BadInputError):
        guidance.refine(torch.rand(1, 3, 32, 32), 0.0, 0.0, 0.0, strength=1.0)


def test_bad_inputs_carry_the_value(guidance):
    with pytest.raises(BadInputError, match=r"\[3, 32, 32\]"):
        guidance.sds_loss(torch.rand(3, 32, 32), *_views(1), step_ratio=0.1)
    with pytest.raises(BadInputError, match="3"):
        guidance.sds_loss(torch.rand(2, 3, 32, 32), *_views(3), step_ratio=0.1)
    with pytest.raises(BadInputError):
        GuidanceConfig(t_min=0.9, t_max=0.1)


def test_compiled_vae_encoder_is_compiled_once_and_used_only_for_sds(models, monkeypatch):
    """GuidanceConfig.compile_vae_encoder: SDS encodes through one compiled call per loaded VAE, shared by every
    guidance on the models; the reference stays eager; the loss and its gradient are the plain path's. Compiled
    here with the ``aot_eager`` backend (no C compiler on the CPU; the real compiler's numbers:
    tests/test_zero123_gpu.py)."""
    from backend.guidance import zero123_guidance

    encoded = []

    class RecordingCall(zero123_guidance.CompiledCall):
        def __call__(self, *inputs):
            encoded.append(tuple(inputs[0].shape))
            return super().__call__(*inputs)

    torch._dynamo.reset()
    monkeypatch.setattr(zero123_guidance, "CompiledCall", RecordingCall)
    monkeypatch.setattr(zero123_guidance, "inductor_backend_for", lambda device: "aot_eager")
    models.vae.__dict__.pop(zero123_guidance._COMPILED_ENCODER_KEY, None)
    reference = torch.ones(1, 3, 40, 40)
    reference[:, :, 10:30, 12:28] = 0.4
    plain, first, second = (Zero123Guidance(models, GuidanceConfig(seed=3, compile_vae_encoder=on))
                            for on in (False, True, True))
    for guidance in (plain, first, second):
        guidance.set_reference(reference)
    assert encoded == []  # the reference (no gradient) is encoded eagerly

    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    losses, grads = [], []
    for guidance in (plain, first, second):
        renders = images.clone().requires_grad_(True)
        loss = guidance.sds_loss(renders, *_views(2), step_ratio=0.4)
        loss.backward()
        losses.append(loss.detach())
        grads.append(renders.grad)
    call = models.vae.__dict__.pop(zero123_guidance._COMPILED_ENCODER_KEY)
    assert encoded == [(2, 3, models.image_size, models.image_size)] * 2  # both compiled guidances, plain not
    assert call.failure is None and len(call.first_call_seconds) == 1  # one compilation, shared
    for loss, grad in zip(losses[1:], grads[1:], strict=True):
        torch.testing.assert_close(loss, losses[0])
        torch.testing.assert_close(grad, grads[0])
        assert grad.abs().sum() > 0


def test_compiled_vae_encoder_is_skipped_where_inductor_cannot_work(models, monkeypatch):
    """Without Triton (or on the CPU) compile_vae_encoder changes nothing: the plain path, no compile, no error."""
    from backend.guidance import zero123_guidance

    monkeypatch.setattr(zero123_guidance, "inductor_backend_for", lambda device: None)
    models.vae.__dict__.pop(zero123_guidance._COMPILED_ENCODER_KEY, None)
    reference = torch.ones(1, 3, 40, 40)
    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    losses = []
    for on in (False, True):
        guidance = Zero123Guidance(models, GuidanceConfig(seed=3, compile_vae_encoder=on))
        guidance.set_reference(reference)
        losses.append(guidance.sds_loss(images.clone().requires_grad_(True), *_views(2), step_ratio=0.4))
    assert torch.equal(losses[0], losses[1])
    assert zero123_guidance._COMPILED_ENCODER_KEY not in models.vae.__dict__
