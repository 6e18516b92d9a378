"""The CUDA speed-ups of segmentation, checked on the CPU where the maths allows (tiny models, < 10 s).

SDPA attention against segment-anything's own Attention, the float32 LayerNorm2d that fp16 SAM needs, the fp16
models' dtype plumbing (CPU runs fp16 too, slowly), CLIPSeg's padding to 77 tokens, and which cache key and
precision each SegmentConfig gives on CUDA. Timing and graphs themselves: tests/test_segment_gpu.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.image_encoder import Attention

from backend.models import sam_cuda
from backend.models.clipseg import build_tiny_clipseg, clipseg_logits, prepare_clipseg
from backend.models.mode import ModelMode
from backend.models.sam import SamModels, build_tiny_sam
from backend.segment import SegmentConfig, loading
from backend.segment.heatmap import compute_heatmaps
from backend.segment.loading import Precision
from backend.segment.result import FastPrompts
from backend.segment.sam_masks import embed_image, predict_from_prompts

CUDA = torch.device("cuda")  # only a name here: nothing runs on it


def _randomise_rel_pos(module: torch.nn.Module, seed: int = 1) -> None:
    """segment-anything zero-initialises the relative positions, which would hide a wrong bias."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "rel_pos" in name:
                param.copy_(torch.randn(param.shape, generator=generator))


def _count_sdpa_calls(monkeypatch) -> list:
    calls = []
    real = sam_cuda.F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(kwargs.get("attn_mask") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(sam_cuda.F, "scaled_dot_product_attention", counting)
    return calls


@pytest.mark.parametrize("input_size, grid", [
    ((4, 4), (4, 4)),  # a window: the table fits the grid
    ((6, 6), (5, 7)),  # a non-square grid smaller than the table: the table is resized, offsets scaled
])
def test_sdpa_attention_equals_segment_anythings_attention(monkeypatch, input_size, grid):
    torch.manual_seed(0)
    attention = Attention(32, num_heads=2, qkv_bias=True, use_rel_pos=True, input_size=input_size).eval()
    _randomise_rel_pos(attention)
    x = torch.randn(3, *grid, 32)
    with torch.no_grad():
        expected = attention(x)
        calls = _count_sdpa_calls(monkeypatch)
        assert sam_cuda.use_sdpa_attention(attention) == 1
        got = attention(x)
    assert calls == [True]  # the SDPA path ran, with the rel-pos bias as its mask
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_sdpa_image_encoder_equals_the_original_one(monkeypatch):
    sam = build_tiny_sam()
    _randomise_rel_pos(sam)
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = sam.image_encoder(image)
        calls = _count_sdpa_calls(monkeypatch)
        assert sam_cuda.use_sdpa_attention(sam.image_encoder) == 2  # one windowed block, one global
        got = sam.image_encoder(image)
    assert len(calls) == 2
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_float32_layer_norm_2d_survives_fp16_activations_that_overflow_the_original():
    norm = LayerNorm2d(8)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 8))
    x = torch.randn(2, 8, 5, 5) * 600  # deviations past 256: their squares overflow fp16
    expected = norm(x)
    original_fp16 = LayerNorm2d(8).half()
    original_fp16.load_state_dict(norm.state_dict())
    broken = original_fp16(x.half()).float()
    got = sam_cuda.layer_norm_2d_float32(norm, x.half())
    assert got.dtype == torch.float16
    assert not bool(((broken - expected).abs() < 0.5).all())  # what ViT-H's neck hits in plain fp16
    torch.testing.assert_close(got.float(), expected, atol=2e-2, rtol=1e-2)


def test_fp16_sam_runs_the_fast_path_steps_and_stays_close_to_fp32():
    rng = np.random.default_rng(0)
    image = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    reference = build_tiny_sam()
    _randomise_rel_pos(reference)
    half = copy.deepcopy(reference)
    half_models = sam_cuda.prepare_sam(SamModels(half, "tiny", ModelMode.TINY, "tiny", "random"), "cpu",
                                       half=True, sdpa=True, graphs=False)
    model = half_models.model
    assert model.image_encoder.patch_embed.proj.weight.dtype == torch.float16
    assert torch.equal(model.pixel_mean, reference.pixel_mean)  # preprocessing stays float32, exact
    norms = [(m, r) for m, r in zip(model.modules(), reference.modules(), strict=True) if isinstance(m, LayerNorm2d)]
    assert len(norms) == 5 and all(torch.equal(m.weight, r.weight) and torch.equal(m.bias, r.bias) for m, r in norms)

    expected, got = SamPredictor(reference), SamPredictor(model)
    embed_image(expected, image, autocast=False)
    embed_image(got, image, autocast=False)  # fp16 weights: no autocast, input cast on entry
    assert got.features.dtype == torch.float16
    scale = float(expected.features.abs().max())
    assert float((got.features.float() - expected.features).abs().max()) < 0.01 * scale

    prompts = [FastPrompts((5.0, 5.0, 40.0, 30.0), np.array([[20.0, 15.0]], np.float32),
                           np.array([[60.0, 45.0]], np.float32))]
    masks_expected, iou_expected = predict_from_prompts(expected, prompts, autocast=False)
    masks, iou = predict_from_prompts(got, prompts, autocast=True)  # the decoder mixes dtypes under autocast
    assert masks.dtype == torch.bool and masks.shape == masks_expected.shape == (1, 3, 48, 64)
    assert iou.dtype == torch.float32
    assert float((masks == masks_expected).float().mean()) > 0.99


def test_fp16_clipseg_heatmaps_agree_with_fp32():
    image = torch.rand(3, 40, 56)
    prompts = ["a cup", "the saucer"]
    expected = compute_heatmaps(build_tiny_clipseg(seed=0), image, prompts)
    half = prepare_clipseg(build_tiny_clipseg(seed=0), "cpu", half=True, graphs=False)
    assert next(half.model.parameters()).dtype == torch.float16 and half.graphs is None
    got = compute_heatmaps(half, image, prompts)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    # random logits are large and steep, so a few pixels at the 0/1 flip move; the rest agree closely
    assert float((got - expected).abs().mean()) < 0.01
    assert float(((got > 0.4) == (expected > 0.4)).float().mean()) > 0.99


@pytest.mark.parametrize("legacy_eos", [False, True])
def test_padding_to_clips_full_context_without_a_mask_changes_nothing(legacy_eos):
    """The graph path pads every prompt to 77 tokens and drops the padding mask: causal attention and pooling at
    the first end-of-text token ignore the padding. ``legacy_eos``: configs with eos_token_id 2 (CIDAS' own, from
    before transformers PR #24773) pool at the largest token id instead, the first end-of-text token too."""
    clipseg = build_tiny_clipseg()
    if legacy_eos:
        clipseg.model.clip.text_model.eos_token_id = 2
    prompts = ["a cup", "the saucer on the wooden table"]
    pixels = torch.randn(2, 3, clipseg.image_size, clipseg.image_size)
    longest = clipseg.tokenizer(prompts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    full = clipseg.tokenizer(prompts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    assert full["input_ids"].shape == (2, 77) and longest["input_ids"].shape[1] < 77
    with torch.inference_mode():
        expected = clipseg_logits(clipseg.model, longest["input_ids"], pixels, longest["attention_mask"])
        got = clipseg_logits(clipseg.model, full["input_ids"], pixels)
    scale = float(expected.abs().max())
    assert float((got - expected).abs().max()) < 1e-5 * scale


def test_precision_on_cpu_is_float32_as_loaded_whatever_the_config():
    for config in (SegmentConfig(), SegmentConfig(half=False), SegmentConfig(half_weights=False)):
        precision = Precision.of(config, torch.device("cpu"))
        assert precision == Precision(False, False, False, False, False)
        assert precision.dtype_name == "float32" and not precision.changes_models


@pytest.mark.parametrize("fields, expected", [
    ({}, Precision(half_weights=True, encoder_autocast=False, decoder_autocast=True, sdpa_attention=True,
                   cuda_graphs=True)),
    ({"half_weights": False, "sdpa_attention": False, "cuda_graphs": False},  # the earlier path
     Precision(False, True, True, False, False)),
    ({"half_weights": False}, Precision(False, True, True, True, False)),  # no graph under autocast
    ({"half": False}, Precision(False, False, False, True, True)),  # plain fp32 can be graphed
])
def test_precision_on_cuda_follows_the_config(fields, expected):
    assert Precision.of(SegmentConfig(**fields), CUDA) == expected


def test_cache_keys_keep_fp16_fp32_and_patched_copies_apart(monkeypatch):
    monkeypatch.setattr(loading, "get_or_load", lambda key, load: key)  # the key, nothing loaded
    keys = {}
    for name, fields in {"new": {}, "old": {"half_weights": False, "sdpa_attention": False, "cuda_graphs": False},
                         "sdpa_only": {"half_weights": False, "cuda_graphs": False}}.items():
        config = SegmentConfig(models=ModelMode.FULL_RANDOM, **fields)
        keys[name] = (loading.load_sam_cached(ModelMode.FULL_RANDOM, config, CUDA),
                      loading.load_clipseg_cached(ModelMode.FULL_RANDOM, config, CUDA))
    assert [k.dtype for k in keys["new"]] == ["float16", "float16"]
    assert [k.speedups for k in keys["new"]] == ["sdpa+graphs", "graphs"]
    assert [(k.dtype, k.speedups) for k in keys["old"]] == [("float32", ""), ("float32", "")]
    assert keys["sdpa_only"][0] not in (keys["old"][0], keys["new"][0])
    cpu = loading.load_sam_cached(ModelMode.TINY, SegmentConfig(), torch.device("cpu"))
    assert (cpu.dtype, cpu.speedups, cpu.variant) == ("float32", "", "tiny")
