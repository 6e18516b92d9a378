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
