"""backend.segment.sam3_compile (on backend.torch_compile): the static path's text encoder and decoding through torch.compile give the plain
static path's numbers (tiny model on the CPU, the ``aot_eager`` backend: no C++ compiler needed), a failing
compile falls back to the plain calls with one warning, and the backend choice by device and Triton."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from backend import torch_compile
from backend.errors import BadInputError
from backend.images import LoadedImage
from backend.models.mode import ModelMode
from backend.models.sam3 import MAX_PROMPT_TOKENS, build_tiny_sam3
from backend.private_dirs import user_cache_dir
from backend.segment import sam3_segmenter
from backend.segment.sam3_compile import compile_backend_for, one_prompt
from backend.segment.sam3_config import Sam3SegmentConfig
from backend.segment.sam3_segmenter import ConceptSegmenter, load_sam3_cached, segment_concepts
from backend.segment.sam3_static import StaticPromptDecoder
from backend.torch_compile import CompiledCall

PROMPTS = ["a red mug", "the small wooden spoon on the left of the plate"]


def _decoders(compile_backend):
    tiny = build_tiny_sam3(seed=1)
    plain = StaticPromptDecoder(tiny.model, tiny.tokenizer, MAX_PROMPT_TOKENS, graphs=False)
    compiled = StaticPromptDecoder(tiny.model, tiny.tokenizer, MAX_PROMPT_TOKENS, graphs=False,
                                   compile_backend=compile_backend)
    return plain, compiled


def _answers(decoder: StaticPromptDecoder, pixels: torch.Tensor, prompts: list[str]):
    with torch.inference_mode():
        vision = decoder.vision_features(pixels)
        text, valid = decoder.text_features(prompts, torch.device("cpu"))
        return text, decoder.decode(text, valid, vision)


def test_compiled_static_path_gives_the_plain_static_paths_numbers():
    torch._dynamo.reset()
    plain, compiled = _decoders("aot_eager")
    for seed, prompts in ((0, PROMPTS[:1]), (1, PROMPTS[1:]), (2, PROMPTS)):  # two prompts: the plain calls
        pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(seed))
        expected_text, expected = _answers(plain, pixels, prompts)
        got_text, got = _answers(compiled, pixels, prompts)
        torch.testing.assert_close(got_text, expected_text)
        for name in ("presence_logits", "logits", "boxes", "masks", "semantic"):
            torch.testing.assert_close(getattr(got, name), getattr(expected, name), atol=1e-5, rtol=1e-5)
        assert expected.logits.std() > 0  # the comparison compared something
    text_call, decode_call = compiled.compiled
    assert text_call.failure is None and decode_call.failure is None
    assert decode_call.compile_seconds > 0
    assert [key[0][0][0] for key in decode_call.first_call_seconds] == [1]  # compiled for one prompt only


def _refusing_backend(graph_module, example_inputs):
    raise RuntimeError("this backend compiles nothing")


def test_a_failing_compile_falls_back_to_the_plain_calls_with_one_warning(caplog):
    torch._dynamo.reset()
    plain, compiled = _decoders(_refusing_backend)
    pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(2))
    expected_text, expected = _answers(plain, pixels, PROMPTS[:1])
    with caplog.at_level(logging.WARNING, logger=torch_compile.__name__):
        got_text, got = _answers(compiled, pixels, PROMPTS[:1])  # compiling fails here: the plain calls answer
        _answers(compiled, pixels, ["another phrase"])  # straight to the plain calls: no second warning
    torch.testing.assert_close(got_text, expected_text)
    torch.testing.assert_close(got.logits, expected.logits)
    torch.testing.assert_close(got.masks, expected.masks)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # one line for each compiled call (the text encoder, the decoding)
    assert all("this backend compiles nothing" in w and "uncompiled" in w for w in warnings)
    assert all(call.failure and "this backend compiles nothing" in call.failure for call in compiled.compiled)


def test_out_of_memory_while_compiling_is_raised_not_hidden():
    def out_of_memory(*inputs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    call = CompiledCall(lambda x: x + 1, "test", "eager")
    call.compiled = out_of_memory
    with pytest.raises(torch.cuda.OutOfMemoryError):
        call(torch.zeros(1, 2))
    assert call.failure is None


class _GraphThatCannotHoldCompiledCode:
    """Stands in for backend.cuda_graph.CudaGraph on the CPU: runs ``fn`` as a capture would, and fails as a
    capture of compiled code with a pageable host copy does."""

    captured: list[bool] = []

    def __init__(self, fn, inputs):
        compiled = fn.compiling(inputs)
        fn(*inputs)
        if compiled:
            raise RuntimeError("Cannot copy between CPU and CUDA tensors during CUDA graph capture unless the CPU "
                               "tensor is pinned")
        type(self).captured.append(compiled)


def test_compiled_code_a_graph_cannot_capture_gives_way_to_the_plain_call(monkeypatch, caplog):
    monkeypatch.setattr(torch_compile, "CudaGraph", _GraphThatCannotHoldCompiledCode)
    _GraphThatCannotHoldCompiledCode.captured = []
    call = CompiledCall(lambda x: x * 2, "test", "eager", wanted=one_prompt)
    with caplog.at_level(logging.WARNING, logger=torch_compile.__name__):
        graph = call.graph_capture(call, [torch.ones(1, 3)])
    assert isinstance(graph, _GraphThatCannotHoldCompiledCode) and graph.captured == [False]  # the plain call's
    assert call.failure and "cannot capture" in call.failure and "pinned" in call.failure
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_a_graph_capture_failure_of_the_plain_call_is_left_to_graph_cache(monkeypatch):
    def never_captures(fn, inputs):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(torch_compile, "CudaGraph", never_captures)
    call = CompiledCall(lambda x: x * 2, "test", "eager", wanted=one_prompt)
    with pytest.raises(RuntimeError, match="not permitted"):
        call.graph_capture(call, [torch.ones(2, 3)])  # two prompts: the plain call, nothing to give up
    assert call.failure is None


def test_compile_backend_by_device_mode_and_triton(monkeypatch, tmp_path):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert compile_backend_for(cpu, "default") is None  # the CPU runs the plain calls
    assert compile_backend_for(cuda, "off") is None
    monkeypatch.setattr(torch_compile, "_triton_usable", lambda: False)
    assert compile_backend_for(cuda, "default") is None  # no Triton (Windows, macOS): plain, no error
    monkeypatch.setattr(torch_compile, "_triton_usable", lambda: True)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_backend_for(cuda, "max-autotune-no-cudagraphs") == "inductor"
    assert torch_compile.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(user_cache_dir() / "torchinductor")
    assert (user_cache_dir() / "torchinductor").is_dir()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    compile_backend_for(cuda, "default")
    assert torch_compile.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")  # the user's choice stays


@pytest.mark.parametrize("missing", ["triton", "c compiler"])
def test_missing_triton_or_its_compiler_is_said_once(monkeypatch, caplog, missing):
    if missing == "triton":
        monkeypatch.setattr(torch_compile.importlib.util, "find_spec", lambda name: None)
    else:
        monkeypatch.setattr(torch_compile.importlib.util, "find_spec", lambda name: object())
        monkeypatch.setattr(torch_compile.sys, "platform", "linux")
        monkeypatch.delenv("CC", raising=False)
        monkeypatch.setattr(torch_compile.shutil, "which", lambda name: None)
    torch_compile._triton_usable.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger=torch_compile.__name__):
            assert not torch_compile._triton_usable() and not torch_compile._triton_usable()
    finally:
        torch_compile._triton_usable.cache_clear()
    said = [r.getMessage() for r in caplog.records if "uncompiled" in r.getMessage()]
    assert len(said) == 1 and (missing == "triton") == ("Triton is not installed" in said[0])


def test_compile_mode_is_checked():
    with pytest.raises(BadInputError, match="compile mode"):
        Sam3SegmentConfig(compile_mode="reduce-overhead")  # inductor's own CUDA graphs: not with ours
    assert Sam3SegmentConfig().compile_mode == "off"  # 52 s at a process's first prompt for 1.9 ms a prompt
    assert Sam3SegmentConfig(compile_mode="default") == Sam3SegmentConfig()  # how it runs, not what it answers


def test_segment_concepts_compiles_once_reports_its_time_and_answers_as_uncompiled(monkeypatch):
    cpu = torch.device("cpu")
    models = load_sam3_cached(ModelMode.TINY, Sam3SegmentConfig(), cpu, torch.float32)
    asked = Sam3SegmentConfig(compile_mode="default")
    assert ConceptSegmenter(models, asked, cpu).static_decoder.compiled == ()  # the CPU: plain
    torch._dynamo.reset()
    # the CUDA wiring on the CPU: what compile_backend_for picks there, with a backend that needs no compiler
    monkeypatch.setattr(sam3_segmenter, "compile_backend_for", lambda device, mode: None if mode == "off" else "aot_eager")
    photo = LoadedImage(np.random.default_rng(5).random((30, 40, 3), dtype=np.float32), None, "photo.png")
    config = Sam3SegmentConfig(max_instances=3, compile_mode="default")

    def run(settings: Sam3SegmentConfig, prompt: str):
        return segment_concepts(photo, [prompt], settings, ModelMode.TINY, cpu, half=False, max_side=40)

    first, again = run(config, "a red mug"), run(config, "a blue mug")
    assert first.shared_seconds["sam3_compile"] > 0 and "sam3_compile" not in again.shared_seconds  # once
    plain = run(replace(config, compile_mode="off"), "a red mug")
    assert "sam3_compile" not in plain.shared_seconds
    assert plain.scores == pytest.approx(first.scores, abs=1e-6) and np.array_equal(plain.masks[0], first.masks[0])
    ours, ref = first.segmentations[0], plain.segmentations[0]
    assert ours.presence == pytest.approx(ref.presence, abs=1e-6) and len(ours.instances) == len(ref.instances) > 0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_and_graphed_static_path_matches_the_plain_static_path_on_cuda(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cuda = torch.device("cuda")
    models = load_sam3_cached(ModelMode.TINY, Sam3SegmentConfig(), cuda, dtype)
    plain = ConceptSegmenter(models, Sam3SegmentConfig(compile_mode="off", max_instances=4), cuda, dtype)
    fast = ConceptSegmenter(models, Sam3SegmentConfig(max_instances=4, compile_mode="default"), cuda, dtype)
    tolerance = 1e-3 if dtype == torch.float32 else 3e-2
    for seed in range(2):
        rgb = np.random.default_rng(seed).random((48, 64, 3), dtype=np.float32)
        answers = []
        for segmenter in (plain, fast):
            segmenter.set_image(rgb)
            answers.append(segmenter.segment([f"a red mug {seed}", "cat"]))
        for ref, ours in zip(*answers, strict=True):
            assert ours.presence == pytest.approx(ref.presence, abs=tolerance)
            assert ours.best_score == pytest.approx(ref.best_score, abs=tolerance)
            np.testing.assert_allclose(ours.semantic, ref.semantic, atol=tolerance * 10)
            if dtype == torch.float32:
                assert len(ours.instances) == len(ref.instances)
                for a, b in zip(ref.instances, ours.instances, strict=True):
                    assert np.mean(a.mask == b.mask) > 0.999
    decoder = fast.static_decoder
    assert decoder.compiled and all(call.failure is None for call in decoder.compiled)
    assert decoder._decode.graphs and not decoder._decode.eager_signatures  # the compiled call was captured
