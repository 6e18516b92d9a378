"""Writing a segmentation to a folder (docs/design.md §4): mask, cut-out and overlay per prompt + segment.json.

Everything is staged and moved into place by AtomicOutputDir, so a failed run leaves no partial files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from .. import __version__
from ..atomic_output import AtomicOutputDir, check_output_location, output_path
from ..errors import BadInputError
from ..images import LoadedImage, load_image, resize_mask, to_uint8
from ..job_control import JobControl, ensure_control
from .api import ModelInfo, run_segmentation
from .config import SegmentConfig, check_prompts
from .result import SegmentationResult
from .slug import unique_slugs

OVERLAY_TINT = np.array([0.12, 0.56, 1.0], dtype=np.float32)  # blue wash over the selected pixels
OVERLAY_TINT_STRENGTH = 0.45
OVERLAY_OUTLINE = np.array([1.0, 0.85, 0.0], dtype=np.float32)  # yellow border: visible on most photos
MEANINGLESS_NOTE = ("models are '{mode}' (random weights): these masks are meaningless and only exercise "
                    "the code path")


@dataclass(frozen=True)
class InstanceFile:
    """One of the instances SAM 3 found for a prompt, saved so another can be chosen without running SAM 3."""

    rank: int  # 1 = the best-scoring instance
    score: float  # SAM 3's instance score (× presence), in [0, 1]
    mask: Path  # <slug>.instance-<rank>.mask.png: 8-bit 0/255, original size


@dataclass(frozen=True)
class PromptFiles:
    mask: Path  # <slug>.mask.png: 8-bit 0/255, original size
    cutout: Path  # <slug>.cutout.png: RGBA, alpha = mask (× the photo's own alpha)
    overlay: Path  # <slug>.overlay.png: photo with the mask tinted and outlined
    instances: tuple[InstanceFile, ...] = ()  # segmenter sam3: every instance found, best first


@dataclass(frozen=True)
class SegmentOutputs:
    out_dir: Path
    files: list[PromptFiles]  # one per prompt, same order as results
    metadata_path: Path  # segment.json
    results: list[SegmentationResult]


def output_names(prompts: Sequence[str]) -> list[str]:
    """Every name a segment run for ``prompts`` may write into its folder (the output contract), but for SAM 3's
    instance masks, whose count is known only once it ran (:func:`instance_output_names`)."""
    return [f"{slug}.{kind}.png" for slug in unique_slugs(list(prompts)) for kind in ("mask", "cutout", "overlay")
            ] + ["segment.json"]


def instance_output_names(results: Sequence[SegmentationResult]) -> list[str]:
    """The instance mask names :func:`write_instance_masks` will write for ``results`` (SAM 3 only)."""
    return [instance_mask_name(result.slug, rank) for result in results
            if result.mode == "sam3" and result.kept_masks is not None
            for rank in range(1, len(result.kept_masks) + 1)]


def segment_to_folder(image_path: str | os.PathLike, prompts: Sequence[str], config: SegmentConfig,
                      out_dir: str | os.PathLike, control: JobControl | None = None,
                      overwrite: bool = False) -> SegmentOutputs:
    """load_image → segment → write every output file atomically into ``out_dir``.

    ``overwrite``: replace files of the output names that this tool did not write (docs/reliability.md)."""
    control = ensure_control(control)
    prompts = check_prompts(prompts)  # before reading the image or loading any model
    out_dir = output_path(out_dir)
    names = output_names(prompts)
    check_output_location(out_dir, names, overwrite)
    image = load_image(image_path)
    results, info = run_segmentation(image, prompts, config, control)
    files = []
    with AtomicOutputDir(out_dir, names + instance_output_names(results), overwrite) as staging:
        for i, result in enumerate(results):
            control.report("write", i / len(results), result.slug)
            files.append(write_prompt_images(staging, image, result))
            if result.mode == "sam3":
                files[-1] = dataclasses.replace(files[-1], instances=write_instance_masks(staging, image, result))
        metadata = describe_run(image, results, config, info)
        (staging / "segment.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8")
    final = [PromptFiles(*(out_dir / p.name for p in (f.mask, f.cutout, f.overlay)),
                         instances=tuple(dataclasses.replace(i, mask=out_dir / i.mask.name) for i in f.instances))
             for f in files]
    control.report("write", 1.0)
    return SegmentOutputs(out_dir, final, out_dir / "segment.json", results)


def write_prompt_images(folder: Path, image: LoadedImage, result: SegmentationResult) -> PromptFiles:
    mask = result.mask
    if mask.shape != image.size:
        raise ValueError(f"mask {mask.shape} does not match image {image.size}")
    files = PromptFiles(folder / f"{result.slug}.mask.png", folder / f"{result.slug}.cutout.png",
                        folder / f"{result.slug}.overlay.png")
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(files.mask)
    rgba = np.empty((*mask.shape, 4), dtype=np.uint8)
    rgba[..., :3] = to_uint8(image.rgb)
    rgba[..., 3] = mask.astype(np.uint8) * 255 if image.alpha is None else to_uint8(mask * image.alpha)
    Image.fromarray(rgba, mode="RGBA").save(files.cutout)
    Image.fromarray(render_overlay(image.rgb, mask), mode="RGB").save(files.overlay)
    return files


def write_instance_masks(folder: Path, image: LoadedImage, result: SegmentationResult) -> tuple[InstanceFile, ...]:
    """SAM 3's instances (``result.kept_masks``, best first, at the working size) as photo-size mask PNGs."""
    if result.kept_masks is None:
        return ()
    height, width = image.size
    saved = []
    for rank, (mask, score) in enumerate(zip(result.kept_masks, result.kept_scores, strict=True), start=1):
        path = folder / instance_mask_name(result.slug, rank)
        Image.fromarray(resize_mask(mask, height, width).astype(np.uint8) * 255, mode="L").save(path)
        saved.append(InstanceFile(rank, round(float(score), 6), path))
    return tuple(saved)


def instance_mask_name(slug: str, rank: int) -> str:
    return f"{slug}.instance-{rank}.mask.png"


def write_mask_images(folder: Path, image: LoadedImage, prompt: str, slug: str, mask: np.ndarray) -> PromptFiles:
    """The same three PNGs for a mask made another way (a hand-corrected one): no heatmap, score 1."""
    result = SegmentationResult(prompt=prompt, slug=slug, mode="corrected", mask=np.asarray(mask, bool), score=1.0,
                                heatmap=np.zeros((1, 1), np.float32), working_size=mask.shape)
    return write_prompt_images(folder, image, result)


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """[H, W] bool from an 8-bit mask PNG (0 / 255), as write_prompt_images writes it."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) > 127
    except OSError as exc:
        raise BadInputError(f"cannot read the mask {path}: {exc}") from None


def render_overlay(rgb: np.ndarray, mask: np.ndarray, rows_per_block: int = 512) -> np.ndarray:
    """[H, W, 3] uint8: the photo, the masked pixels washed with a tint, the mask's border drawn on top.

    Works a block of rows at a time so a 12000x8000 photo needs no full-size float copies.
    """
    width = max(1, min(mask.shape) // 250)  # ~2 px on a 600 px photo, thicker on big ones
    # erosion by a (2w+1)² square as a minimum filter: separable, so cost does not grow with the width
    inner = ndimage.minimum_filter(mask.astype(np.uint8), size=2 * width + 1, mode="constant", cval=1)
    outline = mask & (inner == 0)
    overlay = np.empty(rgb.shape, dtype=np.uint8)
    for start in range(0, rgb.shape[0], rows_per_block):
        rows = slice(start, start + rows_per_block)
        block = rgb[rows].astype(np.float32)  # a copy: the photo itself stays untouched
        block_mask = mask[rows]
        block[block_mask] = (1 - OVERLAY_TINT_STRENGTH) * block[block_mask] + OVERLAY_TINT_STRENGTH * OVERLAY_TINT
        block[outline[rows]] = OVERLAY_OUTLINE
        overlay[rows] = to_uint8(block)
    return overlay


def describe_run(image: LoadedImage, results: list[SegmentationResult], config: SegmentConfig,
                 info: ModelInfo) -> dict:
    """segment.json's content: what was asked, what came out, how long it took, which weights."""
    height, width = image.size
    metadata = {
        "tool": "image_to_3d segment",
        "version": __version__,
        "image": image.path,
        "image_size": {"width": width, "height": height},
        "mode": config.mode,
        "segmenter": config.segmenter,
        "instance": str(config.sam3.instance) if config.segmenter == "sam3" else None,
        "threshold": config.threshold,
        "paper_keep": config.paper_keep if config.mode == "paper" else None,
        "points_per_side": config.points_per_side if config.mode == "paper" else None,
        "models": info.mode.value,
        "model_ids": {
            "clipseg": {"id": info.clipseg_id, "revision": info.clipseg_revision},
            "sam": {"variant": info.sam_variant, "id": info.sam_id, "sha256": info.sam_sha256},
        },
        "device": info.device,
        "half": info.half,
        "prompts": [],
    }
    if config.segmenter == "sam3":  # SAM 3 replaces both models; mode/threshold/SAM ids do not apply
        metadata.update(mode="sam3", threshold=None, model_ids={"sam3": {"id": info.sam_id}})
    if info.mode.meaningless:
        metadata["note"] = MEANINGLESS_NOTE.format(mode=info.mode.value)
    for result in results:
        entry = {
            "prompt": result.prompt,
            "slug": result.slug,
            "score": round(float(result.score), 6),
            "mask_pixels": int(result.mask.sum()),
            "files": {kind: f"{result.slug}.{kind}.png" for kind in ("mask", "cutout", "overlay")},
            "timings": {k: round(v, 6) for k, v in result.timings.items()},
        }
        if result.sam_masks is not None:
            entry["sam_masks"] = int(result.sam_masks)
        if result.kept_masks is not None:
            entry["kept_masks"] = int(len(result.kept_masks))
            entry["kept_scores"] = [round(float(s), 6) for s in result.kept_scores]
        if result.mode == "sam3" and result.kept_masks is not None:  # written by write_instance_masks
            entry["instances"] = [{"rank": rank, "score": round(float(score), 6),
                                   "mask": instance_mask_name(result.slug, rank)}
                                  for rank, score in enumerate(result.kept_scores, start=1)]
        if result.prompts_used is not None:
            used = result.prompts_used
            entry["prompts_used"] = {
                "box_xyxy": [round(float(v), 2) for v in used.box],
                "positive_xy": np.round(used.positive.astype(float), 2).tolist(),
                "negative_xy": np.round(used.negative.astype(float), 2).tolist(),
            }
        metadata["prompts"].append(entry)
    return metadata
