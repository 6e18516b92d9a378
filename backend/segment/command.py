"""``python -m backend segment IMAGE --prompt T [--prompt T2] --mode fast|paper --out DIR``."""

from __future__ import annotations

import argparse
import sys

from ..job_control import JobControl, Progress
from ..models.mode import resolve_model_mode
from .config import DEFAULT_THRESHOLD, SegmentConfig


def run_segment_command(args: argparse.Namespace) -> int:
    config = SegmentConfig(
        mode=args.mode,
        sam_variant=args.sam,
        threshold=DEFAULT_THRESHOLD if args.threshold is None else args.threshold,
        models=resolve_model_mode(args.models),
        device=args.device,
    )
    from .outputs import segment_to_folder  # torch & co. only once the arguments are known to be sane

    with TqdmProgress(disable=args.quiet) as progress:
        outputs = segment_to_folder(args.image, args.prompt, config, args.out, JobControl(on_progress=progress),
                                    overwrite=getattr(args, "overwrite", False))
    for result, files in zip(outputs.results, outputs.files, strict=True):
        print(f"{result.prompt!r}: score {result.score:.3f}, {int(result.mask.sum())} px → {files.mask}")
    return 0


class TqdmProgress:
    """A JobControl progress callback that shows one tqdm bar per stage on stderr."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bar = None
        self.stage = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event: Progress) -> None:
        if self.disable:
            return
        from tqdm import tqdm

        if event.stage != self.stage:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=100, desc=event.stage, file=sys.stderr, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")
            self.stage = event.stage
        self.bar.n = round(100 * event.fraction)
        if event.message:
            self.bar.set_postfix_str(event.message, refresh=False)
        self.bar.refresh()
