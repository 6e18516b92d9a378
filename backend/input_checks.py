"""Input mistakes a command answers before it loads any model (issue 24: at once, not after torch's 10 s).

Only the standard library and Pillow's file reader are used here (no numpy, torch or the pipeline), so a
missing or unreadable photo, a file that is no image, an ``--out`` that cannot be written, or a photo that
needs a prompt is told apart in a fraction of a second. The jobs check the same things again where they load
(backend.images.load_image, backend.atomic_output.check_output_location, backend.generate.job_steps): the
facts used by both are declared here, once.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from .atomic_output import check_output_location
from .errors import BadInputError

MIN_IMAGE_SIDE = 8  # px; below this neither CLIPSeg's 16-px patches nor SAM's masks mean anything
# Checked from the file's header, before anything is decoded. A whole job peaks at about 52 bytes a pixel of
# the photo (the float32 RGB copy, full-size masks, cut-out and overlay; issue 19 measured 8.8 GB for 169 Mpx),
# so 100 Mpx (a 12000x8000 photo is 96) keeps it near 5 GB of RAM, which a 16 GB machine can spare.
MAX_IMAGE_PIXELS = 100_000_000
# Pillow modes that carry an alpha channel (a palette image carries one when it names a transparent index)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
MIN_ALPHA_COVERAGE = 0.001  # a cut-out: more than this share of its pixels is transparent (alpha below 0.5)
PROMPT_NEEDED = "a prompt is needed: the image has no transparent background to cut the object from"


@dataclass(frozen=True)
class ImageHeader:
    """What a photo file's header says, read without decoding its pixels."""

    path: Path
    format: str  # Pillow's name of the file format, e.g. "PNG", "JPEG"
    mode: str  # Pillow's pixel mode, e.g. "RGB", "RGBA", "P"
    width: int  # px, as stored (before any EXIF rotation, which does not change the smaller side)
    height: int


def check_image_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it names an existing file; BadInputError (exit 2) otherwise."""
    if not os.fspath(path):  # Path("") is the current folder: an empty argument must not mean "here"
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
    return path


def check_pixel_count(width: int, height: int, path: str | os.PathLike) -> None:
    """BadInputError (exit 2) for a photo too large to hold in memory safely."""
    if width * height > MAX_IMAGE_PIXELS:
        raise BadInputError(f"image too large: {width}x{height} px = {width * height / 1e6:.0f} Mpx (at most "
                            f"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx; scale it down first): {path}")


def check_image_side(width: int, height: int, path: str | os.PathLike) -> None:
    """BadInputError (exit 2) for a photo smaller than MIN_IMAGE_SIDE on a side."""
    if min(height, width) < MIN_IMAGE_SIDE:
        raise BadInputError(f"image too small: {width}x{height} px (need at least {MIN_IMAGE_SIDE} px a side): {path}")


def has_alpha_channel(mode: str, info: dict) -> bool:
    """Whether an image of Pillow ``mode`` (with ``info``, its file's extra fields) carries transparency."""
    return mode in ALPHA_MODES or (mode == "P" and "transparency" in info)


def read_image_header(path: str | os.PathLike) -> ImageHeader:
    """The photo's format, mode and size from its header; BadInputError (exit 2) for a missing, unreadable,
    too large or too small file, or one that is not an image Pillow reads. The pixels are not decoded, so a
    truncated file is only found when the job loads it."""
    from PIL import Image, UnidentifiedImageError

    path = check_image_path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the refusal below stays
            with Image.open(path) as img:
                header = ImageHeader(path, str(img.format), img.mode, *img.size)
    except UnidentifiedImageError:
        raise BadInputError(f"not an image (or a format Pillow cannot read): {path}") from None
    except Image.DecompressionBombError:
        raise BadInputError(f"image is too large to read safely: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"cannot read image {path}: {getattr(exc, 'strerror', None) or exc}") from None
    check_pixel_count(header.width, header.height, path)
    check_image_side(header.width, header.height, path)
    return header


def is_cutout(path: str | os.PathLike) -> bool:
    """Whether the photo is already a cut-out: a non-constant alpha channel with more than MIN_ALPHA_COVERAGE
    of its pixels transparent (alpha below 0.5) — what backend.generate.job_steps.has_cutout finds in the
    loaded image, counted here from the alpha channel's histogram without numpy."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if not has_alpha_channel(img.mode, img.info):
                return False
            try:
                counts = img.convert("RGBA").getchannel("A").histogram()
            except (OSError, SyntaxError, ValueError) as exc:  # a truncated file: found now, said as load_image does
                raise BadInputError(f"cannot read image {path}: {exc}") from None
    if sum(1 for count in counts if count) < 2:  # constant alpha: no real alpha (backend.images.LoadedImage.alpha)
        return False
    transparent = sum(counts[:128])  # alpha / 255 < 0.5  ⇔  alpha ≤ 127
    return transparent / sum(counts) > MIN_ALPHA_COVERAGE


def check_photo_job(image_path: str | os.PathLike, out_dir: str | os.PathLike, *, prompt_given: bool) -> None:
    """Everything a segment or generate job could refuse without a model, in the order the job checks it:
    the output folder, the photo, then (without a prompt) whether the photo is a cut-out. BadInputError (exit 2).
    """
    check_output_location(out_dir)
    read_image_header(image_path)
    if not prompt_given and not is_cutout(image_path):
        raise BadInputError(PROMPT_NEEDED)
