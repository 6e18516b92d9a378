"""Times of the quick method's stages and of whole jobs per method, with peak GPU memory (issue 22).

    python3 scripts/time_quick.py --models full-random --device cuda --out quick-h200.json   (on the GPU host)
    python3 scripts/time_quick.py --models tiny --device cpu --preset smoke --repeats 1     (CPU check)

Stages (median of ``--repeats`` after one warm-up, backend.bench_timing): the TripoSR forward pass, the density
grid + marching cubes + cleanup (field mesh), UV unwrapping, and the colour-field bake, at the preset's sizes.
Whole jobs (warm: models already loaded by the warm-up job): ``quick``, ``quick+refine`` and ``dreamgaussian``
through backend.generate, on an RGBA cut-out (no segmentation), each job's own per-stage times from job.json.
With random weights the field mesh uses the random-weights level (backend/quick/field_mesh.py), so mesh,
UV and bake times describe a surface of the decimation cap's size, not a real object's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.api import GenerateRequest, generate  # noqa: E402
from backend.bench_timing import time_stage  # noqa: E402
from backend.choices import METHODS, names  # noqa: E402
from backend.device import resolve_device  # noqa: E402
from backend.mesh.extract import marching_cubes  # noqa: E402
from backend.mesh.uv_unwrap import UnwrapConfig, unwrap_uvs  # noqa: E402
from backend.models.mode import ModelMode  # noqa: E402
from backend.models.triposr import load_triposr_cached, world_scale, world_to_triposr  # noqa: E402
from backend.quick.config import quick_config  # noqa: E402
from backend.quick.field_bake import bake_colour_field  # noqa: E402
from backend.quick.field_mesh import RANDOM_WEIGHTS_INSIDE_FRACTION, density_on_grid, extract_field_mesh  # noqa: E402


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


def stage_times(models: ModelMode, device: torch.device, preset: str, repeats: int) -> dict:
    config = quick_config(preset)
    loaded = load_triposr_cached(models, device)
    size = loaded.config.cond_image_size
    image = torch.rand(1, 3, size, size, device=device)
    scale = world_scale(config.border_ratio)
    results = {}

    def forward():
        with torch.no_grad():
            return loaded.model(image)[0]

    results["triposr_forward"] = time_stage("triposr_forward", forward, device, repeats).as_dict()
    triplane = forward()
    random_weights = models.meaningless

    def field_mesh():
        return extract_field_mesh(loaded.model, triplane, scale, config.mesh, random_weights=random_weights).mesh

    timing = time_stage("field_mesh", field_mesh, device, repeats, note=f"grid {config.mesh.resolution}³")
    mesh = field_mesh()
    grid = density_on_grid(loaded.model, triplane, config.mesh.resolution, config.mesh.chunk).float().cpu().numpy()
    level = float(np.quantile(grid, 1 - RANDOM_WEIGHTS_INSIDE_FRACTION)) if random_weights else config.mesh.threshold
    raw_faces = len(marching_cubes(grid, level, loaded.config.radius)[1])
    # marching-cubes faces before cleanup and decimation: what the CPU part of the mesh stage had to chew on
    results["field_mesh"] = dict(timing.as_dict(), faces=mesh.face_count, marching_cubes_faces=raw_faces)
    results["density_grid"] = time_stage(
        "density_grid", lambda: density_on_grid(loaded.model, triplane, config.mesh.resolution, config.mesh.chunk),
        device, repeats, note="the GPU part of field_mesh").as_dict()
    unwrap = UnwrapConfig(resolution=config.texture_size)
    results["uv_unwrap"] = time_stage("uv_unwrap", lambda: unwrap_uvs(mesh, unwrap), device, repeats).as_dict()
    unwrapped = unwrap_uvs(mesh, unwrap)

    def colour_at(points):
        return loaded.model.query_field(triplane, world_to_triposr(points, scale)).colour

    results["colour_bake"] = time_stage(
        "colour_bake", lambda: bake_colour_field(unwrapped, colour_at, config.texture_size, device=device), device,
        repeats, note=f"texture {config.texture_size}²").as_dict()
    return results


def job_times(models: ModelMode, device_name: str, preset: str, methods: list[str], folder: Path) -> dict:
    photo = cutout(folder / "cutout.png")
    results = {}
    for index, method in enumerate(methods):
        for attempt in ("warm-up", "timed"):
            out = folder / f"{method.replace('+', '_')}_{attempt}"
            request = GenerateRequest(image_path=str(photo), prompt=None, out_dir=str(out), preset=preset,
                                      models=models.value, device=device_name, method=method, seed=index, force=True)
            start = time.perf_counter()
            result = generate(request)
            elapsed = time.perf_counter() - start
        job = json.loads(result.job_json_path.read_text())
        results[method] = {"wall_s": round(elapsed, 3), "stages_s": job["timings_s"],
                           "peak_gpu_memory_mb": round(result.peak_gpu_memory_mb, 1)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=[m.value for m in ModelMode], default="full-random")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", default=",".join(names(METHODS)), help="whole jobs to time, comma-separated")
    parser.add_argument("--out", default=None, help="write the results here as JSON")
    args = parser.parse_args()
    models, device = ModelMode(args.models), resolve_device(args.device)
    report = {"models": models.value, "device": str(device), "preset": args.preset,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "stages": stage_times(models, device, args.preset, args.repeats)}
    methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        report["jobs"] = job_times(models, args.device, args.preset, methods, Path(tmp))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
