"""``python -m backend segment|generate``: the command-line faces of :func:`backend.api.segment` and
:func:`backend.api.generate` (their arguments are declared in cli.py). A tool over the front door, so it sits
beside cli.py, not inside the stages."""

from __future__ import annotations

import argparse
import sys

from . import api
from .progress_bar import progress_printer


def segmenter_fields(args: argparse.Namespace) -> dict:
    """The request fields of cli.py's segmenter options (--segmenter, --instance, --box, --exclude-box,
    --presence-threshold, --accept-sam3-license, --hf-token), shared by SegmentRequest and GenerateRequest."""
    from .segment.sam3_config import Sam3Options

    return {"segmenter": args.segmenter,
            "sam3": Sam3Options(instance=args.instance, boxes=tuple(_box(text) for text in args.box),
                                exclude_boxes=tuple(_box(text) for text in args.exclude_box),
                                presence_threshold=args.presence_threshold,
                                accept_license=args.accept_sam3_license, hf_token=args.hf_token)}


def _box(text: str) -> tuple[float, float, float, float]:
    from .segment.sam3_config import BoxPrompt

    return BoxPrompt.parse(text).box  # a bad box is a one-line error naming it (exit 2)


def run_segment_command(args: argparse.Namespace) -> int:
    request = api.SegmentRequest(image_path=args.image, prompts=tuple(args.prompt), out_dir=args.out, mode=args.mode,
                                 sam_variant=args.sam, threshold=args.threshold, models=args.models,
                                 device=args.device, overwrite=args.overwrite, **segmenter_fields(args))
    with progress_printer(quiet=args.quiet) as on_progress:
        outputs = api.segment(request, api.JobControl(on_progress=on_progress))
    for result, files in zip(outputs.results, outputs.files, strict=True):
        print(f"{result.prompt!r}: score {result.score:.3f}, {int(result.mask.sum())} px → {files.mask}")
        for instance in files.instances:
            print(f"  instance {instance.rank}: score {instance.score:.3f} → {instance.mask}")
    return 0


def run_generate_command(args: argparse.Namespace) -> int:
    request = api.GenerateRequest(
        image_path=args.image, prompt=args.prompt, out_dir=args.out, preset=args.preset, steps=args.steps,
        seed=args.seed, mode=args.mode, sam_variant=args.sam, models=args.models, device=args.device,
        force=args.force, overwrite=args.overwrite, method=args.method, **segmenter_fields(args),
    )
    with progress_printer(quiet=args.quiet) as on_progress:
        result = api.generate(request, api.JobControl(on_progress=on_progress))
    note = f" (reused: {', '.join(result.reused)})" if result.reused else ""
    print(f"wrote {result.glb_path}{note}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
