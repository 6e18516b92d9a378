"""backend.segment.sam3_static against transformers' Sam3Model.forward (the reference), tiny models on the CPU;
CUDA graphs of the same path against the plain path on CUDA (gpu marker)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.mode import ModelMode
from backend.models.sam3 import MAX_PROMPT_TOKENS, build_tiny_sam3, tiny_sam3_config
from backend.segment.sam3_config import BoxPrompt, Sam3SegmentConfig
from backend.segment.sam3_readback import bools_to_host, read_answer
from backend.segment.sam3_segmenter import ConceptSegmenter, load_sam3_cached
from backend.segment.sam3_static import PromptDecoding, StaticPromptDecoder, group_norm, static_decoder_for

PROMPTS = ["a red mug", "cat", "the small wooden spoon on the left of the plate"]  # three padding lengths


def _eager_tiny_model():
    """The tiny model built with eager attention (additive float masks instead of SDPA's bool masks)."""
    from transformers import Sam3Model

    tiny = build_tiny_sam3(seed=1)
    config = tiny_sam3_config(tiny.model.config.text_config.vocab_size, tiny.model.config.text_config.bos_token_id,
                              tiny.model.config.text_config.eos_token_id)
    config._attn_implementation = "eager"
    torch.manual_seed(1)
    return Sam3Model(config).eval(), tiny.tokenizer


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_static_decoding_matches_sam3_forward(attention):
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

    if attention == "sdpa":
        tiny = build_tiny_sam3(seed=1)
        model, tokenizer = tiny.model, tiny.tokenizer
    else:
        model, tokenizer = _eager_tiny_model()
    assert model.config._attn_implementation == attention
    decoder = StaticPromptDecoder(model, tokenizer, MAX_PROMPT_TOKENS, graphs=False)
    pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    count = len(PROMPTS)
    with torch.inference_mode():
        vision = model.get_vision_features(pixel_values=pixels)
        tokens = tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=MAX_PROMPT_TOKENS,
                           return_tensors="pt")
        assert len(set(tokens["attention_mask"].sum(1).tolist())) == count  # the padding masks differ
        expanded = Sam3VisionEncoderOutput(
            last_hidden_state=vision.last_hidden_state.expand(count, -1, -1),
            fpn_hidden_states=tuple(t.expand(count, -1, -1, -1) for t in vision.fpn_hidden_states),
            fpn_position_encoding=tuple(t.expand(count, -1, -1, -1) for t in vision.fpn_position_encoding))
        reference = model(vision_embeds=expanded, input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        ours_vision = decoder.vision_features(pixels)
        text, valid = decoder.text_features(PROMPTS, torch.device("cpu"))
        ours = decoder.decode(text, valid, ours_vision)
    torch.testing.assert_close(ours.presence_logits, reference.presence_logits[:, 0])
    torch.testing.assert_close(ours.logits, reference.pred_logits)
    torch.testing.assert_close(ours.boxes, reference.pred_boxes)
    torch.testing.assert_close(ours.masks, reference.pred_masks)
    torch.testing.assert_close(ours.semantic, reference.semantic_seg)
    assert ours.logits.std() > 0  # the comparison compared something


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_group_norm_matches_torchs(dtype):
    generator = torch.Generator().manual_seed(5)
    norm = torch.nn.GroupNorm(8, 32)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(32, generator=generator))
        norm.bias.copy_(torch.randn(32, generator=generator))
    # an offset per channel far above the spread: a one-pass E[x²] - E[x]² would lose the variance
    x = torch.randn(1, 32, 64, 64, generator=generator) * 0.5 + torch.linspace(-20, 20, 32)[None, :, None, None]
    x, norm = x.to(dtype), norm.to(dtype)  # the reference sees the same rounded inputs
    with torch.inference_mode():
        got = group_norm(x, norm)
        expected = torch.nn.functional.group_norm(x.double(), 8, norm.weight.double(), norm.bias.double(), norm.eps)
    assert got.dtype == dtype and got.shape == x.shape
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-5)
    else:  # within one bf16 rounding of the exact value
        error = (got.double() - expected).abs()
        assert bool((error <= expected.abs() * 2.0 ** -8 + 1e-6).all()), float(error.max())


@pytest.mark.parametrize("size", [(7, 13), (683, 1023), (1, 1), (16, 16)], ids=str)
def test_packed_mask_read_back_gives_the_same_bools(size):
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 9, 11, generator=generator)
    threshold = torch.nn.functional.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0] > 0
    expected = threshold.numpy()
    got = bools_to_host(threshold, packed=True)  # the CUDA route (bytes packed on the device), here on the CPU
    assert got.dtype == bool and got.shape == expected.shape and np.array_equal(got, expected)
    assert 0 < expected.sum() < expected.size  # both values occur


def _raw_decoding(prompts: int = 2, queries: int = 6, side: int = 6) -> PromptDecoding:
    generator = torch.Generator().manual_seed(7)
    return PromptDecoding(presence_logits=torch.randn(prompts, generator=generator),
                          logits=torch.randn(prompts, queries, generator=generator),
                          boxes=torch.rand(prompts, queries, 4, generator=generator),
                          masks=torch.randn(prompts, queries, side, side, generator=generator),
                          semantic=torch.randn(prompts, 1, side, side, generator=generator))


@pytest.mark.parametrize("masks_with_scores", [False, True], ids=["masks-after", "masks-with-scores"])
def test_kept_masks_are_the_kept_rows_in_order(masks_with_scores):
    raw = _raw_decoding()
    answer = read_answer(raw, 4, (9, 15), 0.5, masks_with_scores)  # 9 × 15 = 135 bits: rows end mid-byte
    assert (answer.mask_bits is not None) == masks_with_scores
    order = (raw.logits.sigmoid() * raw.presence_logits.sigmoid()[:, None]).argsort(dim=1, descending=True)
    keep = torch.tensor([[True, True, False, False], [True, False, False, False]])
    got = answer.kept_masks(keep)
    top = raw.masks.gather(1, order[:, :4, None, None].expand(-1, -1, 6, 6))
    scaled = torch.nn.functional.interpolate(top[keep][None], size=(9, 15), mode="bilinear", align_corners=False)[0]
    assert got.dtype == bool and np.array_equal(got, (scaled > 0).numpy())
    assert 0 < got.sum() < got.size
    assert answer.kept_masks(keep & False).shape == (0, 9, 15)
    torch.testing.assert_close(answer.presence, raw.presence_logits.sigmoid())
    torch.testing.assert_close(answer.boxes, raw.boxes.gather(1, order[:, :4, None].expand(-1, -1, 4)))


def _segmenters(**settings):
    models = load_sam3_cached(ModelMode.TINY, Sam3SegmentConfig(), torch.device("cpu"), torch.float32)
    plain = ConceptSegmenter(models, Sam3SegmentConfig(static_decoding=False, **settings), torch.device("cpu"))
    static = ConceptSegmenter(models, Sam3SegmentConfig(static_decoding=True, **settings), torch.device("cpu"))
    return plain, static


@pytest.mark.parametrize("settings", [dict(max_instances=5), dict(max_instances=3, prompts_per_batch=2),
                                      dict(instance_threshold=0.2501, presence_threshold=0.3)],
                         ids=["top-5", "batches-of-2", "thresholds"])
def test_static_segmenter_gives_the_plain_segmenters_instances(settings):
    plain, static = _segmenters(**settings)
    rgb = np.random.default_rng(2).random((40, 60, 3), dtype=np.float32)
    answers = []
    for segmenter in (plain, static):
        segmenter.set_image(rgb, photo_size=(80, 120))
        answers.append(segmenter.segment(PROMPTS))
    kept = 0
    for ref, ours in zip(*answers, strict=True):
        assert ours.prompt == ref.prompt and ours.working_size == ref.working_size
        assert ours.presence == pytest.approx(ref.presence, abs=1e-6)
        assert ours.best_score == pytest.approx(ref.best_score, abs=1e-6)
        np.testing.assert_allclose(ours.semantic, ref.semantic, atol=1e-3)  # float16 on the way back
        assert ours.semantic.dtype == np.float32 and ours.semantic.shape == ref.semantic.shape
        assert len(ours.instances) == len(ref.instances)
        for a, b in zip(ref.instances, ours.instances, strict=True):
            assert b.score == pytest.approx(a.score, abs=1e-6)
            np.testing.assert_allclose(b.box, a.box, atol=1e-3)
            assert b.mask.dtype == bool and np.array_equal(a.mask, b.mask)
        kept += len(ours.instances)
    assert kept > 0


def test_repeated_phrase_skips_the_text_encoder_and_answers_the_same():
    _, static = _segmenters()
    decoder = static_decoder_for(static.models)
    static.set_image(np.random.default_rng(3).random((32, 32, 3), dtype=np.float32))
    before = decoder.text_encoder_runs
    first = static.segment(["a phrase never seen before 1"])[0]
    assert decoder.text_encoder_runs == before + 1
    again = static.segment(["a phrase never seen before 1", "a phrase never seen before 1"])
    assert decoder.text_encoder_runs == before + 1  # both from the cache
    for answer in again:
        assert answer.presence == first.presence and answer.best_score == first.best_score
        assert all(np.array_equal(a.mask, b.mask) for a, b in zip(first.instances, answer.instances, strict=True))


def test_exemplar_boxes_take_the_plain_forward():
    plain, static = _segmenters(max_instances=4)
    rgb = np.random.default_rng(4).random((40, 40, 3), dtype=np.float32)
    boxes = (BoxPrompt((2.0, 2.0, 20.0, 20.0)), BoxPrompt((25.0, 5.0, 38.0, 30.0), positive=False))
    answers = []
    for segmenter in (plain, static):
        segmenter.set_image(rgb)
        answers.append(segmenter.segment(["a red mug"], boxes)[0])
    assert answers[0].presence == pytest.approx(answers[1].presence, abs=1e-6)
    assert [i.score for i in answers[0].instances] == pytest.approx([i.score for i in answers[1].instances], abs=1e-6)


def test_a_batch_larger_than_the_text_cache_still_gets_every_prompts_features():
    tiny = build_tiny_sam3(seed=1)
    roomy = StaticPromptDecoder(tiny.model, tiny.tokenizer, MAX_PROMPT_TOKENS, graphs=False)
    cramped = StaticPromptDecoder(tiny.model, tiny.tokenizer, MAX_PROMPT_TOKENS, graphs=False)
    cramped.text_cache.max_prompts = 1
    with torch.inference_mode():
        expected, expected_valid = roomy.text_features(PROMPTS, torch.device("cpu"))
        got, got_valid = cramped.text_features(PROMPTS, torch.device("cpu"))
    torch.testing.assert_close(got, expected)
    assert torch.equal(got_valid, expected_valid) and len(cramped.text_cache.entries) == 1


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graphs_replay_the_static_path(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cuda = torch.device("cuda")
    models = load_sam3_cached(ModelMode.TINY, Sam3SegmentConfig(), cuda, dtype)
    plain = ConceptSegmenter(models, Sam3SegmentConfig(static_decoding=False, max_instances=4), cuda, dtype)
    graphed = ConceptSegmenter(models, Sam3SegmentConfig(max_instances=4), cuda, dtype, graphs=True)
    decoder = graphed.static_decoder
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    for seed in range(3):  # a new photo and new phrases each time: the replays read fresh inputs
        rgb = np.random.default_rng(seed).random((48, 64, 3), dtype=np.float32)
        prompts = [f"a red mug {seed}", "cat"]
        answers = []
        for segmenter in (plain, graphed):
            segmenter.set_image(rgb)
            answers.append(segmenter.segment(prompts))
            # between replays, the plain forward (exemplar boxes) refills transformers' own lru caches of
            # coordinate grids and position encodings: the graphs must not depend on what those caches hold
            segmenter.segment(["a box"], [BoxPrompt((2.0, 2.0, 30.0, 30.0))])
        for ref, ours in zip(*answers, strict=True):
            assert ours.presence == pytest.approx(ref.presence, abs=tolerance)
            assert ours.best_score == pytest.approx(ref.best_score, abs=tolerance)
            np.testing.assert_allclose(ours.semantic, ref.semantic, atol=tolerance * 10)
            if dtype == torch.float32:  # the plain path scales the kept masks; ours packs all top masks in one copy
                assert len(ours.instances) == len(ref.instances)
                for a, b in zip(ref.instances, ours.instances, strict=True):
                    assert a.mask.shape == b.mask.shape and np.mean(a.mask == b.mask) > 0.999
    for cache in (decoder._vision, decoder._text, decoder._decode):
        assert cache.graphs and not cache.eager_signatures  # captured, and never fell back to eager


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_group_norm_on_cuda_matches_torchs_at_the_finest_level(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    generator = torch.Generator(device="cuda").manual_seed(8)
    x = torch.randn(1, 256, 288, 288, device="cuda", generator=generator).to(dtype) * 3 + 1  # SAM 3's finest level
    norm = torch.nn.GroupNorm(8, 256).to("cuda", dtype)
    with torch.no_grad():
        norm.weight.normal_(generator=generator)
        norm.bias.normal_(generator=generator)
    with torch.inference_mode():
        got = group_norm(x, norm)
        expected = torch.nn.functional.group_norm(x.double(), 8, norm.weight.double(), norm.bias.double(), norm.eps)
    error = (got.double() - expected).abs()
    tolerance = 1e-5 if dtype == torch.float32 else 2.0 ** -8 if dtype == torch.bfloat16 else 2.0 ** -10
    assert bool((error <= expected.abs() * tolerance + 1e-5).all()), float(error.max())


@pytest.mark.gpu
def test_packed_mask_read_back_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    bits = torch.rand(20, 683, 1023, device="cuda") > 0.5
    got = bools_to_host(bits, packed=True)
    assert got.dtype == bool and np.array_equal(got, bits.cpu().numpy())
