"""The work a job does, as a plain callable ``work(control) -> result`` built from a JobConfig.

This is the only module of the add-on that calls into ``backend`` (imported inside the callables, when a
job starts, so enabling the add-on stays instant). Tests replace :func:`build_segment_work` and
:func:`build_generate_work` with fakes that write the same files.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..properties.job_config import MODEL_REPOS, AddonOptions, JobConfig

ONLINE_ACCESS_HINT = ("Blender's online access is off: enable Preferences > System > Network > Allow Online Access "
                      "to download models once, or set local model folders in the add-on preferences")


@dataclass(frozen=True)
class SegmentedPrompt:
    """The files segmentation wrote for one prompt (DESIGN.md §4 names)."""

    prompt: str
    slug: str
    mask_path: Path  # <slug>.mask.png, 8-bit 0/255, the photo's size
    cutout_path: Path  # <slug>.cutout.png, RGBA
    overlay_path: Path  # <slug>.overlay.png


@dataclass(frozen=True)
class SegmentPreview:
    """What a segment job hands to the main thread."""

    out_dir: Path
    prompts: tuple[SegmentedPrompt, ...]


def output_root(options: AddonOptions) -> Path:
    """The folder that holds every job's folder (and history.json): the one chosen in the preferences, else
    ``jobs/`` in the platform's per-user data folder (never a shared one such as the temp folder, where
    another user could plant a link and receive our files), created private (0700)."""
    if options.output_dir:
        return Path(options.output_dir)
    from ..backend.errors import ImageTo3DError
    from ..backend.private_dirs import private_folder, user_data_dir

    root = user_data_dir() / "jobs"
    try:
        private_folder(root)
    except ImageTo3DError:
        pass  # the job's own write then fails with the one-line reason (exit 2)
    return root


def job_out_dir(options: AddonOptions, kind: str, prompt: str | None) -> Path:
    """A fresh folder name for one job's files (created by the backend, atomically)."""
    root = output_root(options)
    label = re.sub(r"[^a-z0-9]+", "-", (prompt or kind).lower()).strip("-") or kind
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{label}"
    path, number = root / stem, 1
    while path.exists():  # two jobs within one second (a quick re-run) must not share a folder
        number += 1
        path = root / f"{stem}-{number}"
    return path


def job_environment(options: AddonOptions) -> dict[str, str]:
    """Environment variables the backend reads, set for the job's duration."""
    env: dict[str, str] = {}
    if not options.online_access:
        env["HF_HUB_OFFLINE"] = "1"
    if options.model_source == "local" and options.local_model_dirs:
        env["IMAGE_TO_3D_MODEL_DIR"] = str(linked_model_dir(options.local_model_dirs))
    return env


def use_python_packages(options: AddonOptions) -> None:
    """Put the preference's Python packages folder on sys.path (after Blender's own) before the job imports torch.

    Done when a job starts, never at register time, so enabling the add-on stays instant and harmless.
    """
    if not options.python_packages_dir:
        return
    from ..backend.environment_check import add_packages_folder
    from ..backend.errors import BadInputError

    try:
        add_packages_folder(options.python_packages_dir)
    except FileNotFoundError as exc:
        raise BadInputError(f"{exc}: fix or clear it in the add-on preferences") from exc


def linked_model_dir(local_dirs: dict[str, str]) -> Path:
    """A folder of links ``<repo id with / → -->`` → the user's folder per model (the layout hub.py reads)."""
    root = Path(tempfile.mkdtemp(prefix="image_to_3d_models_"))
    for key, folder in local_dirs.items():
        if key in MODEL_REPOS and folder:
            _link_folder(Path(folder).resolve(), root / MODEL_REPOS[key].replace("/", "--"))
    return root


def _link_folder(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link, target_is_directory=True)
    except OSError:
        if sys.platform != "win32":
            raise
        import _winapi  # symlinks need developer mode on Windows; junctions need nothing

        _winapi.CreateJunction(str(target), str(link))


def build_segment_work(config: JobConfig, out_dir: Path) -> Callable[[Any], SegmentPreview]:
    """``work(control)`` that runs text-guided segmentation of every prompt into ``out_dir``."""

    def work(control) -> SegmentPreview:
        from ..backend.segment import SegmentConfig, segment_to_folder, slugify

        options = config.options
        seg_config = SegmentConfig(mode=config.mode, sam_variant=options.sam_variant, device=options.device,
                                   half=options.half_precision)
        with _explained_model_errors(options):
            segment_to_folder(config.image_path, list(config.prompts), seg_config, out_dir, control)
        return collect_segment_files(out_dir, config.prompts, slugify)

    return work


def build_generate_work(config: JobConfig, out_dir: Path) -> Callable[[Any], Any]:
    """``work(control)`` that runs the whole pipeline; returns backend.generate's GenerationResult."""

    def work(control):
        from ..backend.generate import generate

        request = generate_request(config, out_dir)
        if config.mask_path:
            request = dataclasses.replace(request, mask=read_mask_png(config.mask_path))
        with _explained_model_errors(config.options):
            return generate(request, control)

    return work


def build_generate_many_work(config: JobConfig, out_root: Path,
                             deliver: Callable[[Any], None]) -> Callable[[Any], Any]:
    """``work(control)`` for several prompts: one segmentation, then one object per prompt, each handed to
    ``deliver`` (backend.generate.ObjectDone) as soon as it is finished; returns the ManyGenerationResult."""

    def work(control):
        from ..backend.generate import generate_many

        with _explained_model_errors(config.options):
            return generate_many(config.image_path, list(config.prompts), out_root,
                                 generate_request(config, out_root), control, deliver)

    return work


def build_correct_mask_work(config: JobConfig, mask_path: str, points: list[tuple[float, float]],
                            labels: list[int], out_dir: Path) -> Callable[[Any], SegmentPreview]:
    """``work(control)`` that corrects the first prompt's mask with the points and writes the same three PNGs as
    Segment (mask, cut-out, overlay) into ``out_dir``."""

    def work(control) -> SegmentPreview:
        from ..backend.images import load_image
        from ..backend.segment import SegmentConfig, slugify
        from ..backend.segment.correction import correct_mask

        options = config.options
        control.report("correct mask", 0.0, f"{len(points)} point(s)")
        image = load_image(config.image_path)
        seg_config = SegmentConfig(mode=config.mode, sam_variant=options.sam_variant, device=options.device,
                                   half=options.half_precision)
        with _explained_model_errors(options):
            mask = correct_mask(image, read_mask_png(mask_path), points, labels, seg_config)
        control.report("correct mask", 0.9, "writing the mask")
        write_mask_images(out_dir, slugify(config.prompt or "object"), image, mask)
        return collect_segment_files(out_dir, config.prompts[:1], slugify)

    return work


def generate_request(config: JobConfig, out_dir: Path):
    """The backend request for ``config`` (its first prompt, no mask)."""
    from ..backend.generate import GenerateRequest

    options = config.options
    return GenerateRequest(image_path=config.image_path, prompt=config.prompt, out_dir=str(out_dir),
                           preset=config.preset, seed=config.seed, mode=config.mode,
                           sam_variant=options.sam_variant, device=options.device, half=options.half_precision)


def read_mask_png(path: str | os.PathLike):
    """[H, W] bool from an 8-bit mask PNG (0 / 255)."""
    import numpy as np
    from PIL import Image

    from ..backend.errors import BadInputError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) > 127
    except OSError as exc:
        raise BadInputError(f"cannot read the mask {path}: {exc}") from None


def write_mask_images(out_dir: Path, slug: str, image, mask) -> None:
    """<slug>.mask.png, .cutout.png and .overlay.png as Segment writes them, atomically."""
    import numpy as np

    from ..backend.atomic_output import AtomicOutputDir
    from ..backend.segment.outputs import write_prompt_images
    from ..backend.segment.result import SegmentationResult

    result = SegmentationResult(prompt=slug, slug=slug, mode="corrected", mask=mask, score=1.0,
                                heatmap=np.zeros((1, 1), np.float32), working_size=mask.shape)
    with AtomicOutputDir(out_dir) as staging:
        write_prompt_images(staging, image, result)


def collect_segment_files(out_dir: Path, prompts, slugify: Callable[[str], str]) -> SegmentPreview:
    items = []
    for prompt in prompts:
        slug = slugify(prompt)
        items.append(SegmentedPrompt(prompt, slug, out_dir / f"{slug}.mask.png", out_dir / f"{slug}.cutout.png",
                                     out_dir / f"{slug}.overlay.png"))
    return SegmentPreview(out_dir=Path(out_dir), prompts=tuple(items))


@contextmanager
def _explained_model_errors(options: AddonOptions):
    """Adds where-to-put-the-files advice to a models-unavailable error; frees memory after the job if asked."""
    from ..backend.errors import ModelsUnavailableError

    try:
        yield
    except ModelsUnavailableError as exc:
        if options.online_access:
            raise
        raise ModelsUnavailableError(f"{exc}; {ONLINE_ACCESS_HINT}") from exc
    finally:
        if not options.keep_models_loaded:
            release_model_memory()


def release_model_memory() -> None:
    """Drop what this job left referenced and return cached CUDA blocks to the driver."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
