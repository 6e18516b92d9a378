"""Command line: ``python -m backend <command> …`` (the contract is docs/design.md §4).

Each subcommand's arguments are declared here, in one place; its work lives in the module named in
``COMMANDS`` and is imported only when that command runs. Errors become one line on stderr and a
documented exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from . import choices
from .errors import EXIT_CODES, describe_error, one_line
from .job_control import sigterm_as_interrupt
from .third_party_output import silence_third_party_output

# command → "module:function" (relative to this package, so it also works inside the extension);
# the function takes the parsed args and returns an exit code.
COMMANDS: dict[str, str] = {
    "segment": ".job_commands:run_segment_command",
    "generate": ".job_commands:run_generate_command",
    "bench": ".bench:run_bench_command",
    "eval-phrasecut": ".segment.phrasecut:run_eval_phrasecut_command",
    "eval-recon": ".eval_recon.command:run_eval_recon_command",
    "batch": ".batch.command:run_batch_command",
    "serve": ".worker.serve:run_serve_command",
}
CONSOLE_SCRIPT = "image-to-3d"  # [project.scripts] in pyproject.toml
MODULE_COMMAND = "python -m backend"


def program_name() -> str:
    """What the user typed to start us: the installed command's name, else ``python -m backend``."""
    return CONSOLE_SCRIPT if Path(sys.argv[0]).stem == CONSOLE_SCRIPT else MODULE_COMMAND


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, unless the help already names one or there is none to name
    (a flag, a repeatable option); epilogs (the examples) keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = (action.default is None or action.default is False or action.default == []
                  or action.default == argparse.SUPPRESS or action.nargs == 0)
        if "default" in text or silent or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (issue 19): the (sub)command, what is wrong, a close match for a mistyped
    option, and where the full usage is; exit 2 (argparse's own code for them). What the user typed is
    quoted escaped, so an argument holding a newline or bytes that are not UTF-8 cannot break the line."""

    def error(self, message: str):
        unknown = message.removeprefix("unrecognized arguments: ")
        if unknown != message:
            known = [s for a in self._actions for s in a.option_strings]
            guesses = [m for word in unknown.split() if word.startswith("-")
                       for m in difflib.get_close_matches(word.split("=")[0], known, n=1)]
            if guesses:
                message += f" (did you mean {guesses[0]}?)"
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", choices=choices.MODEL_MODES, default=None,
                   help="weights to use: real (pretrained), tiny (random, tests), full-random (real-size random, "
                        "timing) (default: $IMAGE_TO_3D_MODELS, else real)")
    p.add_argument("--device", choices=choices.DEVICES, default=choices.DEFAULT_DEVICE,
                   help="where to compute; auto: the GPU when there is one")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars: only the result line or the error")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show the libraries' own warnings and progress bars (hidden otherwise)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_output_folder(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the output names in --out even when this tool did not write them")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")


def _add_segmenter(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segmenter", choices=choices.names(choices.SEGMENTERS), default=choices.DEFAULT_SEGMENTER,
                   help="clipseg-sam: CLIPSeg + SAM (the paper's, default; --mode picks fast or paper); "
                        "sam3: SAM 3 concept segmentation (gated weights, SAM License)")
    p.add_argument("--instance", default=choices.DEFAULT_SAM3_INSTANCE,
                   help="sam3: which instance is the object: best, union, or a rank N (1 = best); every instance's "
                        "mask is saved beside it (<slug>.instance-N.mask.png, listed in segment.json)")
    p.add_argument("--accept-sam3-license", action="store_true",
                   help="accept Meta's SAM License so SAM 3's weights may be downloaded (once)")
    p.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1",
                   help="sam3: an example of the object, in photo pixels (repeatable)")
    p.add_argument("--exclude-box", action="append", default=[], metavar="X0,Y0,X1,Y1",
                   help="sam3: an example of what is not the object (repeatable)")
    p.add_argument("--presence-threshold", type=float, default=None,
                   help="sam3: below this presence score the phrase counts as absent (exit 3; default: see docs/segmentation.md)")
    p.add_argument("--hf-token", default=None,
                   help="Hugging Face token for the gated SAM 3 weights (default: your `hf auth login`, $HF_TOKEN)")


def _positive_int(text: str) -> int:
    """A whole number of at least 1 (argparse turns the ValueError into a usage error, exit 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_int_or_auto(text: str) -> int | str:
    """A whole number of at least 1, or ``auto`` (left for the command to resolve); anything else is a usage error."""
    if text == choices.AUTO_CHOICE:
        return text
    try:
        return _positive_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1 or {choices.AUTO_CHOICE}, got {text!r}") from None


# One example per subcommand, shown at the end of its --help ({prog}: how the user started us).
EXAMPLES = {
    "segment": "{prog} segment photo.jpg --prompt 'a coffee cup' --out cup-mask/",
    "generate": "{prog} generate photo.jpg --prompt 'a coffee cup' --out cup/",
    "bench": "{prog} bench --models full-random --out bench.json",
    "eval-phrasecut": "{prog} eval-phrasecut --data phrasecut/ --split miniv --limit 100",
    "eval-recon": "{prog} eval-recon --size small --object suzanne --out recon/",
    "batch": "{prog} batch --csv jobs.csv --out results/",
    "serve": "{prog} serve --models tiny",
}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    prog = prog or program_name()
    exit_lines = " · ".join(f"{code} {what}" for code, what in EXIT_CODES.items())
    parser = _Parser(
        prog=prog, formatter_class=_HelpFormatter,
        description="Image to 3D: cut an object out of a photo by text and turn it into a textured mesh.",
        epilog=f"exit codes: {exit_lines}",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add_command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, formatter_class=_HelpFormatter,
                              epilog="example:\n  " + EXAMPLES[name].format(prog=prog))

    p = add_command("segment", help="cut objects out of a photo by text prompts")
    p.add_argument("image", help="the photo (PNG, JPEG, …)")
    p.add_argument("--prompt", action="append", default=[], required=True, help="what to cut out (repeatable)")
    p.add_argument("--mode", choices=choices.names(choices.SEGMENTATION_MODES),
                   default=choices.DEFAULT_SEGMENTATION_MODE,
                   help="fast: CLIPSeg box + SAM; paper: the paper's point prompts")
    p.add_argument("--sam", choices=choices.SAM_VARIANTS, default=choices.DEFAULT_SAM, help="SAM variant")
    p.add_argument("--threshold", type=float, default=None,
                   help="CLIPSeg heatmap threshold (default: the mode's)")
    _add_output_folder(p)
    _add_segmenter(p)
    _add_common(p)

    p = add_command("generate", help="photo (+ prompt) → textured mesh")
    p.add_argument("image", help="the photo (PNG, JPEG, …); an RGBA cut-out needs no --prompt")
    p.add_argument("--prompt", default=None, help="object to take (default: none, for RGBA cut-outs)")
    p.add_argument("--mode", choices=choices.names(choices.SEGMENTATION_MODES),
                   default=choices.DEFAULT_SEGMENTATION_MODE,
                   help="segmentation: fast (CLIPSeg box + SAM) or paper (the paper's point prompts)")
    p.add_argument("--sam", choices=choices.SAM_VARIANTS, default=choices.DEFAULT_SAM, help="SAM variant")
    p.add_argument("--preset", choices=choices.names(choices.PRESETS + choices.TEST_PRESETS),
                   default=choices.DEFAULT_PRESET,
                   help="quality preset; smoke = tiny sizes for tests and the offline smoke run")
    p.add_argument("--steps", type=int, default=None, help="stage-1 steps (default: the preset's)")
    p.add_argument("--method", choices=choices.names(choices.METHODS), default=choices.DEFAULT_METHOD,
                   help="dreamgaussian (best, minutes), quick (TripoSR, seconds), quick+refine (TripoSR start, "
                        "shorter stage 1); see docs/quick-method.md")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (same seed, same result)")
    p.add_argument("--force", action="store_true", help="redo cached stages")
    _add_output_folder(p)
    _add_segmenter(p)
    _add_common(p)

    p = add_command("bench", help="per-stage times and peak GPU memory")
    p.add_argument("--out", required=True, metavar="FILE.json", help="where the timings go")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per stage (median reported)")
    p.add_argument("--stages", choices=["all", "segment", "generate"], default="all", help="which half to time")
    _add_common(p)

    p = add_command("eval-phrasecut", help="segmentation accuracy on PhraseCut")
    p.add_argument("--data", required=True, metavar="DIR", help="the PhraseCut dataset folder")
    p.add_argument("--split", default="miniv", help="which PhraseCut split to score")
    p.add_argument("--mode", choices=choices.names(choices.SEGMENTATION_MODES),
                   default=choices.DEFAULT_SEGMENTATION_MODE, help="segmentation mode to score")
    p.add_argument("--predictions", default=None, metavar="DIR",
                   help="score a folder of <task_id>.png masks instead (default: segment each task)")
    p.add_argument("--out", default=None, metavar="FILE.json", help="where the scores go (default: only printed)")
    p.add_argument("--sam", choices=choices.SAM_VARIANTS, default=choices.DEFAULT_SAM, help="SAM variant")
    p.add_argument("--threshold", type=float, default=None,
                   help="CLIPSeg heatmap threshold (default: the mode's)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N tasks (default: all)")
    _add_segmenter(p)
    _add_common(p)

    p = add_command("eval-recon", help="fidelity on Blender-rendered ground truth")
    p.add_argument("--size", choices=["small", "full"], default=None,
                   help="render and fit size (default: small; fit and score: the size --out was rendered at)")
    p.add_argument("--phase", choices=["all", "render-gt", "fit", "score"], default="all",
                   help="run one phase alone: render-gt and score need Blender, fit does not (GPU host without bpy)")
    p.add_argument("--object", action="append", default=None, metavar="NAME|MESH",
                   help="a built-in object (suzanne, torus, box, mug, can, bowl) or a mesh file Blender imports; "
                        "repeat for several (default: all built-in objects)")
    p.add_argument("--blender", default=None, help="a blender binary to render with (default: the bpy module)")
    p.add_argument("--seed", type=int, default=0, help="seed of every fit")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the renders, fits and scores")
    _add_common(p)

    p = add_command("batch", help="many jobs from a CSV; resumable")
    p.add_argument("--csv", required=True, metavar="FILE.csv",
                   help="one job per row: image, prompt, and optionally preset, seed, method (docs/batch.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="one sub-folder per row, and summary.csv")
    p.add_argument("--ray", default=None, help="auto or a Ray address (default: no Ray, rows in this process)")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray workers (default: one per GPU, times --workers-per-gpu)")
    p.add_argument("--workers-per-gpu", type=_positive_int_or_auto, default=choices.AUTO_CHOICE, metavar="K|auto",
                   help="Ray workers sharing each GPU, each asking Ray for 1/K of one (one worker's CPU stages overlap "
                        f"another's GPU work); auto: {choices.AUTO_WORKERS_PER_GPU} where this process's GPU has "
                        f"{choices.ROW_GPU_MEMORY // 2**30} GiB free for each, else 1")
    p.add_argument("--rows-per-process", type=_positive_int_or_auto, default=choices.AUTO_CHOICE,
                   metavar="K|auto",
                   help="rows whose stage-1 fits and stage-2 textures run together in one process, sharing "
                        "batched Zero123 calls; auto: 1 on the CPU (and under --ray when this process sees no GPU), "
                        f"on a GPU one row per {choices.ROW_GPU_MEMORY // 2**30} GiB of its free memory (shared by "
                        f"--workers-per-gpu), at most {choices.MAX_AUTO_ROWS_PER_PROCESS}")
    p.add_argument("--stagger-groups", action=argparse.BooleanOptionalAction, default=True,
                   help="under --ray with several workers per GPU and rows per process: the second worker on a GPU "
                        "starts with a shorter group (the K-th with (W-K)/W of one), so the workers' GPU and CPU "
                        "stages interleave instead of running in step (default: on; docs/batch.md)")
    p.add_argument("--compile-vae-encoder", choices=choices.COMPILE_VAE_ENCODER_CHOICES, default=choices.AUTO_CHOICE,
                   help="stage 1's VAE encoder through torch.compile where Triton works: each SDS step faster, after "
                        "~30 s of compiling per process the first time on a machine; auto: on with more than one row "
                        "per process, not on the CPU (docs/batch.md)")
    p.add_argument("--force", action="store_true", help="redo rows that are already done")
    _add_common(p)

    p = add_command("serve", help="a long-lived worker speaking JSON lines on stdin/stdout "
                                     "(docs/worker-protocol.md)")
    p.add_argument("--models", choices=["real", "tiny", "full-random"], default=None,
                   help="weights for requests that name none (default: $IMAGE_TO_3D_MODELS, else real)")
    return parser


def _resolve_handler(command: str) -> Callable[[argparse.Namespace], int]:
    module_name, func_name = COMMANDS[command].split(":")
    return getattr(importlib.import_module(module_name, __package__), func_name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)  # argparse itself exits 2 on usage errors
    if not args.command:  # one line like every usage error; the commands are in --help
        parser.error(f"unrecognized arguments: {' '.join(unknown)}" if unknown
                     else f"a command is needed: {', '.join(COMMANDS)}")
    if unknown:  # answered by the subcommand's parser: its name, its options, its --help
        parser._subparsers._group_actions[0].choices[args.command].error(
            f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "verbose", False):
        silence_third_party_output()
    debug = getattr(args, "debug", False)
    try:
        with sigterm_as_interrupt():
            return int(_resolve_handler(args.command)(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        code, message = describe_error(exc, args.command)
        if debug and not isinstance(exc, KeyboardInterrupt):
            traceback.print_exc()
        if code == 1:
            message += "; rerun with --debug and report it"
        print(f"error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
