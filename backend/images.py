"""Reading photos at the edge of the backend: any common file in, float32 RGB [0, 1] out.

EXIF orientation is applied so that every mask we write lines up with what a photo viewer shows.
Grayscale, palette, CMYK, 16-bit and RGBA files are all turned into straight RGB (plus alpha when the file
has a real one). Anything unreadable becomes :class:`~backend.errors.BadInputError` with a one-line message.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadInputError
from .numeric_checks import NonFiniteError

MIN_IMAGE_SIDE = 8  # px; below this neither CLIPSeg's 16-px patches nor SAM's masks mean anything
# Checked from the file's header, before anything is decoded. A whole job peaks at about 52 bytes a pixel of
# the photo (the float32 RGB copy, full-size masks, cut-out and overlay; issue 19 measured 8.8 GB for 169 Mpx),
# so 100 Mpx (a 12000x8000 photo is 96) keeps it near 5 GB of RAM, which a 16 GB machine can spare.
MAX_IMAGE_PIXELS = 100_000_000


@dataclass(frozen=True)
class LoadedImage:
    rgb: np.ndarray  # [H, W, 3] float32 in [0, 1], EXIF orientation applied
    alpha: np.ndarray | None  # [H, W] float32 in [0, 1]; only when the file has a real (non-constant) alpha
    path: str

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file; BadInputError (exit 2) for anything missing, unreadable, truncated or too small."""
    if not os.fspath(path):  # Path("") is the current folder: say what is really wrong
        raise BadInputError("no image given (the image path is empty)")
    path = Path(path)
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES on a parent: a path that cannot be read
        raise BadInputError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not exists:
        raise BadInputError(f"image not found: {path}")
    if not is_file:
        raise BadInputError(f"image path is not a file: {path}")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpx (a 12000x8000 photo is 96 Mpx) and refuses from 179 Mpx: the refusal
            # stays (DecompressionBombError below), the warning would only be noise on stderr
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_pixel_count(img, path)
                img.load()  # decodes now, so a truncated file fails here and not later
                img = ImageOps.exif_transpose(img)
                rgb, alpha = _to_float_rgb(img)
    except UnidentifiedImageError:
        raise BadInputError(f"not an image (or a format Pillow cannot read): {path}") from None
    except Image.DecompressionBombError:
        raise BadInputError(f"image is too large to read safely: {path}") from None
    except NonFiniteError as exc:
        raise NonFiniteError(f"the image {path}", exc.nan) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"cannot read image {path}: {exc}") from None
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise BadInputError(f"image too small: {width}x{height} px (need at least {MIN_IMAGE_SIDE} px a side): {path}")
    return LoadedImage(rgb=rgb, alpha=alpha, path=str(path))


def _check_pixel_count(img: Image.Image, path: Path) -> None:
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise BadInputError(f"image too large: {width}x{height} px = {width * height / 1e6:.0f} Mpx (at most "
                            f"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx; scale it down first): {path}")


def _to_float_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode → (rgb [H, W, 3] float32 in [0, 1], alpha [H, W] float32 or None)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale (PNG loads as I;16 or I): scale the full 16-bit range, not just the low byte
        gray = np.asarray(img, dtype=np.float32) / 65535.0
        gray = np.clip(gray, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2), None
    if mode == "F":
        gray = np.asarray(img, dtype=np.float32)
        if not np.isfinite(gray).all():  # only float images can hold NaN/inf: the one place to look
            raise NonFiniteError("the image", bool(np.isnan(gray).any()))
        peak = float(gray.max()) if gray.size else 1.0
        gray = np.clip(gray / (peak if peak > 1.0 else 1.0), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        real_alpha = alpha if float(alpha.min()) != float(alpha.max()) else None
        return np.ascontiguousarray(rgba[..., :3]), real_alpha
    # L, 1, P, CMYK, YCbCr, LAB, HSV, RGB: Pillow's own conversion (CMYK is inverted properly there)
    rgb = np.array(img.convert("RGB"), dtype=np.float32)
    rgb /= 255.0  # in place: a 12000x8000 photo is 1.1 GB as float32, no need for a second copy
    return rgb, None


def to_uint8(image: np.ndarray, rows_per_block: int = 512) -> np.ndarray:
    """float [0, 1] → uint8 [0, 255] (rounded), a block of rows at a time.

    Blocks keep the float temporaries small: a 12000x8000 photo would otherwise need another 1.1 GB.
    """
    out = np.empty(image.shape, dtype=np.uint8)
    for start in range(0, image.shape[0], rows_per_block):
        block = image[start:start + rows_per_block]
        out[start:start + rows_per_block] = np.clip(block * 255.0 + 0.5, 0.0, 255.0)
    return out


def fit_within(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) scaled down (never up) so the longest side is at most ``max_side``."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize [H, W, 3] float32 → [height, width, 3] float32 with Pillow's antialiased bicubic filter.

    Goes through uint8: the models see 8-bit input anyway, and it keeps a 12000x8000 photo at 288 MB.
    """
    if rgb.shape[:2] == (height, width):
        return rgb
    resized = Image.fromarray(to_uint8(rgb)).resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.float32) / 255.0


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a bool mask [h, w] → [height, width] bool; bilinear then 0.5 cut, so edges stay smooth."""
    if mask.shape == (height, width):
        return mask.astype(bool)
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)) >= 128
