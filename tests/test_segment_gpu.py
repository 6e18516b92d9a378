"""Segmentation speed with real-size random weights in fp16 on CUDA (run by the lead: pytest -m gpu -s).

Targets on an H100 (DESIGN/issue 3): fast mode ≤ 0.10 s for the first prompt of an image including its
embedding, ≤ 0.03 s per further prompt; paper mode ≤ 1.0 s per image. Random weights make the masks
meaningless but the work the same size; threshold 0 keeps every region so nothing short-circuits.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

PROMPTS = ["a coffee cup", "the saucer", "a silver spoon", "the wooden table", "a shadow", "the handle"]


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_full_random_models_fp16_on_cuda(bundled_photo, mode):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from backend.images import LoadedImage, load_image, resize_rgb
    from backend.models.mode import ModelMode
    from backend.segment import SegmentConfig, segment_image

    photo = load_image(bundled_photo)
    # a 1024 x 683 photo: SAM's full input size, as a typical phone photo ends up after the early downscale
    image = LoadedImage(resize_rgb(photo.rgb, 683, 1024), None, photo.path)
    config = SegmentConfig(mode=mode, sam_variant="vit_h", threshold=0.0, models=ModelMode.FULL_RANDOM,
                           device="cuda", half=True)
    segment_image(image, PROMPTS[:2], config)  # warm-up: builds the models, autotunes kernels

    def timed(prompts):
        torch.cuda.synchronize()
        start = time.perf_counter()
        results = segment_image(image, prompts, config)
        torch.cuda.synchronize()
        return results, time.perf_counter() - start

    one, one_s = min((timed(PROMPTS[:1]) for _ in range(3)), key=lambda r: r[1])
    many, many_s = min((timed(PROMPTS) for _ in range(3)), key=lambda r: r[1])
    further = (many_s - one_s) / (len(PROMPTS) - 1)
    print(f"\n[{mode}] {torch.cuda.get_device_name()} vit_h fp16, image 1024x683:")
    print(f"  1 prompt: {one_s:.3f} s   {len(PROMPTS)} prompts: {many_s:.3f} s   "
          f"per further prompt: {further:.3f} s   per prompt amortised: {many_s / len(PROMPTS):.3f} s")
    print("  stage times of the first prompt (shared stages divided by the prompt count):")
    for stage, seconds in many[0].timings.items():
        print(f"    {stage:>22}: {seconds * 1000:8.1f} ms")
    print(f"  peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    for result in [*one, *many]:
        assert result.mask.shape == (683, 1024) and result.mask.dtype == np.bool_ and result.mask.any()
        assert result.heatmap.dtype == np.float32 and np.isfinite(result.heatmap).all()
    assert [r.prompt for r in many] == PROMPTS


def _randomise_rel_pos(model: torch.nn.Module) -> None:
    """Random SAM keeps segment-anything's zero relative positions; give them values so the bias is exercised."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "rel_pos" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)


def _assert_heatmaps_agree(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Random CLIPSeg's logits run to the thousands, so a few pixels at the 0/1 flip move with fp16 rounding."""
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert float((got - expected).abs().mean()) < 0.01
    assert float(((got > 0.4) == (expected > 0.4)).float().mean()) > 0.99


@pytest.mark.gpu
def test_clipseg_fp16_graph_heatmaps_agree_with_fp32_eager(bundled_photo):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from backend.images import load_image
    from backend.models.clipseg import load_clipseg, prepare_clipseg
    from backend.models.mode import ModelMode
    from backend.segment.heatmap import compute_heatmaps

    image = torch.from_numpy(load_image(bundled_photo).rgb).permute(2, 0, 1).cuda()
    reference = load_clipseg(ModelMode.FULL_RANDOM, "cuda")  # fp32 weights, eager, no autocast
    fast = prepare_clipseg(load_clipseg(ModelMode.FULL_RANDOM, "cpu"), "cuda", half=True, graphs=True)
    assert next(fast.model.parameters()).dtype == torch.float16
    # two prompt counts, then the 2-prompt graph again with other text: replays must pick up the new tokens
    for prompts in (PROMPTS[:1], PROMPTS[:2], PROMPTS[2:4]):
        _assert_heatmaps_agree(compute_heatmaps(fast, image, prompts), compute_heatmaps(reference, image, prompts))
    assert len(fast.graphs.graphs) == 2 and not fast.graphs.eager_signatures  # captured, not fallen back


@pytest.mark.gpu
def test_sam_fp16_sdpa_graph_embedding_agrees_with_fp32(bundled_photo):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from segment_anything import SamPredictor

    from backend.images import load_image, to_uint8
    from backend.models.mode import ModelMode
    from backend.models.sam import load_sam
    from backend.models.sam_cuda import prepare_sam
    from backend.segment.sam_masks import embed_image

    photo = to_uint8(load_image(bundled_photo).rgb)
    reference = load_sam(ModelMode.FULL_RANDOM, "vit_h", "cuda")  # fp32 weights, original attention, eager
    fast = load_sam(ModelMode.FULL_RANDOM, "vit_h", "cpu")
    _randomise_rel_pos(reference.model)
    _randomise_rel_pos(fast.model)
    fast = prepare_sam(fast, "cuda", half=True, sdpa=True, graphs=True)
    for image in (photo, np.ascontiguousarray(photo[::-1])):  # the second replays the graph with new pixels
        expected, got = SamPredictor(reference.model), SamPredictor(fast.model)
        embed_image(expected, image, autocast=False)
        embed_image(got, image, autocast=False)
        a, b = expected.features.double().flatten(), got.features.double().flatten()
        assert got.features.dtype == torch.float16 and bool(torch.isfinite(b).all())
        assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) > 0.999
        assert float((a - b).abs().max() / a.abs().max()) < 0.05
    graphs = fast.model.image_encoder.forward.run
    assert len(graphs.graphs) == 1 and not graphs.eager_signatures  # captured, not fallen back
    del reference, fast
    torch.cuda.empty_cache()


@pytest.mark.gpu
def test_fast_mode_with_speedups_agrees_with_the_earlier_path(bundled_photo):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from backend.images import load_image
    from backend.models.loaded import clear_loaded_models
    from backend.models.mode import ModelMode
    from backend.segment import SegmentConfig
    from backend.segment.api import run_segmentation

    photo = load_image(bundled_photo)
    common = dict(mode="fast", models=ModelMode.FULL_RANDOM, device="cuda", half=True)
    earlier = SegmentConfig(**common, half_weights=False, sdpa_attention=False, cuda_graphs=False)
    results = {}
    for name, config in (("earlier", earlier), ("new", SegmentConfig(**common))):
        for _ in range(2):  # the second call replays the graphs captured by the first
            results[name], info = run_segmentation(photo, PROMPTS[:2], config, allow_empty=True)
        assert info.half
    for old, new in zip(results["earlier"], results["new"], strict=True):
        _assert_heatmaps_agree(torch.from_numpy(new.heatmap), torch.from_numpy(old.heatmap))
        assert new.mask.shape == old.mask.shape == photo.size and new.mask.dtype == np.bool_
    clear_loaded_models()
    torch.cuda.empty_cache()
