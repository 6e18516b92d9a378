"""SAM 3 concept segmentation with tiny random models on the CPU: loading, consent, instances, one vision pass,
exit codes, and the CLI / eval-phrasecut wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from backend.cli import main
from backend.errors import BadInputError, ModelsUnavailableError, NothingMatchedError
from backend.images import LoadedImage, resize_mask
from backend.models.mode import ModelMode
from backend.models.sam3 import (
    SAM3_REPO_ID,
    Sam3Access,
    build_tiny_sam3,
    find_sam3_files,
    load_sam3,
    save_sam3_folder,
)
from backend.segment import SegmentConfig, segment_image
from backend.segment.sam3_config import BoxPrompt, InstanceChoice, Sam3SegmentConfig
from backend.segment.sam3_segmenter import ConceptSegmenter, load_sam3_cached
from tests.test_segment_phrasecut import dataset  # noqa: F401 - the PhraseCut fixture, shared

CPU = torch.device("cpu")


def _photo(height=48, width=64) -> LoadedImage:
    rng = np.random.default_rng(0)
    rgb = rng.random((height, width, 3), dtype=np.float32)
    rgb[10:30, 20:44] = (0.9, 0.1, 0.1)  # a red block, so the picture is not pure noise
    return LoadedImage(rgb, None, "synthetic.png")


def _tiny_segmenter(**settings) -> ConceptSegmenter:
    models = load_sam3_cached(ModelMode.TINY, Sam3SegmentConfig(), CPU, torch.float32)
    return ConceptSegmenter(models, Sam3SegmentConfig(**settings), CPU)


def _sam3_config(**settings) -> SegmentConfig:
    return SegmentConfig(segmenter="sam3", models=ModelMode.TINY, device="cpu", sam3=Sam3SegmentConfig(**settings))


# --- models ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("composite", [True, False], ids=["sam3_video-composite", "plain-sam3"])
def test_tiny_model_in_the_hub_layout_loads_through_the_real_path(tmp_path, monkeypatch, composite):
    tiny = build_tiny_sam3(seed=3)
    folder = save_sam3_folder(tiny, tmp_path / SAM3_REPO_ID.replace("/", "--"), composite=composite)
    assert json.loads((folder / "config.json").read_text())["model_type"] == ("sam3_video" if composite else "sam3")
    monkeypatch.setenv("IMAGE_TO_3D_MODEL_DIR", str(tmp_path))
    # files on disk need no consent: the licence question is only asked before a download
    loaded = load_sam3(ModelMode.REAL, access=Sam3Access(accept_license=False))
    assert loaded.mode is ModelMode.REAL and loaded.model_id == SAM3_REPO_ID
    assert loaded.image_size == tiny.image_size and loaded.image_mean == tiny.image_mean
    ours, theirs = tiny.model.state_dict(), loaded.model.state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0, msg=name)
    assert loaded.tokenizer("a red cup")["input_ids"] == tiny.tokenizer("a red cup")["input_ids"]


def test_real_weights_need_licence_consent_before_a_download(monkeypatch):
    monkeypatch.delenv("IMAGE_TO_3D_MODEL_DIR", raising=False)
    with pytest.raises(ModelsUnavailableError) as info:
        find_sam3_files(access=Sam3Access(accept_license=False))
    message = str(info.value)
    assert "--accept-sam3-license" in message and "SAM License" in message and "--segmenter clipseg-sam" in message
    assert info.value.exit_code == 4


def test_consent_without_access_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("IMAGE_TO_3D_MODEL_DIR", raising=False)  # offline (conftest): the download fails
    with pytest.raises(ModelsUnavailableError) as info:
        find_sam3_files(access=Sam3Access(accept_license=True, token="hf_not_a_real_token"))
    message = str(info.value)
    assert "request access on https://huggingface.co/facebook/sam3" in message
    assert "hf auth login" in message and "--hf-token" in message and "--segmenter clipseg-sam" in message
    assert "hf_not_a_real_token" not in message


def test_cli_real_without_consent_exits_4(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IMAGE_TO_3D_MODEL_DIR", raising=False)
    path = tmp_path / "photo.png"
    Image.fromarray((_photo().rgb * 255).astype(np.uint8)).save(path)
    code = main(["segment", str(path), "--prompt", "cup", "--segmenter", "sam3", "--models", "real",
                 "--device", "cpu", "-q", "--out", str(tmp_path / "out")])
    assert code == 4 and "--accept-sam3-license" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- the segmenter ----------------------------------------------------------------------------------------------

def test_several_prompts_share_one_vision_pass():
    segmenter = _tiny_segmenter(prompts_per_batch=2)  # 3 phrases → 2 decoder batches, still 1 vision pass
    calls = []
    hook = segmenter.models.model.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        segmenter.set_image(_photo().rgb)
        together = segmenter.segment(["red block", "noise", "a cup"])
        assert len(calls) == 1
        alone = segmenter.segment(["noise"])[0]  # the same features, decoded alone
        assert len(calls) == 1
    finally:
        hook.remove()
    assert [s.prompt for s in together] == ["red block", "noise", "a cup"]
    assert together[1].presence == pytest.approx(alone.presence, abs=1e-5)
    np.testing.assert_allclose([i.score for i in together[1].instances], [i.score for i in alone.instances],
                               atol=1e-5)


def test_instances_are_ranked_and_each_can_be_chosen():
    segmenter = _tiny_segmenter()
    segmenter.set_image(_photo().rgb)
    seg = segmenter.segment(["red block"])[0]
    scores = [i.score for i in seg.instances]
    assert len(scores) == 8  # tiny: 8 queries, thresholds 0 with random weights
    assert scores == sorted(scores, reverse=True) and all(0 < s <= seg.presence for s in scores)
    for instance in seg.instances:
        assert instance.mask.shape == (48, 64) and instance.mask.dtype == bool
        x0, y0, x1, y1 = instance.box
        assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 48
    best, best_score = seg.choose(InstanceChoice.parse("best"))
    np.testing.assert_array_equal(best, seg.instances[0].mask)
    assert best_score == scores[0]
    third, third_score = seg.choose(InstanceChoice.parse("3"))
    np.testing.assert_array_equal(third, seg.instances[2].mask)
    assert third_score == scores[2]
    union, _ = seg.choose(InstanceChoice.parse("union"))
    np.testing.assert_array_equal(union, np.logical_or.reduce([i.mask for i in seg.instances]))
    assert union.sum() >= max(i.mask.sum() for i in seg.instances)
    with pytest.raises(BadInputError, match="instance 9 asked for"):
        seg.choose(InstanceChoice.parse("9"))


@pytest.mark.parametrize("text", ["0", "-1", "first", ""])
def test_bad_instance_choice_is_bad_input(text):
    with pytest.raises(BadInputError):
        InstanceChoice.parse(text)


def test_segment_path_returns_the_chosen_instance_at_photo_size():
    photo = _photo()
    results = segment_image(photo, ["red block", "noise"], _sam3_config(instance="union"))
    for result in results:
        assert result.mode == "sam3" and result.mask.shape == photo.size
        assert result.kept_masks.shape[1:] == result.working_size
        np.testing.assert_array_equal(result.mask, resize_mask(result.kept_masks.any(axis=0), *photo.size))
        assert result.score == pytest.approx(float(result.kept_scores.max()))
    second = segment_image(photo, ["red block"], _sam3_config(instance="2"))[0]
    np.testing.assert_array_equal(second.mask, resize_mask(second.kept_masks[1], *photo.size))


def test_absent_phrase_is_nothing_matched_with_its_presence_score():
    with pytest.raises(NothingMatchedError, match=r"'unicorn' \(SAM 3 presence score 0\.\d{3}, needs ≥ 1\)") as info:
        segment_image(_photo(), ["unicorn"], _sam3_config(presence_threshold=1.0))
    assert info.value.exit_code == 3


def test_cli_absent_phrase_exits_3(tmp_path, capsys):
    path = tmp_path / "photo.png"
    Image.fromarray((_photo().rgb * 255).astype(np.uint8)).save(path)
    code = main(["segment", str(path), "--prompt", "unicorn", "--segmenter", "sam3", "--presence-threshold", "1",
                 "--models", "tiny", "--device", "cpu", "-q", "--out", str(tmp_path / "out")])
    assert code == 3 and "presence score" in capsys.readouterr().err


def test_boxes_refine_the_phrase():
    segmenter = _tiny_segmenter()
    segmenter.set_image(_photo().rgb)
    plain = segmenter.segment(["red block"])[0]
    boxed = segmenter.segment(["red block"], [BoxPrompt((20, 10, 44, 30)), BoxPrompt((0, 0, 10, 10), False)])[0]
    assert [i.score for i in plain.instances] != pytest.approx([i.score for i in boxed.instances], abs=1e-6)
    with pytest.raises(BadInputError, match="not a box inside"):
        segmenter.segment(["red block"], [BoxPrompt((20, 10, 80, 30))])


def test_instance_flag_needs_sam3(tmp_path, capsys):
    code = main(["segment", "any.png", "--prompt", "cup", "--instance", "2", "--models", "tiny", "--out",
                 str(tmp_path / "out")])
    assert code == 2 and "--segmenter sam3" in capsys.readouterr().err


def test_eval_phrasecut_with_sam3(dataset, tmp_path, capsys):  # noqa: F811 - the imported fixture
    out = tmp_path / "report.json"
    code = main(["eval-phrasecut", "--data", str(dataset), "--segmenter", "sam3", "--instance", "union",
                 "--models", "tiny", "--device", "cpu", "-q", "--out", str(out)])
    assert code == 0 and "4 tasks" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["segmenter"] == "sam3" and report["instance"] == "union" and report["count"] == 4
    assert set(report["per_task"]) == {"1__a", "1__b", "2__a", "2__b"}
    assert all(0.0 <= t["iou"] <= 1.0 for t in report["per_task"].values())


def test_bench_script_runs_on_the_cpu_with_tiny_models(repo_root, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_sam3", repo_root / "scripts" / "bench_sam3.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--models", "tiny", "--device", "cpu", "--repeats", "1", "--compile", "off,on",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    row = report["dtypes"]["float32"]
    assert report["compile_modes"] == ["off", "default"]
    for variant in ("plain", "static_eager", "static", "static_eager+compile", "static+compile"):
        for stage in ("first_prompt", "vision", "further_prompt", "repeated_prompt", "six_prompts"):
            assert row[variant][stage]["median_s"] > 0
        assert row[variant]["finite_outputs"] and row[variant]["instances_per_prompt"] == 8
        assert row[variant]["ops_further_prompt"]["aten_ops"] > 100
        assert row[variant]["first_prompt_cold_s"] > 0
        six = row[variant]["six_prompts"]
        assert six["further_in_batch_s"] == round((six["median_s"] - row[variant]["further_prompt"]["median_s"]) / 5, 5)
    assert "plain+compile" not in row  # nothing of the plain forward is compiled
    assert row["static+compile"]["compile"].startswith("not compiled")  # the CPU runs the plain calls
    assert bench.main(["--models", "tiny", "--device", "cpu", "--compile", "maybe"]) == 2


def test_cli_boxes_reach_sam3(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray((_photo().rgb * 255).astype(np.uint8)).save(path)
    base = ["segment", str(path), "--prompt", "red block", "--segmenter", "sam3", "--models", "tiny", "--device",
            "cpu", "-q"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--box", "20,10,44,30", "--exclude-box", "0,0,10,10", "--out", str(tmp_path / "boxed")]) == 0
    plain, boxed = (json.loads((tmp_path / name / "segment.json").read_text())["prompts"][0]["kept_scores"]
                    for name in ("plain", "boxed"))
    assert plain != boxed
    assert main([*base, "--box", "20,10,10,30", "--out", str(tmp_path / "bad")]) == 2
    without_sam3 = [a for a in base if a not in ("--segmenter", "sam3")]
    assert main([*without_sam3, "--box", "20,10,44,30", "--out", str(tmp_path / "bad")]) == 2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs_and_agrees_with_float32(dtype):
    """The CUDA path's dtypes, checked on the CPU: every input (pixels, boxes) follows the weights' dtype."""
    photo, boxes = _photo().rgb, [BoxPrompt((20, 10, 44, 30))]
    answers = []
    for weights in (torch.float32, dtype):
        models = load_sam3_cached(ModelMode.TINY, Sam3SegmentConfig(), CPU, weights)
        segmenter = ConceptSegmenter(models, Sam3SegmentConfig(), CPU, weights)
        segmenter.set_image(photo)
        answers.append(segmenter.segment(["red block"], boxes)[0])
    full, half = answers
    assert half.presence == pytest.approx(full.presence, abs=0.01)
    np.testing.assert_allclose([i.score for i in half.instances], [i.score for i in full.instances], atol=0.01)


def test_consented_download_uses_the_token_and_the_pinned_revision(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError
    from huggingface_hub.utils import httpx

    from backend.models.sam3 import SAM3_REVISION

    folder = save_sam3_folder(build_tiny_sam3(), tmp_path / "snapshot")
    calls, granted = [], {"yes": False}

    def snapshot_download(repo_id, **kwargs):  # the hub as seen by a user without, then with, access
        calls.append((repo_id, kwargs))
        if kwargs.get("local_files_only"):
            raise LocalEntryNotFoundError("not cached")
        if not granted["yes"]:
            response = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co/facebook/sam3"))
            raise GatedRepoError("access to model facebook/sam3 is restricted", response=response)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("IMAGE_TO_3D_MODEL_DIR", raising=False)
    access = Sam3Access(accept_license=True, token="hf_test_token")
    with pytest.raises(ModelsUnavailableError, match=r"\(GatedRepoError\)\. facebook/sam3 is gated: request access on https://huggingface"):
        load_sam3(ModelMode.REAL, access=access)
    granted["yes"] = True
    loaded = load_sam3(ModelMode.REAL, access=access)
    assert loaded.mode is ModelMode.REAL and loaded.revision == SAM3_REVISION
    downloads = [kwargs for repo, kwargs in calls if not kwargs.get("local_files_only")]
    assert all(repo == SAM3_REPO_ID for repo, _ in calls)
    assert downloads and all(k["token"] == "hf_test_token" and k["revision"] == SAM3_REVISION for k in downloads)
    assert "model.safetensors" in downloads[0]["allow_patterns"] and "sam3.pt" not in downloads[0]["allow_patterns"]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_half_matches_cpu_float32(dtype):
    """On the GPU machine (pytest -m gpu): the tiny model in bf16/fp16 on CUDA agrees with float32 on the CPU,
    and the one-vision-pass reuse holds there too."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cuda = torch.device("cuda")
    answers = []
    for device, weights in ((CPU, torch.float32), (cuda, dtype)):
        models = load_sam3_cached(ModelMode.TINY, Sam3SegmentConfig(), device, weights)
        segmenter = ConceptSegmenter(models, Sam3SegmentConfig(), device, weights)
        segmenter.set_image(_photo().rgb)
        answers.append(segmenter.segment(["red block", "noise"], [BoxPrompt((20, 10, 44, 30))]))
    for full, half in zip(*answers, strict=True):
        assert half.presence == pytest.approx(full.presence, abs=0.01)
        np.testing.assert_allclose([i.score for i in half.instances], [i.score for i in full.instances], atol=0.01)
