"""TripoSR against facts recorded from the official code (tests/facts/README.md), and its loading paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from backend.errors import ModelsUnavailableError
from backend.models.triposr import PUBLISHED, TINY, TripoSR, load_triposr, load_triposr_folder
from backend.models.triposr.config import config_from_yaml_text
from backend.models.triposr.image_tokenizer import interpolate_position_embeddings

FACTS = Path(__file__).parent / "facts"


def _small_model() -> TripoSR:
    model = TripoSR(TINY).eval()
    model.load_state_dict(load_file(str(FACTS / "triposr_small_weights.safetensors")), strict=True)
    return model


def test_state_dict_matches_the_official_published_configuration_key_for_key():
    facts = json.loads((FACTS / "triposr_state_dict.json").read_text())
    with torch.device("meta"):
        model = TripoSR(PUBLISHED)
    ours = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    assert sorted(set(ours) - set(facts["keys"])) == []
    assert sorted(set(facts["keys"]) - set(ours)) == []
    assert ours == facts["keys"]
    assert sum(int(np.prod(s)) for s in ours.values()) == facts["parameter_count"]


def test_published_config_yaml_parses_to_the_fact_configuration():
    facts = json.loads((FACTS / "triposr_state_dict.json").read_text())
    text = yaml.safe_dump(facts["config_yaml"]).replace("dino-vitb16", "facebook/dino-vitb16")
    assert config_from_yaml_text(text) == PUBLISHED


def test_config_yaml_naming_another_class_is_refused_not_imported():
    facts = json.loads((FACTS / "triposr_state_dict.json").read_text())
    raw = dict(facts["config_yaml"], decoder_cls="os.system")
    with pytest.raises(ModelsUnavailableError, match="decoder_cls"):
        config_from_yaml_text(yaml.safe_dump(raw))


def test_outputs_reproduce_the_official_small_model_to_1e_4():
    facts = np.load(FACTS / "triposr_small_outputs.npz")
    model = _small_model()
    image = torch.from_numpy(facts["resized_image"]).permute(2, 0, 1)[None]
    with torch.no_grad():
        tokens = model.image_tokenizer(image)[0].T  # official layout: [C, tokens]
        triplane = model(image)[0]
        field = model.query_field(triplane, torch.from_numpy(facts["points"]))
    np.testing.assert_allclose(tokens.numpy(), facts["image_tokens"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(triplane.numpy(), facts["triplane"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(field.density.numpy(), facts["density"][:, 0], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(field.colour.numpy(), facts["color"], atol=1e-4, rtol=0)
    assert float(np.abs(facts["density"]).max()) > 0.1  # the facts are not trivially zero


def test_position_embeddings_follow_the_trained_scale_factor_interpolation():
    """4×4 → 6×6 with scale (6.1 / 4): not the same as resizing to size 6, which is what current
    transformers does; the weights were trained with the former."""
    torch.manual_seed(0)
    embeddings = torch.randn(1, 17, 8)
    ours = interpolate_position_embeddings(embeddings, 24, 24, 4)
    grid = embeddings[:, 1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
    by_size = torch.nn.functional.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False)
    assert ours.shape == (1, 37, 8)
    assert torch.equal(ours[:, :1], embeddings[:, :1])
    assert not torch.allclose(ours[:, 1:], by_size.permute(0, 2, 3, 1).reshape(1, 36, 8), atol=1e-3)
    assert interpolate_position_embeddings(embeddings, 16, 16, 4) is embeddings  # trained size: unchanged


def _write_folder(folder: Path, model: TripoSR, checkpoint: str) -> None:
    facts = json.loads((FACTS / "triposr_small_config.json").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump(facts["config_yaml"]).replace("small-vit", "facebook/dino-vitb16"))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if checkpoint == "safetensors":
        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "model.ckpt")


@pytest.mark.parametrize("checkpoint", ["safetensors", "ckpt"])
def test_real_loading_reads_config_yaml_and_checkpoint(tmp_path, monkeypatch, checkpoint):
    """The `real` path on a published-layout folder; the small ViT stands in for DINO ViT-B/16."""
    from backend.models.triposr import config as config_module

    monkeypatch.setitem(config_module.KNOWN_VITS, "facebook/dino-vitb16", TINY.vit)
    model = _small_model()
    _write_folder(tmp_path, model, checkpoint)
    loaded = load_triposr_folder(tmp_path, "cpu")
    assert loaded.config == TINY
    image = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.allclose(loaded.model(image), model(image), atol=1e-6)


def test_damaged_checkpoint_is_models_unavailable(tmp_path, monkeypatch):
    from backend.models.triposr import config as config_module

    monkeypatch.setitem(config_module.KNOWN_VITS, "facebook/dino-vitb16", TINY.vit)
    _write_folder(tmp_path, _small_model(), "ckpt")
    (tmp_path / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelsUnavailableError, match="checkpoint"):
        load_triposr_folder(tmp_path, "cpu")


def test_real_mode_offline_without_files_is_exit_4(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGE_TO_3D_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelsUnavailableError) as info:
        load_triposr("real", "cpu")
    assert info.value.exit_code == 4


def test_tiny_mode_is_seeded_and_gives_a_triplane():
    a, b = load_triposr("tiny", "cpu"), load_triposr("tiny", "cpu")
    image = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        out = a.model(image)
        assert torch.equal(out, b.model(image))
    assert out.shape == (2, 3, 8, 8, 8)
    with pytest.raises(ValueError, match="images must be"):
        a.model(torch.rand(1, 3, 32, 32))


@pytest.mark.gpu
def test_outputs_reproduce_the_official_small_model_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    facts = np.load(FACTS / "triposr_small_outputs.npz")
    model = _small_model().cuda()
    image = torch.from_numpy(facts["resized_image"]).permute(2, 0, 1)[None].cuda()
    with torch.no_grad():
        triplane = model(image)[0]
        field = model.query_field(triplane, torch.from_numpy(facts["points"]).cuda())
    np.testing.assert_allclose(triplane.cpu().numpy(), facts["triplane"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(field.colour.cpu().numpy(), facts["color"], atol=1e-4, rtol=0)


@pytest.mark.gpu
def test_full_random_published_model_runs_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    loaded = load_triposr("full-random", "cuda")
    with torch.no_grad():
        triplane = loaded.model(torch.rand(1, 3, 512, 512, device="cuda"))
    assert triplane.shape == (1, 3, 40, 64, 64) and torch.isfinite(triplane).all()
