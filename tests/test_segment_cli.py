"""`python -m backend segment` on the bundled photo with tiny models: both modes, the files, exit 3."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.images import load_image
from backend.segment import SegmentConfig, segment_image, slugify


def _run(photo, out, mode, *prompts, threshold="0.0"):
    argv = ["segment", str(photo), "--mode", mode, "--out", str(out), "--models", "tiny", "--device", "cpu", "-q",
            "--threshold", threshold]
    for prompt in prompts:
        argv += ["--prompt", prompt]
    return main(argv)


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_segment_writes_well_formed_files(bundled_photo, tmp_path, mode, capsys):
    out = tmp_path / "out"
    # threshold 0 makes CLIPSeg's region the whole photo, so even random weights match something
    assert _run(bundled_photo, out, mode, "Coffee cup", "saucer") == 0
    assert "Coffee cup" in capsys.readouterr().out
    with Image.open(bundled_photo) as img:
        width, height = img.size
    photo = np.asarray(Image.open(bundled_photo).convert("RGB"))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}.{k}.png" for s in ("coffee-cup", "saucer") for k in ("mask", "cutout", "overlay")] + ["segment.json"]
        + [".image_to_3d-outputs.json"]  # the record of what this tool wrote (docs/reliability.md)
    )
    for slug in ("coffee-cup", "saucer"):
        mask = np.asarray(Image.open(out / f"{slug}.mask.png"))
        assert mask.shape == (height, width) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255} and mask.max() == 255
        cutout = Image.open(out / f"{slug}.cutout.png")
        assert cutout.mode == "RGBA" and cutout.size == (width, height)
        cut = np.asarray(cutout)
        np.testing.assert_array_equal(cut[..., 3], mask)  # alpha is the mask
        np.testing.assert_array_equal(cut[..., :3], photo)
        overlay = np.asarray(Image.open(out / f"{slug}.overlay.png").convert("RGB")).astype(int)
        assert overlay.shape == (height, width, 3)
        assert np.abs(overlay[mask == 0] - photo[mask == 0]).max() == 0  # untouched outside the mask
        assert np.abs(overlay[mask == 255] - photo[mask == 255]).mean() > 10  # visibly marked inside
    meta = json.loads((out / "segment.json").read_text())
    assert meta["mode"] == mode and meta["models"] == "tiny" and "meaningless" in meta["note"]
    assert meta["image_size"] == {"width": width, "height": height}
    assert [p["prompt"] for p in meta["prompts"]] == ["Coffee cup", "saucer"]
    for entry in meta["prompts"]:
        assert 0.0 < entry["score"] <= 1.0
        assert entry["timings"]["total"] > 0 and entry["timings"]["clipseg"] > 0
        assert ("kept_masks" in entry) == (mode == "paper")
        assert ("sam_masks" in entry) == (mode == "paper")
        assert mode == "fast" or entry["sam_masks"] >= entry["kept_masks"] >= 1
        assert ("prompts_used" in entry) == (mode == "fast")
    assert set(meta["model_ids"]) == {"clipseg", "sam"}
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_nothing_matched_exits_3_with_best_score_and_no_files(bundled_photo, tmp_path, mode, capsys):
    out = tmp_path / "out"
    assert _run(bundled_photo, out, mode, "a unicorn", threshold="1.0") == 3  # no probability is > 1
    err = capsys.readouterr().err.strip()
    assert "nothing in the image matched 'a unicorn'" in err and "best" in err and "\n" not in err
    _assert_empty(out)


def _assert_empty(out):
    assert not out.exists() or not any(out.iterdir())


def test_library_results_carry_masks_heatmaps_and_mode_specific_parts(bundled_photo):
    image = load_image(bundled_photo)
    height, width = image.size
    fast = segment_image(image, ["cup", "spoon"], SegmentConfig(mode="fast", threshold=0.0, device="cpu"))
    paper = segment_image(image, ["cup"], SegmentConfig(mode="paper", threshold=0.0, device="cpu"))
    for result in [*fast, *paper]:
        assert result.mask.shape == (height, width) and result.mask.dtype == bool and result.mask.any()
        assert result.heatmap.shape == result.working_size and result.heatmap.dtype == np.float32
        assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
        assert result.slug == slugify(result.prompt)
        assert {"clipseg", "sam_embedding", "total"} <= set(result.timings)
    cup = fast[0]
    assert cup.kept_masks is None and cup.prompts_used is not None
    x0, y0, x1, y1 = cup.prompts_used.box
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height  # original-image coordinates
    result = paper[0]
    assert result.prompts_used is None and result.kept_masks.ndim == 3 and len(result.kept_scores)
    assert np.all(result.kept_scores > 0.5)
    # the returned mask is the union of the kept SAM masks (up to the resize to full size)
    union = result.kept_masks.any(0)  # at SAM's mask resolution (64 px for tiny SAM)
    assert union.shape[1] / union.shape[0] == pytest.approx(width / height, rel=0.05)
    assert result.mask.mean() == pytest.approx(union.mean(), abs=0.03)


def test_very_large_photo_is_processed_at_model_resolution(tmp_path, monkeypatch):
    """A 12000x8000 photo is not fed to the models at full size; the mask still comes back full size."""
    from backend.images import LoadedImage

    # a lazily-broadcast 'photo' keeps this test light: 12000x8000 values are never materialised as floats
    big = LoadedImage(rgb=np.broadcast_to(np.float32(0.5), (8000, 12000, 3)), alpha=None, path="big.jpg")
    results = segment_image(big, ["anything"], SegmentConfig(threshold=0.0, device="cpu", max_side=256))
    assert results[0].working_size == (171, 256)
    assert results[0].mask.shape == (8000, 12000)


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_one_image_embedding_and_one_clipseg_forward_serve_every_prompt(bundled_photo, mode):
    from backend.models.loaded import ModelKey, get_or_load

    image = load_image(bundled_photo)
    config = SegmentConfig(mode=mode, threshold=0.0, device="cpu")
    segment_image(image, ["warm-up"], config)  # models now cached
    sam = get_or_load(ModelKey("sam", "tiny", "tiny", "cpu", "float32"), lambda: pytest.fail("SAM not cached"))
    clipseg = get_or_load(ModelKey("clipseg", "tiny", "rd64-refined", "cpu", "float32"),
                          lambda: pytest.fail("CLIPSeg not cached"))
    encoder_calls, clipseg_calls = [], []
    hooks = [sam.model.image_encoder.register_forward_hook(lambda *a: encoder_calls.append(1)),
             clipseg.model.register_forward_hook(lambda *a: clipseg_calls.append(1))]
    try:
        results = segment_image(image, ["cup", "saucer", "spoon"], config)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(results) == 3
    assert encoder_calls == [1] and clipseg_calls == [1]


def test_cancel_stops_the_job_and_writes_nothing(bundled_photo, tmp_path):
    from backend.errors import CancelledError
    from backend.job_control import JobControl
    from backend.segment import segment_to_folder

    control = JobControl()
    seen = []

    def cancel_at_sam(progress):
        seen.append(progress.stage)
        if progress.stage == "sam embedding":
            control.cancel()

    control.on_progress = cancel_at_sam
    out = tmp_path / "out"
    with pytest.raises(CancelledError) as info:
        segment_to_folder(bundled_photo, ["cup"], SegmentConfig(threshold=0.0, device="cpu"), out, control)
    assert info.value.exit_code == 130 and "clipseg" in seen
    _assert_empty(out)
