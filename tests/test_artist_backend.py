"""Backend parts of the artist workflow: the reference crop box, mask correction, several objects per photo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.errors import BadInputError, CancelledError
from backend.images import LoadedImage
from backend.preprocess import prepare_reference, reference_crop


def _l_shape(height=64, width=96) -> np.ndarray:
    """An asymmetric L (a mirror or a quarter turn would not match it), off-centre."""
    mask = np.zeros((height, width), bool)
    mask[14:50, 20:32] = True  # upright bar
    mask[38:50, 20:56] = True  # foot, to the right
    return mask


@pytest.mark.parametrize("size,border_ratio", [(64, 0.2), (256, 0.2), (100, 0.1)])
def test_reference_crop_maps_the_reference_back_onto_the_mask(size, border_ratio):
    mask = _l_shape()
    ref = prepare_reference(np.zeros((*mask.shape, 3), np.float32), mask, size=size, border_ratio=border_ratio)
    crop = reference_crop(mask, size, border_ratio)
    # Every photo pixel centre → its reference pixel through the crop; the reference's alpha there must be
    # the mask (up to the resampled border).
    ys, xs = np.mgrid[0:mask.shape[0], 0:mask.shape[1]] + 0.5
    u = ((xs - crop.x0) / crop.side * size).astype(int)
    v = ((ys - crop.y0) / crop.side * size).astype(int)
    inside = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    assert inside[mask].all()  # the square holds the whole object
    sampled = np.zeros(mask.shape, np.float32)
    sampled[inside] = ref.alpha[v[inside], u[inside]]
    iou = ((sampled > 0.5) & mask).sum() / ((sampled > 0.5) | mask).sum()
    assert iou > 0.93, iou
    # the object's long side spans 1 - border of the side (DreamGaussian's framing)
    assert crop.side == pytest.approx(36 / (1 - border_ratio), rel=0.03)


# --- mask correction -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_192x128() -> LoadedImage:
    rng = np.random.default_rng(0)
    rgb = rng.random((128, 192, 3), dtype=np.float32) * 0.2
    rgb[40:100, 30:90] = (0.9, 0.3, 0.1)
    return LoadedImage(rgb=rgb, alpha=None, path="synthetic.png")


def test_correct_mask_scales_points_and_passes_the_mask_as_sam_prompt(photo_192x128, monkeypatch):
    from segment_anything import SamPredictor

    from backend.segment import SegmentConfig
    from backend.segment.correction import correct_mask, forget_embedding

    calls = []
    original = SamPredictor.predict_torch

    def recording(self, point_coords, point_labels, boxes=None, mask_input=None, *args, **kwargs):
        calls.append((point_coords.clone(), point_labels.clone(), mask_input.clone(), self.input_size))
        return original(self, point_coords, point_labels, boxes, mask_input, *args, **kwargs)

    monkeypatch.setattr(SamPredictor, "predict_torch", recording)
    forget_embedding()
    mask = np.zeros((128, 192), bool)
    mask[:, :96] = True  # the left half
    # max_side 64: photo 192x128 → working image 64x43 → tiny SAM's 64 px input frame 64x43 (+ padding)
    config = SegmentConfig(max_side=64, device="cpu")
    out = correct_mask(photo_192x128, mask, [[96.0, 64.0], [150.0, 20.0]], [1, 0], config)

    assert out.shape == (128, 192) and out.dtype == bool
    coords, labels, mask_input, input_size = calls[0]
    assert tuple(input_size) == (43, 64)
    # photo (96, 64) → working (32, 21.5) → input frame (32, 21.5); (150, 20) → (50, 6.72)
    torch.testing.assert_close(coords[0], torch.tensor([[32.0, 21.5], [50.0, 20 * 43 / 128]]), atol=0.05, rtol=0)
    assert labels.tolist() == [[1, 0]]
    # mask prompt: tiny SAM's 32² prompt over the padded 64² frame; the image fills its top 21.5 rows
    assert tuple(mask_input.shape) == (1, 1, 32, 32)
    assert mask_input[0, 0, 5, 4] > 7 and mask_input[0, 0, 5, 28] < -7  # left half in, right half out
    assert mask_input[0, 0, 30, 4] < -7  # padding below the image is "outside"


def test_correct_mask_rejects_bad_points(photo_192x128):
    from backend.segment.correction import correct_mask

    mask = np.ones((128, 192), bool)
    with pytest.raises(BadInputError, match="outside"):
        correct_mask(photo_192x128, mask, [[500.0, 3.0]], [1])
    with pytest.raises(BadInputError, match="no correction points"):
        correct_mask(photo_192x128, mask, np.zeros((0, 2)), [])
    with pytest.raises(BadInputError, match="mask is"):
        correct_mask(photo_192x128, mask[:10], [[5.0, 5.0]], [1])


# --- several objects from one photo ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_object_photo(tmp_path_factory):
    from PIL import Image

    rgb = np.full((48, 64, 3), 235, np.uint8)
    rgb[10:30, 6:26] = (200, 40, 40)
    rgb[20:40, 38:58] = (40, 40, 200)
    path = tmp_path_factory.mktemp("multi") / "two.png"
    Image.fromarray(rgb).save(path)
    return path


def test_generate_many_segments_once_queues_objects_and_cancel_keeps_finished(two_object_photo, tmp_path,
                                                                                monkeypatch):
    from backend.generate import GenerateRequest, generate_many
    from backend.job_control import JobControl
    from backend.segment import api

    embeddings = []
    real_embed = api.embed_image
    monkeypatch.setattr(api, "embed_image", lambda *a, **k: (embeddings.append(1), real_embed(*a, **k))[1])
    stages, done = [], []
    control = JobControl(on_progress=lambda event: stages.append(event.stage))

    def on_done(item):
        done.append(item)
        control.cancel()  # the user cancels while object 2 is being built

    template = GenerateRequest(image_path="", prompt=None, out_dir="", preset="smoke", device="cpu")
    with pytest.raises(CancelledError):
        generate_many(two_object_photo, ["the red square", "the blue square"], tmp_path / "out", template,
                      control, on_done)

    assert len(embeddings) == 1  # one SAM embedding for both prompts
    assert [item.prompt for item in done] == ["the red square"]
    first = done[0].result
    assert first.glb_path.is_file() and "mask" in first.reused
    assert first.out_dir == tmp_path / "out" / "1-the-red-square"
    assert any(stage.startswith("object 1 of 2: stage1") for stage in stages)
    assert not (tmp_path / "out" / "2-the-blue-square").exists()  # the cancelled object leaves nothing
    # the photo square is in the result and job.json, and matches the mask the object was made from
    job = json.loads(first.job_json_path.read_text())
    assert job["image_size"] == [64, 48]
    from PIL import Image

    mask = np.asarray(Image.open(first.mask_path)) > 127
    expected = reference_crop(mask, 64, 0.2)
    assert job["reference_crop"] == pytest.approx([expected.x0, expected.y0, expected.side], abs=1e-3)
    assert first.reference_crop == pytest.approx((expected.x0, expected.y0, expected.side))


def test_generate_rejects_a_mask_of_the_wrong_size(two_object_photo, tmp_path):
    from backend.generate import GenerateRequest, generate

    request = GenerateRequest(image_path=str(two_object_photo), prompt="x", out_dir=str(tmp_path / "o"),
                              preset="smoke", device="cpu", mask=np.ones((10, 10), bool))
    with pytest.raises(BadInputError, match="mask is 10x10"):
        generate(request)
    assert not (tmp_path / "o").exists()
