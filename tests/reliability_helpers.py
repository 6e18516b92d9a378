"""Shared pieces of the reliability tests: small photos of every awkward kind, and one CLI call in-process."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

SMOKE = ["--preset", "smoke", "--steps", "2", "--models", "tiny", "--device", "cpu", "-q"]  # a few seconds a run


def photo_rgb(width: int = 48, height: int = 32) -> np.ndarray:
    """[H, W, 3] uint8: a warm blob on a cool gradient, so a mask has something to find."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // max(1, width - 1), yy * 255 // max(1, height - 1), np.full_like(xx, 160)], -1)
    blob = ((xx - width / 2) / (width / 4)) ** 2 + ((yy - height / 2) / (height / 4)) ** 2 < 1
    rgb[blob] = (220, 60, 40)
    return rgb.astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray | None = None) -> Path:
    Image.fromarray(photo_rgb() if rgb is None else rgb).save(path)
    return path


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """``python -m backend …`` in this process: (exit code, stderr)."""
    from backend.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def generate_argv(image, out, prompt: str | None = "a red blob", *extra) -> list[str]:
    argv = ["generate", str(image), "--out", str(out), *SMOKE, *extra]
    if prompt is not None:
        argv += ["--prompt", prompt]
    return argv


def command_text(argv: list[str]) -> str:
    """The argv as a user would type it, shortened: the smoke options are left out, long prompts cut."""
    words = []
    skip = 0
    for index, word in enumerate(argv):
        if skip:
            skip -= 1
            continue
        if word in ("--preset", "--steps", "--models", "--device") and index + 1 < len(argv):
            skip = 1
            continue
        if word == "-q":
            continue
        from tests.reliability_table import normalise

        word = normalise(str(word))
        if len(word) > 40:
            word = word[:12] + f"…({len(word)} chars)"
        words.append(f"'{word}'" if (" " in word or not word) else word)
    return "python -m backend " + " ".join(words)


# --- awkward inputs -------------------------------------------------------------------------------------

def missing(folder: Path) -> Path:
    return folder / "no-such-photo.jpg"


def text_as_png(folder: Path) -> Path:
    path = folder / "notes.png"
    path.write_text("this is not an image\n")
    return path


def truncated_jpeg(folder: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(photo_rgb(64, 64)).save(buf, format="JPEG", quality=95)
    path = folder / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def one_pixel(folder: Path) -> Path:
    path = folder / "dot.png"
    Image.new("RGB", (1, 1), (255, 0, 0)).save(path)
    return path


def sixteen_bit_png(folder: Path) -> Path:
    path = folder / "deep.png"
    gray = photo_rgb().astype(np.uint16).sum(-1) * 85  # [H, W] up to 65025
    Image.fromarray(gray.astype(np.uint16)).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I"), img.mode
    return path


def cmyk_jpeg(folder: Path) -> Path:
    path = folder / "print.jpg"
    Image.fromarray(photo_rgb()).convert("CMYK").save(path, format="JPEG", quality=95)
    return path


def palette_png(folder: Path) -> Path:
    path = folder / "palette.png"
    Image.fromarray(photo_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path)
    return path


def exif_rotated_jpeg(folder: Path) -> Path:
    """Stored 48 wide x 32 tall with EXIF orientation 6 (rotate 90° clockwise): shown 32 wide x 48 tall."""
    path = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo_rgb()).save(path, format="JPEG", quality=95, exif=exif)
    return path


def huge_jpeg(folder: Path) -> Path:
    """12000 x 8000 (96 Mpx), mostly flat so the file stays small."""
    from PIL import ImageDraw

    path = folder / "huge.jpg"
    img = Image.new("RGB", (12000, 8000), (90, 120, 170))
    ImageDraw.Draw(img).ellipse((4000, 2500, 8000, 5500), fill=(220, 60, 40))
    img.save(path, format="JPEG", quality=80)
    return path


def rgba_cutout(folder: Path) -> Path:
    path = folder / "cutout.png"
    rgb = photo_rgb()
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (((xx - w / 2) / (w / 3)) ** 2 + ((yy - h / 2) / (h / 3)) ** 2 < 1).astype(np.uint8) * 255
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path
