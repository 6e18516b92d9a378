"""``python -m backend generate``: the command-line face of :func:`backend.generate.generate`."""

from __future__ import annotations

import argparse
import sys

from ..progress_bar import progress_printer
from .pipeline import generate
from .request import GenerateRequest


def run_generate_command(args: argparse.Namespace) -> int:
    from ..job_control import JobControl

    request = GenerateRequest(
        image_path=args.image, prompt=args.prompt, out_dir=args.out, preset=args.preset, steps=args.steps,
        seed=args.seed, mode=args.mode, sam_variant=args.sam, models=args.models, device=args.device,
        force=args.force, overwrite=getattr(args, "overwrite", False),
    )
    with progress_printer(quiet=args.quiet) as on_progress:
        result = generate(request, JobControl(on_progress=on_progress))
    note = f" (reused: {', '.join(result.reused)})" if result.reused else ""
    print(f"wrote {result.glb_path}{note}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
