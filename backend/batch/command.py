"""``python -m backend batch --csv ROWS.csv --out DIR [--rows-per-process K|auto] [--ray auto|ADDRESS] [--force]``.

Without Ray the rows run in order on the local device. With Ray, one long-lived worker per GPU keeps its
models loaded and takes rows as it frees up (see ``ray_runner.py``). Either way: one output folder per row,
``DIR/summary.csv`` with every row's status, resumable (rows already done are skipped unless ``--force``),
and exit code 6 (``SOME_ROWS_FAILED``) if any row failed; 1 stays "a bug". What no row could survive (a bad
``--out``, a user's own summary.csv there, an unknown model mode) fails once, before the first row.
"""

from __future__ import annotations

import argparse
import sys

from ..atomic_output import check_output_location, output_path
from ..choices import AUTO_CHOICE
from ..errors import SOME_ROWS_FAILED
from ..models.mode import resolve_model_mode
from .rows import RowOutcome, RowSettings, check_summary_replaceable, read_rows, write_summary
from .run_row import run_row


def run_batch_command(args: argparse.Namespace) -> int:
    rows = read_rows(args.csv)
    resolve_model_mode(args.models)  # IMAGE_TO_3D_MODELS=garbage fails here once, not in every row
    out_root = output_path(args.out)
    check_output_location(out_root)
    check_summary_replaceable(out_root / "summary.csv")
    if args.ray:
        from .ray_runner import connect_ray

        connect_ray(args.ray, args.workers)
    workers_per_gpu = _workers_per_gpu(args)
    rows_per_process = _rows_per_process(args, workers_per_gpu)
    out_root.mkdir(parents=True, exist_ok=True)
    settings = RowSettings(models=args.models, device=args.device, force=args.force,
                           compile_vae_encoder=_compile_vae_encoder(args, rows_per_process))
    if args.ray:
        from .ray_runner import run_rows_on_ray

        outcomes = run_rows_on_ray(rows, out_root, settings, address=args.ray, workers=args.workers,
                                   on_outcome=_print_outcome, workers_per_gpu=workers_per_gpu,
                                   rows_per_process=rows_per_process, stagger_groups=args.stagger_groups)
    elif rows_per_process > 1:
        from .row_groups import plan_row_groups, run_row_group

        outcomes = []
        for group in plan_row_groups(rows, rows_per_process):
            for outcome in run_row_group(group, out_root, settings):
                _print_outcome(outcome)
                outcomes.append(outcome)
    else:
        outcomes = []
        for row in rows:
            outcome = run_row(row, out_root, settings)
            _print_outcome(outcome)
            outcomes.append(outcome)
    write_summary(out_root / "summary.csv", outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    print(f"batch: {len(outcomes) - failed} of {len(outcomes)} rows ok; summary in {out_root / 'summary.csv'}",
          file=sys.stderr)
    return SOME_ROWS_FAILED if failed else 0


def _workers_per_gpu(args: argparse.Namespace) -> int:
    """``--workers-per-gpu``: K as given, or ``auto`` chosen once here under Ray and said in one line; without Ray
    the rows run in this one process."""
    if args.workers_per_gpu != AUTO_CHOICE:
        return args.workers_per_gpu
    if not args.ray:
        return 1
    from .row_groups import choose_workers_per_gpu

    choice = choose_workers_per_gpu(args.device)
    print(f"batch: {choice.workers} worker{'s' if choice.workers != 1 else ''} per GPU ({choice.reason})",
          file=sys.stderr)
    return choice.workers


def _rows_per_process(args: argparse.Namespace, workers_per_gpu: int) -> int:
    """``--rows-per-process``: K as given, or ``auto`` chosen once here, after the input checks and before any row
    runs, and said in one line (docs/batch.md)."""
    if args.rows_per_process != AUTO_CHOICE:
        return args.rows_per_process
    from .row_groups import choose_rows_per_process

    # --workers-per-gpu only shares a GPU among Ray's workers; the local runner is one process.
    choice = choose_rows_per_process(args.device, workers_per_gpu if args.ray else 1, on_ray=bool(args.ray))
    print(f"batch: {choice.rows} row{'s' if choice.rows != 1 else ''} per process ({choice.reason})", file=sys.stderr)
    return choice.rows


def _compile_vae_encoder(args: argparse.Namespace, rows_per_process: int) -> bool:
    """``--compile-vae-encoder``: on or off as given; ``auto`` on where rows run in groups off the CPU (the choice's
    measurements: backend.choices.COMPILE_VAE_ENCODER_CHOICES), said in one line when on."""
    if args.compile_vae_encoder != AUTO_CHOICE:
        return args.compile_vae_encoder == "on"
    if rows_per_process < 2 or args.device == "cpu":
        return False
    print(f"batch: stage 1's VAE encoder compiled (auto: rows run in groups of {rows_per_process}; the first batch "
          "on a machine spends ~30 s compiling in each worker; --compile-vae-encoder off to skip)", file=sys.stderr)
    return True


def _print_outcome(outcome: RowOutcome) -> None:
    detail = f": {outcome.message}" if outcome.message else ""
    print(f"row {outcome.row.index} {outcome.status} (exit {outcome.exit_code}, {outcome.seconds:.1f} s){detail}",
          file=sys.stderr)
