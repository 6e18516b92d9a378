"""``python -m backend eval-recon [--size small|full] [--phase all|render-gt|fit|score] [--object NAME|MESH ...]
[--blender PATH] --out DIR``."""

from __future__ import annotations

import argparse
import sys

from ..device import resolve_device
from ..errors import BadInputError
from ..job_control import JobControl, Progress
from .config import SIZES, config_for_size
from .evaluate import PhaseResult, builtin_objects, chosen_objects, run_eval_recon


def _stage_printer(quiet: bool):
    last_stage = [""]

    def on_progress(event: Progress) -> None:
        if not quiet and event.stage != last_stage[0]:
            last_stage[0] = event.stage
            print(f"eval-recon: {event.stage}", file=sys.stderr, flush=True)

    return on_progress


def run_eval_recon_command(args: argparse.Namespace) -> int:
    phase = getattr(args, "phase", "all")
    if phase in ("fit", "score"):  # the size and the objects are those DIR's manifest records
        if args.object:
            raise BadInputError(f"--object is for --phase render-gt or all; --phase {phase} uses the objects of --out")
        config, objects = (config_for_size(args.size) if args.size else None), None
    else:
        config = config_for_size(args.size or "small")
        objects = chosen_objects(args.object) if args.object else builtin_objects()
    # all: fail on a bad --device before rendering; fit: resolved after --out's manifest is read; others: unused
    device = resolve_device(args.device) if phase == "all" else args.device if phase == "fit" else None
    control = JobControl(on_progress=_stage_printer(args.quiet))
    result = run_eval_recon(config, objects, args.out, phase=phase, device=device, seed=getattr(args, "seed", 0),
                            blender=getattr(args, "blender", None), control=control)
    if isinstance(result, PhaseResult):
        for name, fit in result.fits.items():
            print(f"{name}: {fit.gaussian_count} Gaussians, {fit.mesh_faces} faces, {fit.wall_time_s:.0f} s")
        following = {"render-gt": "fit", "fit": "score"}[phase]
        print(f"{phase} done for {', '.join(result.objects)} in {result.wall_time_s:.0f} s; "
              f"next: --phase {following} --out {result.out_dir}")
        return 0
    limits = SIZES[result.size].thresholds if result.size in SIZES else None
    for obj in result.objects:
        verdict = "pass" if obj.passed else "BELOW TARGET"
        targets = (f" (target ≥ {limits.min_psnr_db})", f" (≥ {limits.min_iou})") if limits else ("", "")
        print(f"{obj.name}: PSNR {obj.psnr:.2f} dB{targets[0]}, IoU {obj.iou:.3f}{targets[1]}, "
              f"Chamfer {100 * obj.chamfer_fraction:.2f}% of diagonal: {verdict}")
    print(f"wall time {result.wall_time_s:.0f} s; {result.metrics_path}; {result.contact_sheet_path}")
    return 0
