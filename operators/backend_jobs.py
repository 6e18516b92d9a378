"""The work a job does, as a plain callable ``work(control) -> result`` built from a JobConfig.

This is the only module of the add-on that calls into ``backend`` (imported inside the callables, when a
job starts, so enabling the add-on stays instant). Tests replace :func:`build_segment_work` and
:func:`build_generate_work` with fakes that write the same files.
"""

from __future__ import annotations

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


def job_out_dir(options: AddonOptions, kind: str, prompt: str | None) -> Path:
    """A fresh folder name for one job's files (created by the backend, atomically)."""
    root = Path(options.output_dir) if options.output_dir else Path(tempfile.gettempdir()) / "image_to_3d"
    label = re.sub(r"[^a-z0-9]+", "-", (prompt or kind).lower()).strip("-") or kind
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{label}"


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
        from ..backend.generate import GenerateRequest, generate

        options = config.options
        request = GenerateRequest(image_path=config.image_path, prompt=config.prompt, out_dir=str(out_dir),
                                  preset=config.preset, seed=config.seed, mode=config.mode,
                                  sam_variant=options.sam_variant, device=options.device,
                                  half=options.half_precision)
        with _explained_model_errors(options):
            return generate(request, control)

    return work


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
