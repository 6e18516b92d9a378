"""Photo and prompt handling, through load_image and through `python -m backend segment` (tiny models).

Each bad input must give its exit code with no output files; each unusual-but-valid one must give a mask of
the right size (after EXIF rotation).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.errors import BadInputError
from backend.images import load_image

W, H = 40, 24  # small on purpose: every CLI run here pushes the photo through tiny CLIPSeg and SAM


def _gradient_rgb(width=W, height=H) -> np.ndarray:
    xx, yy = np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))
    return np.stack([xx, yy, 255 - xx], axis=2).astype(np.uint8)


def _segment(image, out, *extra, prompt="a red cup", mode="fast", threshold="0.0"):
    argv = ["segment", str(image), "--prompt", prompt, "--mode", mode, "--out", str(out), "--models", "tiny",
            "--device", "cpu", "-q", *extra]
    if threshold is not None:
        argv += ["--threshold", threshold]
    return main(argv)


def _assert_no_outputs(out):
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def _mask_of(out, slug="a-red-cup") -> np.ndarray:
    with Image.open(out / f"{slug}.mask.png") as img:
        assert img.mode == "L"
        return np.asarray(img)


# --- files that cannot be read ----------------------------------------------------------------------------

def _missing(tmp_path):
    return tmp_path / "nope.jpg"


def _text_as_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    return path


def _truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_gradient_rgb(64, 64)).save(buf, format="JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _one_pixel(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (255, 0, 0)).save(path)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (_missing, "not found"), (_text_as_png, "not an image"), (_truncated_jpeg, "cannot read"),
    (_one_pixel, "too small"),
])
def test_unreadable_images_exit_2_without_outputs(tmp_path, capsys, make, message):
    path = make(tmp_path)
    with pytest.raises(BadInputError, match=message):
        load_image(path)
    out = tmp_path / "out"
    assert _segment(path, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    _assert_no_outputs(out)


# --- prompts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["", "   ", "x" * 2000])
def test_bad_prompts_exit_2_without_outputs(tmp_path, capsys, prompt):
    photo = tmp_path / "photo.png"
    Image.fromarray(_gradient_rgb()).save(photo)
    out = tmp_path / "out"
    assert _segment(photo, out, prompt=prompt) == 2
    assert "prompt" in capsys.readouterr().err
    _assert_no_outputs(out)


def test_non_ascii_prompt_works(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(_gradient_rgb()).save(photo)
    out = tmp_path / "out"
    assert _segment(photo, out, prompt="tasse à café ☕ 杯子") == 0
    assert _mask_of(out, "tasse-caf").shape == (H, W)


# --- unusual but valid images ---------------------------------------------------------------------------

def test_sixteen_bit_png_uses_the_full_range(tmp_path):
    values = np.tile(np.array([0, 32768, 65535], dtype=np.uint16), (H, W // 3 + 1))[:, :W]
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)  # uint16 → mode I;16
    image = load_image(path)
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (H, W, 3)
    assert image.rgb[0, :3, 0] == pytest.approx([0.0, 0.5, 1.0], abs=1e-3)
    out = tmp_path / "out"
    assert _segment(path, out) == 0
    assert _mask_of(out).shape == (H, W)


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (W, H), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    image = load_image(path)
    r, g, b = image.rgb[H // 2, W // 2]
    assert r > 0.8 and g < 0.2 and b < 0.2
    out = tmp_path / "out"
    assert _segment(path, out) == 0
    assert _mask_of(out).shape == (H, W)


def test_palette_png_matches_its_colours(tmp_path):
    rgb = _gradient_rgb()
    path = tmp_path / "palette.png"
    palette_img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette_img.save(path)
    image = load_image(path)
    expected = np.asarray(palette_img.convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(image.rgb, expected, atol=1e-6)
    out = tmp_path / "out"
    assert _segment(path, out, mode="paper") == 0
    assert _mask_of(out).shape == (H, W)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    # stored 40 wide x 24 tall, left half red; EXIF orientation 6 = "rotate 90° clockwise to display"
    stored = np.zeros((H, W, 3), dtype=np.uint8)
    stored[:, : W // 2] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.rgb.shape == (W, H, 3)  # now 24 wide x 40 tall
    assert image.rgb[: W // 2 - 3, :, 0].mean() > 0.9  # the red half is on top after turning clockwise
    assert image.rgb[W // 2 + 3:, :, 0].mean() < 0.1
    out = tmp_path / "out"
    assert _segment(path, out) == 0
    assert _mask_of(out).shape == (W, H)
    with Image.open(out / "a-red-cup.cutout.png") as cutout, Image.open(out / "a-red-cup.overlay.png") as overlay:
        assert cutout.size == overlay.size == (H, W)


def test_rgba_keeps_a_real_alpha_and_drops_a_constant_one(tmp_path):
    rgba = np.concatenate([_gradient_rgb(), np.full((H, W, 1), 255, np.uint8)], axis=2)
    rgba[:, : W // 4, 3] = 0
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    image = load_image(path)
    assert image.alpha is not None and image.alpha[:, 0].max() == 0 and image.alpha[:, -1].min() == 1
    out = tmp_path / "out"
    assert _segment(path, out) == 0
    with Image.open(out / "a-red-cup.cutout.png") as cutout:
        alpha = np.asarray(cutout)[..., 3]
    assert alpha[:, : W // 4].max() == 0  # the photo's own transparency survives into the cut-out
    opaque = tmp_path / "opaque.png"
    Image.fromarray(np.concatenate([_gradient_rgb(), np.full((H, W, 1), 255, np.uint8)], axis=2)).save(opaque)
    assert load_image(opaque).alpha is None


def test_grayscale_image_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(_gradient_rgb()[..., 0]).save(path)
    image = load_image(path)
    assert image.rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(image.rgb[..., 0], image.rgb[..., 2])
