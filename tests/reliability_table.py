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
           "test_reliability_hostile")
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

Exit codes (DESIGN.md §4): 0 done · 1 internal error (a bug) · 2 bad input or usage · 3 nothing matched ·
4 models unavailable · 5 out of GPU memory · 130 cancelled. Without `--debug` no traceback is printed.

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


def write_table_if_complete(session) -> None:
    missing = [key for key in EXPECTED if key not in _rows]
    if set(MODULES) - _declared_by or missing:
        return
    text = render()
    old = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    if text != old:
        DOC.write_text(text, encoding="utf-8")
        print(f"\n{DOC} was stale and has been regenerated: commit it.")
        session.exitstatus = 1
