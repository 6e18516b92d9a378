"""``python -m backend segment IMAGE --prompt T [--prompt T2] --mode fast|paper --out DIR``."""

from __future__ import annotations

import argparse

from .. import api
from ..progress_bar import progress_printer


def run_segment_command(args: argparse.Namespace) -> int:
    request = api.SegmentRequest(image_path=args.image, prompts=tuple(args.prompt), out_dir=args.out, mode=args.mode,
                                 sam_variant=args.sam, threshold=args.threshold, models=args.models,
                                 device=args.device)
    with progress_printer(quiet=args.quiet) as on_progress:
        outputs = api.segment(request, api.JobControl(on_progress=on_progress))
    for result, files in zip(outputs.results, outputs.files, strict=True):
        print(f"{result.prompt!r}: score {result.score:.3f}, {int(result.mask.sum())} px → {files.mask}")
    return 0

