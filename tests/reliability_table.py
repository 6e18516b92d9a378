"""The reliability table (docs/reliability.md) is written from what the reliability tests observed.

Each test calls :func:`record` after its assertions passed, with what a user would see: the command, the exit
code, the first line of the message, the files left behind. At the end of the session
:func:`write_table_if_complete` (a ``pytest_sessionfinish`` hook re-exported by tests/conftest.py) renders the
table; only when every expected row was recorded (a full run, every reliability test passed) does it compare
the result with docs/reliability.md. A differing file is rewritten and the session fails, so a stale table is
caught by CI and fixed by committing the rewritten file. Partial runs (``-k``, single files) leave it alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


@dataclass(frozen=True)
class Row:
    case: str
    surface: str  # "CLI generate", "CLI segment", "library generate", "Blender generate", …
    command: str
    exit_code: int | str
    message: str  # first line of stderr / the operator's report
    files_left: str  # what the output folder holds afterwards
    observed: str = ""  # anything else the test checked


# Modules that declare rows; the table is written only when all of them were collected and every row came in.
MODULES = ("test_reliability_inputs", "test_reliability_failures", "test_reliability_models",
           "test_reliability_hostile", "test_reliability_usage", "test_reliability_addon")
# (case, surface) pairs a full run must record, in table order.
EXPECTED: list[tuple[str, str]] = []
_declared_by: set[str] = set()
_rows: dict[tuple[str, str], Row] = {}
_STAMP = re.compile(r"\b\d{8}-\d{6}-")  # Blender's per-job folder names
_TMP = re.compile(r"(/[^\s'\"]*?/(pytest-\d+|image_to_3d_tests_\w+)/[^/\s'\"]+)")


def expect(module: str, case: str, *surfaces: str) -> None:
    """Declare (at import time of a test module) a row a full run must record."""
    _declared_by.add(module.rpartition(".")[2])
    for surface in surfaces:
        if (case, surface) not in EXPECTED:
            EXPECTED.append((case, surface))


def normalise(text: str) -> str:
    """Temp paths → ``<tmp>`` so the table does not change from run to run."""
    return _STAMP.sub("<date-time>-", _TMP.sub("<tmp>", str(text)))


def record(case: str, surface: str, command: str, exit_code, message: str, files_left, observed: str = "") -> None:
    if isinstance(files_left, (list, tuple, set)):
        files_left = ", ".join(sorted(files_left)) or "none"
    first_line = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    _rows[(case, surface)] = Row(case, surface, normalise(command), exit_code, normalise(first_line),
                                 normalise(files_left), normalise(observed))


def files_in(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative names), [] if it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


HEADER = """# Reliability: what happens on bad input, out of memory, cancel, missing models, full disks

**Generated — do not edit.** Every row below is what a test in `tests/test_reliability_*.py` observed on the
last full test run (CPU, tiny random models, `--preset smoke`): the command or action, the exit code, the first
line of the message the user sees (stderr for the CLI, the operator's report and the panel's *last error* in
Blender — the tests check those two are the same words), and the files left in the output folder. A row is
recorded only after its test's assertions passed. At the end of a full run the table is rendered again and
compared with this file: if they differ the file is rewritten and the run fails, so the table cannot drift
from the code (commit the rewritten file). Temporary paths are shown as `<tmp>`.

Exit codes (docs/design.md §4): 0 done · 1 internal error (a bug) · 2 bad input or usage · 3 nothing matched ·
4 models unavailable · 5 out of GPU memory · 6 batch: some rows failed (summary.csv says which) · 130 cancelled
(Ctrl-C or SIGTERM). Without `--debug` no traceback is printed.

## What a run may do to `--out` (the output contract)

Kept by `backend/atomic_output.py` for every command that writes a folder; tested in
`tests/test_reliability_hostile.py` (rows under *output contract* below).

1. **Only documented names.** `generate` writes `model.glb`, `model.obj`, `model.mtl`, `model_texture.png`,
   `gaussians.ply`, `mask.png`, `reference.png`, `job.json` (`OUTPUT_NAMES` in `backend/generate/pipeline.py`;
   `--method quick` the same without `gaussians.ply`, `OUTPUT_NAMES` in `backend/quick/pipeline.py`);
   `segment` writes `<slug>.mask.png`, `<slug>.cutout.png`, `<slug>.overlay.png` per prompt and `segment.json`
   (with `--segmenter sam3` also `<slug>.instance-<N>.mask.png` per instance found);
   `batch` writes one `NNNN-<image>/` folder per row and `summary.csv`. Every run that writes a folder also keeps a hidden
   file, `.image_to_3d-outputs.json`: the name, size and SHA-256 of each entry this tool wrote there.
2. **Nothing of yours is replaced.** An existing file of an output's name is replaced only when that record
   says this tool wrote it and its bytes are unchanged since, or with `--overwrite`; otherwise the run stops
   with exit 2 naming the file, before any model loads. A folder where a file goes (say a folder named
   `model.glb`) is never replaced, `--overwrite` or not. `batch` replaces `summary.csv` only when it starts
   with this tool's header. Files of other names are never touched.
3. **All or nothing.** Outputs are written into a hidden `.partial-*` folder inside `--out` and moved into
   place at the end. Before the first move the run writes a journal there and moves each file it replaces
   aside, next to it. Any failure during the moves — any exception, a full disk, Ctrl-C, SIGTERM — puts every
   earlier file back and removes the new ones: the folder is exactly as before and no `.partial-*` folder is
   left. A run killed outright (SIGKILL, power loss) cannot clean up; its `.partial-*` folder keeps the
   journal and the earlier files, and the next run in that folder (its OS lock on the folder is then free)
   puts them back and removes it.
4. **Signals.** SIGTERM is handled like Ctrl-C: the job unwinds, outputs are rolled back, one line
   `error: cancelled` on stderr, exit 130.
5. **Private defaults.** The add-on's default output folder is `jobs/` in your per-user data folder
   (`$XDG_DATA_HOME/image_to_3d` or `~/.local/share/image_to_3d`, `~/Library/Application Support/image_to_3d`,
   `%LOCALAPPDATA%\\image_to_3d`), created with mode 0700; the job cache (`$IMAGE_TO_3D_CACHE`, else the
   per-user cache folder) is used only when it is a real folder of yours — a symlink or a folder of another
   user is not followed. The cache is only an optimisation: when it cannot be used, one `note:` line says so
   and the job runs without it; an entry that reads but makes no sense (an empty mask, NaN or no Gaussians) is
   discarded with a note. A photo that exists only inside Blender (generated, packed, edited) is handed to the
   worker as one file per image in `photo-copies/` of the same per-user folder (0700), rewritten at each press.
6. **Inputs bounded before work starts.** A photo over 100 Mpx is refused from its header, before decoding
   (a job peaks at about 52 bytes a photo pixel, so 100 Mpx stays near 5 GB of RAM); NaN or infinite values
   stop at the first stage that sees them (the photo, model weights, cache entries, Gaussians, mesh vertices,
   UVs, textures), and a surface too degenerate to texture ends as exit 2 "no usable surface" before any
   texture kernel runs.
7. **One line, whatever was typed.** Every usage error (unknown or mistyped option, missing value, bad choice,
   a word where a number goes, no command) is one line naming the subcommand and its `--help`, exit 2. Whatever
   an error quotes (a path, an argument, a library's text) is shown escaped (`\\n`, `\\x1b`, `\\udcff` for
   bytes that are not UTF-8), so a path holding a newline cannot split the line (`one_line` in
   `backend/errors.py`, applied by `describe_error` for every surface). An empty path (`--out ""`, an empty
   image or CSV path) is exit 2, never the current folder.
8. **Disabling the add-on mid-job** blocks Blender about a second at most: the job is told to cancel, the
   worker to shut down, and a worker still there after that is killed (its half-written outputs are undone by
   the next run in that folder, point 3).

How the harder cases are simulated:
- *Out of GPU memory*: the named stage's function is replaced by one raising `torch.cuda.OutOfMemoryError`
  (it can be raised on a CPU). The tests also check that the models kept between calls were dropped and that no
  output file exists.
- *Cancel*: a `JobControl` whose progress callback sets the cancel event when the named stage first reports;
  every stage reports when it starts and at least once a second, so the job stops inside that stage or at the
  start of the next one (the *stopped in* column says where).
- *Output folder not writable*: tests run as root, for whom permission bits do not apply, so the output path
  is put under a regular file (`…/file.txt/sub`): `mkdir` fails with "Not a directory" for root too.
- *Full disk*: `os.replace` raises `OSError(ENOSPC)` on the second file moved into place, or a file write in the
  staging folder raises it; the earlier contents of the output folder must survive unchanged.
- *Nothing matched*: tiny random CLIPSeg saturates (its heatmap peaks at 1.0 for any prompt), so its heatmap is
  replaced by zeros — the same path a real prompt that matches nothing takes.
- *Offline*: `HF_HUB_OFFLINE=1`, an empty `HF_HOME`, `--models real`, in a subprocess.
- *Usage matrix*: the cases are generated from the parser (`cli.build_parser`): every option with choices gets a
  bad choice, every numeric option a word, every option that takes a value is left without one, every long
  option is mistyped; the paths each subcommand reads or writes get the awkward values. They run in the test
  process through `cli.main(argv)`; four run as real processes (argv bytes that are not UTF-8, a newline).
- *Killed runs and signals*: a subprocess that SIGKILLs itself between two moves of a commit; a
  `python -m backend generate` subprocess sent SIGTERM once its progress shows stage 1.

"""


def render() -> str:
    lines = [HEADER]
    sections: dict[str, list[Row]] = {}
    order = list(EXPECTED)  # declaration order within a module; sections sorted so import order can't matter
    for key in sorted(order, key=lambda k: (_rows[k].case.split(":")[0], order.index(k))):
        row = _rows[key]
        sections.setdefault(row.case.split(":")[0], []).append(row)
    for section, rows in sections.items():
        lines.append(f"## {section}\n")
        lines.append("| case | where | command / action | exit | message (first line) | files left | also checked |")
        lines.append("|---|---|---|---|---|---|---|")
        for row in rows:
            cells = [row.case.split(":", 1)[1].strip(), row.surface, f"`{row.command}`", str(row.exit_code),
                     row.message, row.files_left, row.observed]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def table_text() -> str:
    """docs/reliability.md as it is on disk now ("" when missing)."""
    return DOC.read_text(encoding="utf-8") if DOC.is_file() else ""


def write_table_if_complete(session) -> None:
    missing = [key for key in EXPECTED if key not in _rows]
    if set(MODULES) - _declared_by or missing:
        return
    text = render()
    if text != table_text():
        DOC.write_text(text, encoding="utf-8")
        print(f"\n{DOC} was stale and has been regenerated: commit it.")
        session.exitstatus = 1
