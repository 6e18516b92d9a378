"""Zero123 parts: tiny forwards, the real on-disk layout round trip, and exit-4 errors."""

from __future__ import annotations

import json

import pytest
import torch

from backend.errors import BadInputError, ModelsUnavailableError
from backend.models import zero123 as zero123_module
from backend.models.mode import ModelMode
from backend.models.zero123 import (
    STABLE_ZERO123_LICENCE_NOTICE,
    Zero123Models,
    load_zero123,
    save_zero123_folder,
)


@pytest.fixture(scope="module")
def tiny() -> Zero123Models:
    return load_zero123(ModelMode.TINY, "cpu")


@pytest.fixture
def tiny_stands_in_for_real(monkeypatch):
    """The real path refuses any working size but Zero123's 256 px; let the tiny folder (32 px) through."""
    monkeypatch.setattr(zero123_module, "ZERO123_IMAGE_SIZE", 32)
    monkeypatch.setattr(zero123_module, "ZERO123_LATENT_SIZE", 16)


def _forward_all(models: Zero123Models):
    """One deterministic forward through every part; returns the outputs."""
    generator = torch.Generator().manual_seed(7)
    side, latent = models.image_size, models.latent_size
    images = torch.rand(2, 3, side, side, generator=generator) * 2 - 1
    clip_in = torch.randn(2, 3, models.clip_image_size, models.clip_image_size, generator=generator)
    with torch.no_grad():
        embeds = models.image_encoder(pixel_values=clip_in).image_embeds  # [2, D]
        cameras = torch.randn(2, 4, generator=generator)
        context = models.clip_camera_projection(torch.cat([embeds, cameras], -1))[:, None]  # [2, 1, D]
        latents = models.vae.encode(images).latent_dist.mean  # [2, 4, h, w]
        unet_in = torch.cat([torch.randn(2, 4, latent, latent, generator=generator), latents], 1)
        noise = models.unet(unet_in, torch.tensor([10, 500]), encoder_hidden_states=context).sample
        decoded = models.vae.decode(latents).sample
    return {"embeds": embeds, "context": context, "latents": latents, "noise": noise, "decoded": decoded}


def test_tiny_parts_run_forward(tiny):
    assert tiny.mode is ModelMode.TINY and tiny.dtype == torch.float32
    assert tiny.unet.config.in_channels == 8  # 4 noisy + 4 reference latents
    out = _forward_all(tiny)
    side, latent = tiny.image_size, tiny.latent_size
    assert out["embeds"].shape == (2, tiny.clip_camera_projection.embedding_dim)
    assert out["context"].shape == (2, 1, tiny.unet.config.cross_attention_dim)
    assert out["latents"].shape == (2, 4, latent, latent)
    assert out["noise"].shape == (2, 4, latent, latent)
    assert out["decoded"].shape == (2, 3, side, side)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert not any(p.requires_grad for p in tiny.unet.parameters())


def test_tiny_is_seeded():
    again = load_zero123(ModelMode.TINY, "cpu")
    first = load_zero123(ModelMode.TINY, "cpu")
    for a, b in zip(first.unet.parameters(), again.unet.parameters(), strict=True):
        assert torch.equal(a, b)


def test_saved_layout_loads_back_through_the_real_path(tiny, tmp_path, tiny_stands_in_for_real):
    folder = save_zero123_folder(tiny, tmp_path / "zero123-xl")
    for sub in ("unet", "vae", "image_encoder", "clip_camera_projection", "scheduler", "feature_extractor"):
        assert (folder / sub).is_dir(), sub
    assert (folder / "clip_camera_projection" / "diffusion_pytorch_model.safetensors").is_file()
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "Zero123Pipeline"

    loaded = load_zero123(ModelMode.REAL, "cpu", local_dir=folder)
    assert loaded.mode is ModelMode.REAL and loaded.licence_notice is None
    assert (loaded.image_size, loaded.latent_size, loaded.clip_image_size) == (32, 16, 32)
    assert loaded.clip_mean == pytest.approx(tiny.clip_mean)
    assert loaded.scheduler.config.beta_schedule == "scaled_linear"
    expected, actual = _forward_all(tiny), _forward_all(loaded)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_missing_folder_is_exit_4(tmp_path):
    with pytest.raises(ModelsUnavailableError) as err:
        load_zero123(ModelMode.REAL, "cpu", local_dir=tmp_path / "nowhere")
    assert "nowhere" in str(err.value) and err.value.exit_code == 4


def test_incomplete_folder_is_exit_4(tmp_path):
    (tmp_path / "vae").mkdir()
    with pytest.raises(ModelsUnavailableError, match="unet"):
        load_zero123(ModelMode.REAL, "cpu", local_dir=tmp_path)


def test_nothing_cached_offline_is_exit_4(monkeypatch):
    monkeypatch.delenv("IMAGE_TO_3D_MODEL_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelsUnavailableError, match="ashawkey/zero123-xl-diffusers"):
        load_zero123(ModelMode.REAL, "cpu")


def test_stable_zero123_is_opt_in_with_licence_notice(tiny, tmp_path, monkeypatch, caplog, tiny_stands_in_for_real):
    monkeypatch.delenv("IMAGE_TO_3D_MODEL_DIR", raising=False)
    with pytest.raises(ModelsUnavailableError, match="diffusers-layout"):
        load_zero123(ModelMode.REAL, "cpu", variant="stable-zero123")
    with pytest.raises(BadInputError):
        load_zero123(ModelMode.TINY, "cpu", variant="stable-zero123")
    with pytest.raises(BadInputError):
        load_zero123(ModelMode.REAL, "cpu", variant="zero123-huge")

    folder = save_zero123_folder(tiny, tmp_path / "stabilityai--stable-zero123")
    monkeypatch.setenv("IMAGE_TO_3D_MODEL_DIR", str(tmp_path))
    with caplog.at_level("WARNING"):
        loaded = load_zero123(ModelMode.REAL, "cpu", variant="stable-zero123")
    assert loaded.variant == "stable-zero123"
    assert loaded.licence_notice == STABLE_ZERO123_LICENCE_NOTICE
    assert loaded.licence_notice.startswith("Stable Zero123 is licensed for non-commercial research use only; see")
    assert STABLE_ZERO123_LICENCE_NOTICE in caplog.text
    assert folder.is_dir()
