"""Issue 19, requirement 6: every subcommand × every kind of bad argument ends in one line on stderr, exit 2, no
traceback and no "internal error".

The matrix is generated from the parser itself (cli.build_parser): each option with choices gets a bad choice,
each numeric option a word, each option that takes a value is left without one, every long option is
mistyped. Inputs the commands read (photos, CSVs, data folders, output paths) get the awkward paths a user can
type: missing, a folder, not an image, empty, holding a newline, holding bytes that are not UTF-8. Cases run
in this process through ``cli.main(argv)`` (argparse's SystemExit caught), so the whole matrix takes seconds;
a few run as real subprocesses, where argv bytes that are not UTF-8 arrive as the OS hands them over.
Each kind of bad argument records one row of docs/reliability.md (tests/reliability_table.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend import cli
from backend.errors import one_line
from tests.reliability_helpers import command_text, write_png
from tests.reliability_table import expect, record

ROOT = Path(__file__).resolve().parents[1]
USAGE_EXIT = 2  # docs/design.md §4: bad input or usage
SURFACE = "CLI matrix"


@dataclass(frozen=True)
class Case:
    command: str  # the subcommand, "" for the top-level parser
    argv: tuple[str, ...]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser(cli.MODULE_COMMAND)
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _value_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Options that take exactly one value (``--out DIR``, ``--seed N``, …)."""
    return [a for a in parser._actions if a.option_strings and a.nargs is None and not isinstance(a, (
        argparse._HelpAction, argparse._StoreTrueAction))]


def _long(action: argparse.Action) -> str:
    return action.option_strings[-1]


def _typo(option: str, known: list[str]) -> str | None:
    """``option`` with its first two letters swapped (``--out`` → ``--uot``); None when that reads as another
    option or a prefix argparse would accept as one."""
    body = option[2:]
    if len(body) < 2 or body[0] == body[1]:
        return None
    typo = "--" + body[1] + body[0] + body[2:]
    return None if any(k.startswith(typo) for k in known) else typo


def _required(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for the subcommand's required arguments, so that argparse gets as far as the bad one
    (it reports missing required arguments before unrecognized ones)."""
    words = []
    for action in parser._actions:
        if action.required or (not action.option_strings and action.nargs is None):
            words += [_long(action), "x"] if action.option_strings else ["x"]
    return words


def _generated_cases() -> dict[str, list[Case]]:
    """kind of bad argument → cases over every subcommand where it means something (argparse answers all)."""
    kinds: dict[str, list[Case]] = {k: [] for k in (
        "unknown option", "option typo", "option without its value", "value not among the choices",
        "word where a number goes", "required argument missing", "option name with a newline or non-UTF-8 bytes")}
    for command, parser in _subparsers().items():
        options = _value_options(parser)
        known = [s for a in parser._actions for s in a.option_strings]
        base = (command, *_required(parser))
        kinds["unknown option"].append(Case(command, (*base, "--no-such-option")))
        for option in (s for s in known if s.startswith("--") and s != "--help"):
            if (typo := _typo(option, known)) is not None:
                kinds["option typo"].append(Case(command, (*base, typo)))
        for action in options:
            kinds["option without its value"].append(Case(command, (*base, _long(action))))
            if action.choices:
                kinds["value not among the choices"].append(Case(command, (*base, _long(action), "no-such-choice")))
            if action.type in (int, float) or getattr(action.type, "__name__", "") in ("_positive_int", "_positive_int_or_auto"):
                kinds["word where a number goes"].append(Case(command, (*base, _long(action), "twelve")))
        if len(base) > 1:
            kinds["required argument missing"].append(Case(command, (command,)))
        kinds["option name with a newline or non-UTF-8 bytes"] += [
            Case(command, (*base, "--out\nput", "x")), Case(command, (*base, "--mod\udcffels", "tiny"))]
    kinds["unknown option"] += [Case("", ("--no-such-option",))]
    kinds["unknown command"] = [Case("", ("no-such-command",)), Case("", ("genrate",))]
    kinds["no command"] = [Case("", ())]
    return kinds


GENERATED = _generated_cases()
INPUT_KINDS = ["input that does not exist", "a folder where a file goes", "a file that is not what it should be",
               "an empty path", "--out is a file", "a path with a newline", "a path with bytes that are not UTF-8",
               "seed out of range", "a count of zero"]


def _input_cases(folder: Path) -> dict[str, list[Case]]:
    """kind of bad path or value → cases over every subcommand that reads or writes it (the command runs)."""
    photo = write_png(folder / "photo.png")
    text = folder / "notes.png"
    text.write_text("not an image\n")
    plain_file = folder / "file.txt"
    plain_file.write_text("a file, not a folder\n")
    rows = folder / "rows.csv"
    rows.write_text(f"image,prompt\n{photo},a red blob\n")
    out = str(folder / "out")
    fast = ("--models", "tiny", "--device", "cpu", "-q")

    def photo_jobs(image, out_dir=out, *extra) -> list[Case]:
        return [Case("segment", ("segment", str(image), "--prompt", "a red blob", "--out", str(out_dir), *fast)),
                Case("generate", ("generate", str(image), "--prompt", "a red blob", "--out", str(out_dir),
                                  "--preset", "smoke", *extra, *fast))]

    def csv_job(csv, out_dir=out) -> list[Case]:
        return [Case("batch", ("batch", "--csv", str(csv), "--out", str(out_dir), *fast))]

    def phrasecut(data) -> list[Case]:
        return [Case("eval-phrasecut", ("eval-phrasecut", "--data", str(data), *fast))]

    def recon(out_dir, phase="fit", *extra) -> list[Case]:
        return [Case("eval-recon", ("eval-recon", "--out", str(out_dir), "--phase", phase, *extra, *fast))]

    def bench(report, *extra) -> list[Case]:
        return [Case("bench", ("bench", "--out", str(report), *extra, *fast))]

    missing = folder / "no-such-thing.png"
    return {
        "input that does not exist": photo_jobs(missing) + csv_job(folder / "no-such.csv") + phrasecut(missing)
        + recon(folder / "no-such-folder") + recon(out, "render-gt", "--object", str(folder / "no-such.obj")),
        "a folder where a file goes": photo_jobs(folder) + csv_job(folder) + phrasecut(plain_file) + bench(folder),
        "a file that is not what it should be": photo_jobs(text) + csv_job(plain_file),
        "an empty path": photo_jobs("") + photo_jobs(photo, "") + csv_job("") + csv_job(rows, "") + bench("")
        + recon(""),
        "--out is a file": photo_jobs(photo, plain_file) + csv_job(rows, plain_file) + bench(plain_file / "x.json")
        + recon(plain_file),
        "a path with a newline": photo_jobs(folder / "two\nlines.png") + csv_job(folder / "two\nlines.csv")
        + phrasecut(folder / "two\nlines"),
        "a path with bytes that are not UTF-8": photo_jobs(folder / "caf\udce9.png")
        + csv_job(folder / "caf\udce9.csv"),
        "seed out of range": photo_jobs(photo, out, "--seed", "-1")[1:]
        + photo_jobs(photo, out, "--seed", str(2 ** 64))[1:],
        "a count of zero": bench(folder / "bench.json", "--repeats", "0")
        + photo_jobs(photo, out, "--steps", "0")[1:],
    }


for _kind in [*GENERATED, *INPUT_KINDS]:
    expect(__name__, f"usage: {_kind}", SURFACE)
expect(__name__, "usage: real processes (argv as the OS hands it over)", "CLI (subprocess)")


def _run_in_process(case: Case, capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = cli.main(list(case.argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _problems(case: Case, code, stderr: str) -> list[str]:
    """What is wrong with how ``case`` ended (empty: it ended as the contract says)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    problems = []
    if code != USAGE_EXIT:
        problems.append(f"exit {code}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines")
    if "Traceback" in stderr or "internal error" in stderr:
        problems.append("a bug's message")
    typed = " ".join(case.argv)
    if any(ch in typed for ch in "\n\udce9\udcff") and not any(e in stderr for e in ("\\n", "\\udce9", "\\udcff")):
        problems.append("the odd characters are not shown escaped")
    return problems


def _check_kind(kind: str, cases: list[Case], capsys) -> None:
    assert cases, f"no case generated for {kind}"
    failures, first = [], None
    for case in cases:
        code, stderr = _run_in_process(case, capsys)
        if problems := _problems(case, code, stderr):
            failures.append(f"{case.argv!r}: {', '.join(problems)}: {stderr!r}")
        elif first is None:
            first = (case, code, stderr.strip())
    assert not failures, "\n".join(failures)
    case, code, line = first
    commands = sorted({c.command or "(top level)" for c in cases})
    plural = "s" if len(cases) != 1 else ""
    record(f"usage: {kind}", SURFACE, one_line(command_text(list(case.argv))), code, line, "none",
           f"{len(cases)} case{plural} over {', '.join(commands)}: one line, exit 2, no traceback")


@pytest.mark.parametrize("kind", list(GENERATED))
def test_every_usage_error_is_one_line_and_exit_2(kind, capsys):
    _check_kind(kind, GENERATED[kind], capsys)


@pytest.fixture(scope="module")
def input_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("usage")


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_every_bad_path_or_value_is_one_line_and_exit_2_before_any_work(kind, input_folder, capsys, monkeypatch):
    monkeypatch.setenv("IMAGE_TO_3D_CACHE", str(input_folder / "cache"))
    cases = _input_cases(input_folder)
    assert list(cases) == INPUT_KINDS
    _check_kind(kind, cases[kind], capsys)
    assert not (input_folder / "out").exists() and not (input_folder / "cache").exists()


def test_usage_errors_in_real_processes_are_one_line(tmp_path):
    """What argparse and the OS do outside pytest: argv bytes that are not UTF-8 (decoded with surrogateescape),
    a newline in a path, no command at all. Commands that fail before torch is imported, so each takes a
    fraction of a second."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        [b"generate", b"photo.png", b"--out", b"out", b"--pr\xffompt", b"x"],
        [b"batch", b"--csv", os.fsencode(tmp_path / "caf\xe9") + b"\xff.csv", b"--out", os.fsencode(tmp_path / "out")],
        [b"eval-phrasecut", b"--data", os.fsencode(tmp_path / "two\nlines")],
        [],
    ]
    seen = []
    for argv in runs:
        done = subprocess.run([sys.executable.encode(), b"-m", b"backend", *argv], capture_output=True, env=env,
                              cwd=ROOT, timeout=120)
        stderr = done.stderr.decode("utf-8", errors="replace")
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert done.returncode == USAGE_EXIT and len(lines) == 1 and "Traceback" not in stderr, (argv, stderr)
        assert b"\n" not in b"".join(argv) or "\\n" in lines[0], stderr
        assert b"\xff" not in b"".join(argv) or "\\udcff" in lines[0], stderr
        seen.append(lines[0])
    record("usage: real processes (argv as the OS hands it over)", "CLI (subprocess)",
           "python -m backend generate photo.png --out out --pr<0xff>ompt x", USAGE_EXIT, seen[0], "none",
           "also a CSV path with bytes 0xe9 0xff, a data folder with a newline, no command: each one line, exit 2")
