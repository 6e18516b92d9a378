"""``python -m backend bench``: per-stage times and peak GPU memory of the whole pipeline.

Each stage is timed as the median of ``--repeats`` runs (default 5) after one warm-up run
(:func:`backend.bench_timing.time_stage`). ``--models full-random`` uses real-size architectures with random
weights (timing on a GPU); ``--models tiny`` runs the same code at smoke sizes on the CPU, so CI keeps the
benchmark working.

Random weights distort data-dependent work, so two counts are pinned to realistic values:
- SAM automatic masks (paper mode): with random quality heads SAM keeps almost nothing (filters on) or every
  candidate (filters off), and no fixed predicted-IoU cut is safe (the values straddle zero, and SAM reads a
  cut ≤ 0 as "no filter"). So the filters are off and ``SegmentConfig.max_masks`` keeps the ``PAPER_MASKS``
  (150) candidates of highest predicted IoU, about what real weights keep on a cluttered photo. The count the
  timed runs actually fused is reported (``counts.sam_masks`` of the stage).
- Stage 1 runs with ``fixed_gaussian_count`` (30k for full-random) and no densification.
Mesh extraction, bake and stage 2 run on a synthetic object of that many Gaussians (a textured ball with
bumps), because Gaussians fitted to a random prior have no meaningful surface.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import __version__
from .atomic_output import output_path
from .bench_timing import StageTiming, time_stage
from .camera import reference_camera
from .choices import DEFAULT_PRESET
from .device import resolve_device
from .errors import BadInputError
from .gaussians import Gaussians
from .models.mode import ModelMode, resolve_model_mode

PAPER_MASKS = 150
FULL_GAUSSIANS = 30_000
SMOKE_GAUSSIANS = 1_000
BENCH_PROMPTS = ("a coffee cup", "a saucer", "a spoon", "a wooden table", "a plate", "a coffee bean")


def synthetic_object(count: int, device, seed: int = 0) -> Gaussians:
    """A bumpy ball of ``count`` Gaussians with smooth colours: stands in for a fitted object."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(count, 3, generator=g)
    direction = direction / direction.norm(dim=1, keepdim=True)
    bumps = 1 + 0.15 * torch.sin(5 * direction[:, 0]) * torch.cos(4 * direction[:, 1])
    depth = torch.rand(count, 1, generator=g) ** 0.3  # mostly near the surface, some inside
    means = 0.45 * bumps[:, None] * depth * direction
    scales = torch.full((count, 3), 0.02) * (0.5 + torch.rand(count, 3, generator=g))
    quats = torch.randn(count, 4, generator=g)
    quats = quats / quats.norm(dim=1, keepdim=True)
    colors = 0.5 + 0.5 * torch.stack([torch.sin(3 * means[:, 0]), torch.cos(3 * means[:, 1]),
                                      torch.sin(2 * means[:, 2] + 1)], dim=1)
    opacities = torch.full((count,), 0.9)
    return Gaussians(means, scales, quats, opacities, colors).to(device)


def bench_segmentation(mode: ModelMode, device, repeats: int, image, add) -> None:
    from .models.loaded import clear_loaded_models
    from .segment import SegmentConfig
    from .segment.api import run_segmentation

    fast = SegmentConfig(mode="fast", models=mode, device=device.type)

    def fast_run(n):
        return lambda: run_segmentation(image, BENCH_PROMPTS[:n], fast, allow_empty=True)

    one = add(time_stage("segment_fast_1_prompt", fast_run(1), device, repeats,
                         note="CLIPSeg + SAM embedding + decoder, 1 prompt"))
    six = time_stage("segment_fast_6_prompts", fast_run(6), device, repeats, note="one image, 6 prompts")
    add(six)
    further = (six.median_s - one.median_s) / 5
    add(StageTiming("segment_fast_per_further_prompt", further, (), six.peak_gpu_memory_mb,
                               "(6-prompt median - 1-prompt median) / 5"))
    # Per-stage split of one fast run.
    results, _ = run_segmentation(image, BENCH_PROMPTS[:1], fast, allow_empty=True)
    split = {k: round(v, 5) for k, v in results[0].timings.items()}

    # Paper mode with a realistic number of SAM masks (see module docstring). Random masks overlap almost
    # entirely, so NMS would merge them into one; it is off here so that the fusion step sees as many masks as
    # real weights leave (NMS itself costs little next to the decoder).
    paper = SegmentConfig(mode="paper", models=mode, device=device.type, pred_iou_thresh=0.0,
                          stability_score_thresh=0.0, box_nms_thresh=1.0, max_masks=PAPER_MASKS)
    counts = set()

    def paper_run():
        results, _ = run_segmentation(image, BENCH_PROMPTS[:1], paper, allow_empty=True)
        counts.add(results[0].sam_masks)

    timing = time_stage("segment_paper", paper_run, device, repeats)
    seen = "/".join(str(n) for n in sorted(counts))  # one value unless the runs disagree
    add(dataclasses.replace(timing, counts={"sam_masks": max(counts)}, note=(
        f"top {PAPER_MASKS} candidates by predicted IoU, filters and NMS off: {seen} SAM masks; fast-mode split "
        f"of one run: {split}")))
    clear_loaded_models()


def bench_generation(mode: ModelMode, device, repeats: int, image_path: str, smoke: bool, add) -> None:
    from . import api
    from .export import export_gaussians_ply, export_glb, export_obj
    from .export.texture_image import texture_png
    from .generate.presets import pipeline_config
    from .generate.stages import bake_gaussian_texture, load_guidance, unwrap_mesh
    from .mesh import bake_cameras, extract_mesh
    from .mesh.refine_texture import refine_texture
    from .models.zero123 import load_zero123_cached
    from .stage1 import ViewTarget, fit_gaussians

    config = pipeline_config("smoke" if smoke else DEFAULT_PRESET)
    count = SMOKE_GAUSSIANS if smoke else FULL_GAUSSIANS
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    zero123 = load_zero123_cached(mode, device, dtype)  # the instance generate() reuses below
    guidance = load_guidance(zero123, config.guidance)
    size = config.reference_size
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    alpha = ((xx ** 2 / 0.36 + yy ** 2 / 0.5) < 1).float().to(device)
    rgb = torch.stack([0.8 * torch.ones_like(xx), 0.5 + 0.3 * xx, 0.4 + 0.2 * yy], -1).to(device)
    guidance.set_reference((rgb * alpha[..., None] + 1 - alpha[..., None]).permute(2, 0, 1)[None])
    target = ViewTarget(reference_camera(size), rgb, alpha)

    # Zero123 parts: one SDS step (UNet forward with CFG, VAE encode, backward to the image) and one refine.
    image = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    zeros = torch.zeros(1, device=device)

    def sds_step():
        loss = guidance.sds_loss(image, zeros + 10.0, zeros + 30.0, zeros, step_ratio=0.5)
        loss.backward()

    add(time_stage("zero123_sds_step", sds_step, device, repeats, note="batch 1, CFG, fp16 on CUDA"))
    add(time_stage("zero123_refine_call", lambda: guidance.refine(
        image.detach(), zeros + 10.0, zeros + 30.0, zeros, strength=config.texture.refine_strength,
        steps=config.texture.refine_steps), device, repeats, note="stage-2 target: multi-step DDIM"))

    # Stage 1 at a fixed Gaussian count.
    stage1 = dataclasses.replace(config.stage1, fixed_gaussian_count=count)
    s1 = time_stage("stage1_total", lambda: fit_gaussians([target], stage1, guidance, device=device, seed=0),
                    device, repeats, note=f"{stage1.steps} steps, {count} Gaussians, SDS every step")
    add(s1)
    add(StageTiming("stage1_per_step", s1.median_s / stage1.steps, (), s1.peak_gpu_memory_mb,
                               "stage1_total / steps"))

    # Mesh, UVs, bake, stage 2, export on a synthetic object of the same Gaussian count.
    obj = synthetic_object(count, device)
    meshes = {}
    add(time_stage("mesh_extraction", lambda: meshes.__setitem__("raw", extract_mesh(obj, config.mesh)),
                              device, repeats, note=f"grid {config.mesh.resolution}³ → MC → cleanup → decimate"))
    add(time_stage("uv_unwrap", lambda: meshes.__setitem__("uv", unwrap_mesh(meshes["raw"], config.texture_size)),
                              device, repeats, note=f"{len(meshes['raw'].faces)} faces"))

    cams = bake_cameras(config.bake_size)
    add(time_stage("bake", lambda: meshes.__setitem__(
        "baked", bake_gaussian_texture(meshes["uv"], obj, config.bake_size, config.texture_size, cameras=cams)),
        device, repeats,
        note=f"{len(cams)} views at {config.bake_size}², texture {config.texture_size}²"))
    add(time_stage("stage2", lambda: meshes.__setitem__(
        "refined", refine_texture(meshes["baked"], target, guidance, config.texture)), device, repeats,
        note=f"{config.texture.steps} steps, {config.texture.target_views} Zero123 target views"))
    with tempfile.TemporaryDirectory() as tmp:
        def export_all():  # as a job writes them (backend/generate/job_steps.py: write_mesh_files)
            png = texture_png(meshes["refined"])
            export_glb(meshes["refined"], Path(tmp) / "model.glb", {"generator": "bench"}, texture_png=png)
            export_obj(meshes["refined"], Path(tmp), texture_png=png)
            export_gaussians_ply(obj, Path(tmp) / "gaussians.ply")

        add(time_stage("export", export_all, device, repeats, note="GLB + OBJ + PLY"))

    # Photo → GLB, warm (models loaded once, cache bypassed with force).
    with tempfile.TemporaryDirectory() as tmp:
        request = api.GenerateRequest(image_path=image_path, prompt="a coffee cup", out_dir=tmp,
                                  preset="smoke" if smoke else DEFAULT_PRESET, models=mode.value, device=device.type,
                                  force=True)
        peaks = {}

        def whole():
            peaks["run"] = api.generate(request).peak_gpu_memory_mb

        add(time_stage("photo_to_glb", whole, device, max(1, min(repeats, 3)),
                                  note="generate(), warm, --force (no cached stages)"))


def _report_path(text: str) -> Path:
    """``--out`` checked before any timing: exit 2 when the report could never be written (an empty path, a
    folder, a parent that is a file), not a crash after the first stage."""
    out = output_path(text)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir():
            raise BadInputError(f"--out must name a file, not a folder: {out}")
        existed = out.exists()
        with open(out, "a", encoding="utf-8"):  # appends nothing: only proves the report can be written
            pass
        if not existed:
            out.unlink()
    except OSError as exc:
        raise BadInputError(f"cannot write the report {out}: {exc.strerror or exc}") from None
    return out


def run_bench_command(args: argparse.Namespace) -> int:
    import skimage

    from .images import load_image

    if args.repeats < 1:  # a median of no runs is no measurement
        raise BadInputError(f"--repeats must be at least 1, got {args.repeats}")
    mode = resolve_model_mode(args.models)
    if mode is ModelMode.REAL:
        mode = ModelMode.FULL_RANDOM  # the benchmark times architectures, never needs weights
    device = resolve_device(args.device)
    repeats = args.repeats
    smoke = mode is ModelMode.TINY
    photo = str(Path(skimage.__file__).parent / "data" / "coffee.png")
    image = load_image(photo)
    started = time.perf_counter()
    timings: list[StageTiming] = []
    out = _report_path(args.out)

    def add(timing: StageTiming) -> StageTiming:
        """Record a stage and rewrite the report, so a run cut short still leaves what it measured."""
        timings.append(timing)
        mem = f"{timing.peak_gpu_memory_mb:8.0f} MB" if device.type == "cuda" else ""
        print(f"{timing.name:<32}  {timing.median_s * 1000:10.1f} ms {mem}", file=sys.stderr, flush=True)
        out.write_text(json.dumps(_report(timings), indent=2))
        return timing

    def _report(done: list[StageTiming]) -> dict:
        return {
            "generator": f"image_to_3d {__version__} bench",
            "models": mode.value,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "date": time.strftime("%Y-%m-%d"),
            "repeats": repeats,
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "stages": {t.name: t.as_dict() for t in done},
            "total_bench_s": round(time.perf_counter() - started, 1),
        }

    if args.stages in ("all", "segment"):
        bench_segmentation(mode, device, repeats, image, add)
    if args.stages in ("all", "generate"):
        bench_generation(mode, device, repeats, photo, smoke, add)
    return 0

