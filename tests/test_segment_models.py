"""CLIPSeg and SAM in tiny mode, and the real loading path fed with tiny weights in the real layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.errors import ModelsUnavailableError
from backend.models import hub
from backend.models.clipseg import (
    CLIPSEG_REPO_ID,
    build_tiny_clipseg,
    load_clipseg,
    save_clipseg_folder,
)
from backend.models.mode import ModelMode
from backend.models.sam import SAM_REPO_ID, SAM_SPECS, SamSpec, build_tiny_sam, load_sam
from backend.segment.heatmap import compute_heatmaps


def test_tiny_clipseg_forward_gives_one_heatmap_per_prompt():
    clipseg = build_tiny_clipseg()
    image = torch.rand(3, 30, 50)
    heat = compute_heatmaps(clipseg, image, ["a cup", "une tasse à café", "杯子"])
    assert heat.shape == (3, 30, 50) and heat.dtype == torch.float32
    assert 0.0 <= float(heat.min()) and float(heat.max()) <= 1.0
    assert not torch.allclose(heat[0], heat[1])  # the text changes the heatmap


def test_clipseg_prompts_share_one_batched_forward():
    clipseg = build_tiny_clipseg()
    calls = []
    handle = clipseg.model.register_forward_hook(
        lambda module, args, kwargs, output: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        compute_heatmaps(clipseg, torch.rand(3, 32, 32), ["one", "two", "three", "four"])
    finally:
        handle.remove()
    assert calls == [4]  # one forward, all four prompts in its batch


def test_tiny_sam_forward_predicts_masks():
    from segment_anything import SamPredictor

    predictor = SamPredictor(build_tiny_sam())
    predictor.set_image((np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8))
    masks, iou, low_res = predictor.predict(point_coords=np.array([[20.0, 12.0]]), point_labels=np.array([1]))
    assert masks.shape == (3, 24, 40) and iou.shape == (3,)


def test_tiny_clipseg_in_real_layout_loads_through_the_real_loader(tmp_path, monkeypatch):
    tiny = build_tiny_clipseg(seed=3)
    folder = save_clipseg_folder(tiny, tmp_path / CLIPSEG_REPO_ID.replace("/", "--"))
    image = torch.rand(3, 40, 40)
    expected = compute_heatmaps(tiny, image, ["a cup", "a spoon"])
    # explicit folder …
    loaded = load_clipseg(ModelMode.REAL, "cpu", local_dir=folder)
    assert loaded.mode is ModelMode.REAL and loaded.image_size == tiny.image_size
    torch.testing.assert_close(compute_heatmaps(loaded, image, ["a cup", "a spoon"]), expected)
    # … and the $IMAGE_TO_3D_MODEL_DIR lookup by repo id
    monkeypatch.setenv(hub.LOCAL_DIR_ENV, str(tmp_path))
    from_env = load_clipseg(ModelMode.REAL, "cpu")
    torch.testing.assert_close(compute_heatmaps(from_env, image, ["a cup", "a spoon"]), expected)


def test_corrupted_clipseg_weights_are_unavailable(tmp_path):
    folder = save_clipseg_folder(build_tiny_clipseg(), tmp_path / "clipseg")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelsUnavailableError, match="cannot be loaded"):
        load_clipseg(ModelMode.REAL, "cpu", local_dir=folder)


def test_real_clipseg_offline_with_nothing_cached_is_exit_4(monkeypatch, tmp_path):
    monkeypatch.delenv(hub.LOCAL_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelsUnavailableError, match="CIDAS/clipseg-rd64-refined") as info:
        load_clipseg(ModelMode.REAL, "cpu")
    assert info.value.exit_code == 4


def _tiny_sam_checkpoint(folder, seed=5):
    torch.manual_seed(seed)
    model = build_tiny_sam()
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / "scratch.pth"
    torch.save(model.state_dict(), scratch)
    digest = hub.sha256_of(scratch)
    path = folder / f"sam_tiny_{digest[:6]}.pth"  # named like the official files
    scratch.rename(path)
    return model, path, digest


def test_tiny_sam_checkpoint_loads_through_the_real_loader(tmp_path, monkeypatch):
    model, path, digest = _tiny_sam_checkpoint(tmp_path / SAM_REPO_ID.replace("/", "--"))
    monkeypatch.setitem(SAM_SPECS, "tiny", SamSpec("tiny", path.name, digest, build_tiny_sam))
    monkeypatch.setenv(hub.LOCAL_DIR_ENV, str(tmp_path))
    loaded = load_sam(ModelMode.REAL, "tiny", "cpu")
    assert loaded.mode is ModelMode.REAL and loaded.sha256 == digest
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)
    # a second load trusts the verdict kept in the user's cache (never beside the weights) while the file is
    # unchanged: no second hash
    assert not list(path.parent.glob("*.verified.json"))
    monkeypatch.setattr(hub, "verify_checksum", lambda *a: (_ for _ in ()).throw(AssertionError("hashed again")))
    assert load_sam(ModelMode.REAL, "tiny", "cpu").sha256 == digest


def test_corrupted_sam_checkpoint_is_never_loaded(tmp_path, monkeypatch):
    _, path, digest = _tiny_sam_checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setitem(SAM_SPECS, "tiny", SamSpec("tiny", path.name, digest, build_tiny_sam))

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called on a checkpoint that failed its check")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(ModelsUnavailableError, match="integrity"):
        load_sam(ModelMode.REAL, "tiny", "cpu", local_dir=tmp_path)


def test_sam_checkpoint_of_the_wrong_architecture_is_unavailable(tmp_path, monkeypatch):
    _, path, digest = _tiny_sam_checkpoint(tmp_path)
    monkeypatch.setitem(SAM_SPECS, "vit_b", SamSpec("vit_b", path.name, digest, SAM_SPECS["vit_b"].build))
    with pytest.raises(ModelsUnavailableError, match="does not fit"):
        load_sam(ModelMode.REAL, "vit_b", "cpu", local_dir=tmp_path)


def test_missing_sam_checkpoint_names_the_file(tmp_path):
    with pytest.raises(ModelsUnavailableError, match="sam_vit_h_4b8939.pth"):
        load_sam(ModelMode.REAL, "vit_h", "cpu", local_dir=tmp_path)


def test_official_sam_digests_are_full_sha256():
    for spec in SAM_SPECS.values():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0


def test_max_masks_keeps_the_candidates_of_highest_predicted_iou():
    """Random quality heads predict IoUs below zero, where SAM's filter reads any cut as "off"; a cap still holds."""
    from segment_anything import SamPredictor

    from backend.segment.sam_masks import embed_image, generate_masks

    predictor = SamPredictor(load_sam(ModelMode.TINY, device="cpu").model)
    embed_image(predictor, (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8), autocast=False)
    every = generate_masks(predictor, 8, 64, 0.0, 0.0, 1.0, autocast=False)  # filters and NMS off
    capped = generate_masks(predictor, 8, 64, 0.0, 0.0, 1.0, autocast=False, max_masks=10)
    assert len(every.masks) == 8 * 8 * 3 and float(every.predicted_iou.max()) < 0  # all through, all negative
    assert len(capped.masks) == 10
    top = every.predicted_iou.topk(10).indices.sort().values  # grid order is kept
    torch.testing.assert_close(capped.predicted_iou, every.predicted_iou[top])
    assert torch.equal(capped.masks, every.masks[top])
