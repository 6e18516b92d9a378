"""Times of the quick method's stages and of whole jobs per method, with peak GPU memory (issue 22).

    python3 scripts/time_quick.py --models full-random --device cuda --out quick-h200.json   (on the GPU host)
    python3 scripts/time_quick.py --models tiny --device cpu --preset smoke --repeats 1 --steps 2   (CPU check)

Every measurement is printed as soon as it is made and the JSON (``--out``) is rewritten after each one, so a
run stopped by a timeout still leaves everything measured until then.

1. Model build: TripoSR for ``--models``, timed (the first job of each other method also builds its models:
   reported as that method's warm-up).
2. Stages, median of ``--repeats`` after one warm-up (backend.bench_timing): the TripoSR forward pass (and, on
   CUDA, the same pass under bf16 autocast, for comparison only: the pipeline runs fp32), the density grid on
   the model's device (with random weights including the stand-in field, backend/quick/field_mesh.py),
   marching cubes alone, the whole CPU part of the mesh (marching cubes, cleanup, smoothing, decimation),
   UV unwrapping and the colour-field bake, at the preset's sizes.
3. Whole jobs through backend.generate on one RGBA cut-out (no segmentation), in the order ``--methods``
   gives: ``quick`` ``--repeats`` times, ``quick+refine`` and ``dreamgaussian`` once each, all at ``--preset``
   (named in the output). A method runs one untimed warm-up job first unless an earlier method already built
   its models (dreamgaussian after quick+refine: the same Zero123 and renderer). Each job's own per-stage times
   (export included) come from its result. A failed job is recorded with its error, the next method still
   runs, and the script exits 1 at the end.

With random weights the mesh is of a stand-in ball of a real object's size (backend/quick/field_mesh.py), so
the mesh, UV and bake stages do a real job's amount of work; the outputs are meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.api import GenerateRequest, generate  # noqa: E402
from backend.bench_timing import StageTiming, time_stage  # noqa: E402
from backend.choices import DREAMGAUSSIAN, METHODS, QUICK, QUICK_REFINE, names  # noqa: E402
from backend.device import resolve_device  # noqa: E402
from backend.mesh.extract import marching_cubes  # noqa: E402
from backend.mesh.uv_unwrap import UnwrapConfig, unwrap_uvs  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.models.triposr import load_triposr_cached, world_scale, world_to_triposr  # noqa: E402
from backend.quick.config import quick_config  # noqa: E402
from backend.quick.field_bake import bake_colour_field  # noqa: E402
from backend.quick.field_mesh import grid_to_mesh, mesh_from_grid  # noqa: E402

# The models each method builds: a method needs a warm-up job only while one of its families is not built yet.
MODEL_FAMILIES = {QUICK: {"triposr"}, QUICK_REFINE: {"triposr", "zero123"}, DREAMGAUSSIAN: {"zero123"}}
DEFAULT_METHODS = (QUICK, QUICK_REFINE, DREAMGAUSSIAN)


class Report:
    """The results so far: printed line by line as they come, and rewritten to ``path`` after each."""

    def __init__(self, path: Path | None, header: dict):
        self.path = path
        self.started = time.perf_counter()
        self.data = dict(header, stages={}, jobs={})
        self.save()

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f} s] {text}", flush=True)

    def save(self) -> None:
        if self.path is None:
            return
        self.data["elapsed_s"] = round(time.perf_counter() - self.started, 1)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.data, indent=2))
        os.replace(partial, self.path)  # a reader never sees half a file

    def stage(self, timing: StageTiming, **extra) -> None:
        entry = dict(timing.as_dict(), **extra)
        self.data["stages"][timing.name] = entry
        extras = "".join(f", {key} {value}" for key, value in extra.items())
        self.say(f"stage {timing.name}: median {timing.median_s:.4f} s of {len(timing.runs_s)}, "
                 f"peak {timing.peak_gpu_memory_mb:.0f} MB{extras}{f' ({timing.note})' if timing.note else ''}")
        self.save()


def cutout(path: Path, size: int = 512) -> Path:
    """An RGBA photo of a shaded disc on transparency: a cut-out, so no job spends time on segmentation."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    disc = (xx - 0.5) ** 2 + (yy - 0.55) ** 2 < 0.3**2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = (255 * xx).astype(np.uint8)
    rgba[..., 1] = (255 * yy).astype(np.uint8)
    rgba[..., 2] = 120
    rgba[..., 3] = disc * 255
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def time_model_build(report: Report, models: ModelMode, device: torch.device):
    report.say(f"building TripoSR ({models.value}) on {device}")
    start = time.perf_counter()
    loaded = load_triposr_cached(models, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in loaded.model.parameters())
    report.data["build_s"] = {"triposr": round(seconds, 3)}
    report.data["triposr_parameters"] = parameters
    report.say(f"built TripoSR in {seconds:.2f} s ({parameters / 1e6:.0f} M parameters)")
    report.save()
    return loaded


def time_stages(report: Report, loaded, models: ModelMode, device: torch.device, preset: str, repeats: int) -> None:
    config = quick_config(preset)
    size = loaded.config.cond_image_size
    image = torch.rand(1, 3, size, size, device=device, generator=torch.Generator(device).manual_seed(0))
    scale = world_scale(config.border_ratio)

    def timed(name: str, work: Callable[[], object], note: str = "") -> StageTiming:
        report.say(f"timing {name} ({repeats} runs after a warm-up)")
        return time_stage(name, work, device, repeats, note=note)

    def forward():
        with torch.no_grad():
            return loaded.model(image)[0]

    report.stage(timed("triposr_forward", forward, f"fp32, {size}² input"))
    if device.type == "cuda":
        def forward_bf16():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                return loaded.model(image)[0]

        try:  # a comparison only: its failure must not cost the measurements after it
            report.stage(timed("triposr_forward_bf16", forward_bf16, "bf16 autocast: for comparison, not used"))
        except RuntimeError as exc:
            report.data["stages"]["triposr_forward_bf16"] = {"error": str(exc).splitlines()[0][:300]}
            report.say(f"stage triposr_forward_bf16 failed: {str(exc).splitlines()[0][:300]}")
            report.save()
    triplane = forward()

    def grid():
        return grid_to_mesh(loaded.model, triplane, config.mesh, models.meaningless)

    resolution = config.mesh.resolution
    report.stage(timed("density_grid", grid, f"{resolution}³ points on {device}, to the CPU"))
    field, level, _ = grid()
    radius = loaded.config.radius
    faces = len(marching_cubes(field, level, radius)[1])
    report.stage(timed("marching_cubes", lambda: marching_cubes(field, level, radius), f"{resolution}³, CPU"),
                 faces=faces)

    def mesh():
        return mesh_from_grid(field, level, radius, scale, config.mesh)

    surface = mesh()
    report.stage(timed("mesh_cpu", mesh, "marching cubes, cleanup, smoothing, decimation"),
                 faces=surface.face_count)
    unwrap = UnwrapConfig(resolution=config.texture_size)
    report.stage(timed("uv_unwrap", lambda: unwrap_uvs(surface, unwrap)))
    unwrapped = unwrap_uvs(surface, unwrap)

    def colour_at(points):
        return loaded.model.query_field(triplane, world_to_triposr(points, scale)).colour

    report.stage(timed("colour_bake", lambda: bake_colour_field(unwrapped, colour_at, config.texture_size,
                                                               device=device),
                       f"texture {config.texture_size}² on {device}"))


def run_job(models: ModelMode, device_name: str, preset: str, method: str, steps: int | None, photo: Path,
            out: Path, seed: int) -> tuple[float, dict]:
    request = GenerateRequest(image_path=str(photo), prompt=None, out_dir=str(out), preset=preset,
                              steps=None if method == QUICK else steps, models=models.value, device=device_name,
                              method=method, seed=seed, force=True)
    start = time.perf_counter()
    result = generate(request)
    wall = time.perf_counter() - start
    # the result's stage times, not job.json's: job.json is written inside the export stage, so lacks its time
    stages = {name: round(seconds, 4) for name, seconds in result.timings.items()}
    return wall, {"wall_s": round(wall, 3), "stages_s": stages, "peak_gpu_memory_mb": round(result.peak_gpu_memory_mb, 1)}


def time_jobs(report: Report, models: ModelMode, device_name: str, preset: str, methods: list[str], repeats: int,
              steps: int | None, folder: Path) -> list[str]:
    """Time each method's jobs; a method whose job fails is recorded with its error and the next one still
    runs. Returns the failed methods."""
    photo = cutout(folder / "cutout.png")
    built: set[str] = {"triposr"}  # by time_model_build, in this process's model cache
    failed = []
    for index, method in enumerate(methods):
        entry: dict = {"preset": preset, "steps": None if method == QUICK else steps}
        report.data["jobs"][method] = entry
        try:
            time_method(report, models, device_name, preset, method, repeats, steps, photo, folder, index, entry,
                        built)
        except Exception as exc:  # noqa: BLE001 - recorded in the report; the exit status says it failed
            entry["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            report.say(f"job {method} failed: {entry['error']}")
            report.save()
            failed.append(method)
    return failed


def time_method(report: Report, models: ModelMode, device_name: str, preset: str, method: str, repeats: int,
                steps: int | None, photo: Path, folder: Path, index: int, entry: dict, built: set[str]) -> None:
    """One method's warm-up (when its models are not built yet) and timed jobs, into ``entry``."""
    stem = method.replace("+", "_")
    if not MODEL_FAMILIES[method] <= built:
        report.say(f"job {method}: warm-up (builds its models)")
        wall, _ = run_job(models, device_name, preset, method, steps, photo, folder / f"{stem}_warmup", index)
        entry["warmup_wall_s"] = round(wall, 3)
        built |= MODEL_FAMILIES[method]
        report.say(f"job {method}: warm-up took {wall:.2f} s")
        report.save()
    runs = []
    for attempt in range(repeats if method == QUICK else 1):
        report.say(f"job {method}: timed run {attempt + 1}")
        wall, job = run_job(models, device_name, preset, method, steps, photo, folder / f"{stem}_{attempt}", index)
        runs.append(job)
        entry.update(runs=runs, median_wall_s=round(statistics.median(r["wall_s"] for r in runs), 3))
        report.say(f"job {method}: {wall:.2f} s, peak {job['peak_gpu_memory_mb']:.0f} MB, stages "
                   + ", ".join(f"{name} {seconds:.2f}" for name, seconds in job["stages_s"].items()))
        report.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=[m.value for m in ModelMode], default="full-random")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--preset", default="standard", help="quick and DreamGaussian preset of every measurement")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per stage and of the quick job")
    parser.add_argument("--steps", type=int, default=None,
                        help="stage-1 steps of the quick+refine and dreamgaussian jobs (default: the preset's)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="whole jobs to time, comma-separated")
    parser.add_argument("--skip-stages", action="store_true", help="time whole jobs only")
    parser.add_argument("--out", default=None, help="write the results here as JSON (rewritten after each one)")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in names(METHODS)]
    if unknown or args.repeats < 1:
        parser.error(f"unknown methods {unknown} (choose from {names(METHODS)})" if unknown else "--repeats must be ≥ 1")
    quick_config(args.preset)  # an unknown preset fails now, not after the model build
    models, device = ModelMode(args.models), resolve_device(args.device)
    report = Report(Path(args.out) if args.out else None, {
        "models": models.value, "device": str(device), "preset": args.preset, "repeats": args.repeats,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "torch": torch.__version__})
    loaded = time_model_build(report, models, device)
    if not args.skip_stages:
        time_stages(report, loaded, models, device, args.preset, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        failed = time_jobs(report, models, args.device, args.preset, methods, args.repeats, args.steps, Path(tmp))
    # each stage and job resets CUDA's peak counter: the overall peak is the largest of theirs
    peaks = [stage["peak_gpu_memory_mb"] for stage in report.data["stages"].values() if "peak_gpu_memory_mb" in stage]
    peaks += [run["peak_gpu_memory_mb"] for job in report.data["jobs"].values() for run in job.get("runs", [])]
    report.data["peak_gpu_memory_mb"] = max(peaks, default=0.0)
    report.save()
    report.say(f"done; failed: {', '.join(failed)}" if failed else "done")
    print(json.dumps(report.data, indent=2), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
