"""``python -m backend eval-recon [--size small|full] [--object MESH] [--blender PATH] --out DIR``."""

from __future__ import annotations

import argparse
import sys

from ..device import resolve_device
from ..job_control import JobControl, Progress
from .config import config_for_size
from .evaluate import builtin_objects, mesh_file_object, run_eval_recon


def _stage_printer(quiet: bool):
    last_stage = [""]

    def on_progress(event: Progress) -> None:
        if not quiet and event.stage != last_stage[0]:
            last_stage[0] = event.stage
            print(f"eval-recon: {event.stage}", file=sys.stderr, flush=True)

    return on_progress


def run_eval_recon_command(args: argparse.Namespace) -> int:
    config = config_for_size(args.size)
    objects = [mesh_file_object(args.object)] if args.object else builtin_objects()
    device = resolve_device(args.device)
    control = JobControl(on_progress=_stage_printer(args.quiet))
    result = run_eval_recon(config, objects, args.out, device=device, seed=getattr(args, "seed", 0),
                            blender=getattr(args, "blender", None), control=control)
    limits = config.thresholds
    for obj in result.objects:
        verdict = "pass" if obj.passed else "BELOW TARGET"
        print(f"{obj.name}: PSNR {obj.psnr:.2f} dB (target ≥ {limits.min_psnr_db}), IoU {obj.iou:.3f} "
              f"(≥ {limits.min_iou}), Chamfer {100 * obj.chamfer_fraction:.2f}% of diagonal: {verdict}")
    print(f"wall time {result.wall_time_s:.0f} s; {result.metrics_path}; {result.contact_sheet_path}")
    return 0
