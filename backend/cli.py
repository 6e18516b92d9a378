"""Command line: ``python -m backend <command> …`` (the contract is DESIGN.md §4).

Each subcommand's arguments are declared here, in one place; its work lives in the module named in
``COMMANDS`` and is imported only when that command runs. Errors become one line on stderr and a
documented exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence

from .errors import EXIT_CODES, ImageTo3DError, NotBuiltError, OutOfGPUMemoryError
from .job_control import sigterm_as_interrupt

# command → "module:function" (relative to this package, so it also works inside the extension);
# the function takes the parsed args and returns an exit code.
COMMANDS: dict[str, str] = {
    "segment": ".segment.command:run_segment_command",
    "generate": ".generate.command:run_generate_command",
    "bench": ".bench:run_bench_command",
    "eval-phrasecut": ".segment.phrasecut:run_eval_phrasecut_command",
    "eval-recon": ".eval_recon.command:run_eval_recon_command",
    "batch": ".batch.command:run_batch_command",
}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", choices=["real", "tiny", "full-random"], default=None,
                   help="weights to use (default: $IMAGE_TO_3D_MODELS, else real)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    exit_lines = " · ".join(f"{code} {what}" for code, what in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="Image to 3D: cut an object out of a photo by text and turn it into a textured mesh.",
        epilog=f"exit codes: {exit_lines}",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("segment", help="cut objects out of a photo by text prompts")
    p.add_argument("image")
    p.add_argument("--prompt", action="append", default=[], required=True, help="what to cut out (repeatable)")
    p.add_argument("--mode", choices=["fast", "paper"], default="fast")
    p.add_argument("--sam", choices=["vit_h", "vit_l", "vit_b"], default="vit_h", help="SAM variant")
    p.add_argument("--threshold", type=float, default=None, help="CLIPSeg heatmap threshold")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the output names in --out even when this tool did not write them")
    p.add_argument("--out", required=True)
    _add_common(p)

    p = sub.add_parser("generate", help="photo (+ prompt) → textured mesh")
    p.add_argument("image")
    p.add_argument("--prompt", default=None, help="object to take (optional for RGBA cut-outs)")
    p.add_argument("--mode", choices=["fast", "paper"], default="fast")
    p.add_argument("--sam", choices=["vit_h", "vit_l", "vit_b"], default="vit_h")
    p.add_argument("--preset", choices=["draft", "standard", "high", "smoke"], default="standard",
                   help="quality preset; smoke = tiny sizes for tests and the offline smoke run")
    p.add_argument("--steps", type=int, default=None, help="stage-1 steps (overrides the preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="redo cached stages")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the output names in --out even when this tool did not write them")
    p.add_argument("--out", required=True)
    _add_common(p)

    p = sub.add_parser("bench", help="per-stage times and peak GPU memory")
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per stage (median reported)")
    p.add_argument("--stages", choices=["all", "segment", "generate"], default="all", help="which half to time")
    _add_common(p)

    p = sub.add_parser("eval-phrasecut", help="segmentation accuracy on PhraseCut")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="miniv")
    p.add_argument("--mode", choices=["fast", "paper"], default="fast")
    p.add_argument("--predictions", default=None, help="score a folder of <task_id>.png masks instead")
    p.add_argument("--out", default=None)
    p.add_argument("--sam", choices=["vit_h", "vit_l", "vit_b"], default="vit_h", help="SAM variant")
    p.add_argument("--threshold", type=float, default=None, help="CLIPSeg heatmap threshold")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N tasks")
    _add_common(p)

    p = sub.add_parser("eval-recon", help="fidelity on Blender-rendered ground truth")
    p.add_argument("--size", choices=["small", "full"], default=None,
                   help="default: small (fit and score: the size DIR was rendered at)")
    p.add_argument("--phase", choices=["all", "render-gt", "fit", "score"], default="all",
                   help="run one phase alone: render-gt and score need Blender, fit does not (GPU host without bpy)")
    p.add_argument("--object", default=None, help="a mesh file to use instead of the built-in objects")
    p.add_argument("--blender", default=None, help="a blender binary to render with (default: the bpy module)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    _add_common(p)

    p = sub.add_parser("batch", help="many jobs from a CSV; resumable")
    p.add_argument("--csv", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ray", default=None, help="auto or a Ray address")
    p.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per GPU)")
    p.add_argument("--force", action="store_true")
    _add_common(p)
    return parser


def _resolve_handler(command: str) -> Callable[[argparse.Namespace], int]:
    module_name, func_name = COMMANDS[command].split(":")
    try:
        module = importlib.import_module(module_name, __package__)
    except ModuleNotFoundError as exc:
        full_name = f"{__package__}{module_name}"
        if exc.name and (exc.name == full_name or full_name.startswith(exc.name + ".")):
            raise NotBuiltError(f"'{command}' is not built yet in this version") from None
        raise
    return getattr(module, func_name)


def _is_cuda_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on usage errors
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    debug = getattr(args, "debug", False)
    try:
        with sigterm_as_interrupt():
            return int(_resolve_handler(args.command)(args) or 0)
    except ImageTo3DError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if _is_cuda_oom(exc):
            err = OutOfGPUMemoryError(args.command)
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        if debug:
            traceback.print_exc()
        print(f"error: internal error ({type(exc).__name__}: {exc}); rerun with --debug and report it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
