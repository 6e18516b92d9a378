"""Where a group of batch rows spends its time on the GPU: the phases of ``generate_together`` and the parts of
one stage-1 step (full-random models, draft preset, on a CUDA machine).

    python3 scripts/profile_batch_group.py --rows 8 --out group.json [--trace-steps 10]

1. Two groups of ``--rows`` rows (the bench's four photos × seeds) through ``generate_together``: the first warms
   up (models, CUDA graphs), the second is timed; each row's stage seconds come from its result (stage 1 and 2
   are the group's, the rest the row's own). With ``--profile-stage2`` the timed group's stage 2 runs under
   torch's profiler (its wall and GPU-busy time, its top operators).
2. Stage 1's step for the same group, step by step, with a device sync after each part, in the order
   ``backend.stage1.advance_together`` runs them (every row's preparation; the batched renders: all rows'
   target views in one call, all rows' SDS views in another; every row's losses; the shared SDS call; the one
   backward pass; every row's Adam step and density control) and, for ``--trace-steps`` steps, torch's
   profiler: the GPU's busy time against the wall time, and the operators that took the most host and GPU
   time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from bench_batch import photo_rows  # noqa: E402  (the bench's rows: one list of photos and prompts)

from backend.generate.pipeline import _prepare_job, _stage1_arguments, _start_job, generate_together  # noqa: E402
from backend.generate.request import GenerateRequest  # noqa: E402
from backend.job_control import ensure_control  # noqa: E402
from backend.stage1 import (  # noqa: E402
    Stage1Job,
    _backward,
    _ObjectFit,
    _optimiser_steps,
    _prepare_steps,
    _render_steps,
    _score_distillation,
    _step_losses,
    advance_together,
)

MODELS, DEVICE, COMPILE_VAE_ENCODER = "full-random", "cuda", False


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def requests(rows: int, first_seed: int, out: Path, preset: str) -> list[GenerateRequest]:
    return [GenerateRequest(image_path=str(image), prompt=prompt, out_dir=str(out / f"row{first_seed}-{i}"),
                            preset=preset, seed=seed, models=MODELS, device=DEVICE,
                            compile_vae_encoder=COMPILE_VAE_ENCODER)
            for i, (image, prompt, seed) in enumerate(photo_rows(rows, first_seed))]


def group_phases(rows: int, preset: str, work: Path, profile_stage2: bool) -> dict:
    found = {}
    for name, seed in (("warm-up group", 0), ("timed group", 100)):
        start = time.perf_counter()
        if profile_stage2 and name == "timed group":
            with stage2_profiled() as stage2:
                results = generate_together(requests(rows, seed, work, preset))
            found["timed group stage 2"] = stage2
        else:
            results = generate_together(requests(rows, seed, work, preset))
        wall = time.perf_counter() - start
        failed = [repr(r) for r in results if isinstance(r, Exception)]
        per_stage = defaultdict(list)
        for result in results:
            if not isinstance(result, Exception):
                for stage, seconds in result.timings.items():
                    per_stage[stage].append(seconds)
        found[name] = {"wall_s": round(wall, 2), "failed": failed,
                       "stage_s": {stage: {"sum": round(sum(v), 2), "each_median": round(statistics.median(v), 3)}
                                   for stage, v in per_stage.items()}}
        print(name, json.dumps(found[name]), flush=True)
    return found


@contextlib.contextmanager
def stage2_profiled():
    """While in the block, ``refine_textures_together`` (stage 2 of a group; ``generate_together`` imports it when
    called) runs under torch's profiler; the dict yielded gets its wall and GPU-busy time and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    from backend.mesh import refine_texture

    found: dict = {}
    plain = refine_texture.refine_textures_together

    def profiled(*args, **kwargs):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            sync()
            start = time.perf_counter()
            outcome = plain(*args, **kwargs)
            sync()
            found["wall_s"] = round(time.perf_counter() - start, 3)
        found["gpu_busy_s"] = round(device_busy_ms(prof.events()) / 1000, 3)  # union of device intervals
        events = prof.key_averages()
        found["top_by_gpu_time"] = events.table(sort_by="self_device_time_total", row_limit=25)
        found["top_by_host_time"] = events.table(sort_by="self_cpu_time_total", row_limit=25)
        return outcome

    refine_texture.refine_textures_together = profiled
    try:
        yield found
    finally:
        refine_texture.refine_textures_together = plain


def synced(fn, *args):
    sync()
    start = time.perf_counter()
    value = fn(*args)
    sync()
    return value, time.perf_counter() - start


def device_busy_ms(events) -> float:
    """How long the GPU had work: the union of the device-side events' intervals (kernels, copies, memsets),
    in ms. Summing the operators' self device times instead counts twice what a CUDA graph replays: the profiler
    lists the graph's kernels and also credits them to the operator that launched the graph."""
    from torch.autograd import DeviceType

    spans = sorted((e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA)
    busy, end = 0.0, float("-inf")
    for start, stop in spans:
        if start > end:
            busy += stop - start
        elif stop > end:
            busy += stop - end
        end = max(end, stop)
    return busy / 1e3  # the events' times are in µs


def step_parts(rows: int, preset: str, work: Path, steps: int, trace_steps: int) -> dict:
    jobs = []
    for request in requests(rows, 200, work, preset):
        job = _start_job(request, ensure_control(None))
        _prepare_job(job)
        jobs.append(job)
    fits = [_ObjectFit(Stage1Job(**_stage1_arguments(job)), torch.device(DEVICE)) for job in jobs]
    parts = defaultdict(list)
    for _ in range(steps):
        failed: dict[int, Exception] = {}
        plans, t = synced(_prepare_steps, fits, failed)
        parts["preparation: learning rate, views, background (all rows)"].append(t)
        renders, t = synced(_render_steps, plans, failed)
        parts["batched renders: target views, SDS views (one call each)"].append(t)
        live, t = synced(_step_losses, fits, plans, renders, failed)
        parts["reference losses (all rows)"].append(t)
        if failed:
            raise RuntimeError(f"rows failed in the timed step: {failed}")
        sds, t = synced(_score_distillation, [(fit, step) for _, fit, step in live])
        parts["SDS: one batched guidance call"].append(t)
        _, t = synced(_backward, live, sds)
        parts["one backward pass"].append(t)
        _, t = synced(_optimiser_steps, live, failed)
        parts["statistics, one Adam step, density control, progress (all rows)"].append(t)
    settled = min(5, steps - 1)
    summary = {name: {"median_ms": round(statistics.median(v[settled:]) * 1000, 2),
                      "max_ms": round(max(v[settled:]) * 1000, 2)} for name, v in parts.items()}
    summary["gaussians_per_row_at_end"] = [len(fit.model) for fit in fits]

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        sync()
        start = time.perf_counter()
        for _ in range(trace_steps):
            advance_together(fits)
        sync()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    gpu_busy = device_busy_ms(prof.events())
    summary["traced_steps"] = trace_steps
    summary["traced_wall_ms_per_step"] = round(wall * 1000 / trace_steps, 2)
    summary["traced_gpu_busy_ms_per_step"] = round(gpu_busy / trace_steps, 2)  # union of device intervals
    summary["top_by_gpu_time"] = events.table(sort_by="self_device_time_total", row_limit=25)
    summary["top_by_host_time"] = events.table(sort_by="self_cpu_time_total", row_limit=25)
    return summary


def main() -> int:
    global MODELS, DEVICE, COMPILE_VAE_ENCODER
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--preset", default="draft")
    parser.add_argument("--steps", type=int, default=60, help="stage-1 steps timed part by part")
    parser.add_argument("--trace-steps", type=int, default=10)
    parser.add_argument("--skip-groups", action="store_true", help="only the stage-1 step parts")
    parser.add_argument("--profile-stage2", action="store_true",
                        help="the timed group's stage 2 under torch's profiler (its GPU-busy time, top operators)")
    parser.add_argument("--models", default="full-random", help="full-random (default) or tiny (a CPU smoke run)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compile-vae-encoder", action="store_true", help="GenerateRequest.compile_vae_encoder")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    MODELS, DEVICE, COMPILE_VAE_ENCODER = args.models, args.device, args.compile_vae_encoder
    result = {"rows": args.rows, "preset": args.preset, "compile_vae_encoder": COMPILE_VAE_ENCODER,
              "device": torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_groups:
            result["groups"] = group_phases(args.rows, args.preset, Path(tmp), args.profile_stage2)
        result["stage1_step"] = step_parts(args.rows, args.preset, Path(tmp), args.steps, args.trace_steps)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for key in ("top_by_gpu_time", "top_by_host_time"):
        print(result["stage1_step"][key])
    print(json.dumps({k: v for k, v in result["stage1_step"].items() if not k.startswith("top")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
