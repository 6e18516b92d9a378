"""The command line as people expect it (issue 24): an installed `image-to-3d` command, a typo answered by the
subcommand, help text with defaults and an example, and `-q` that leaves only the result line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import pytest

from backend import cli
from tests.reliability_helpers import SMOKE, photo_rgb

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_installs_the_console_script_that_runs_from_any_folder(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {cli.CONSOLE_SCRIPT: "backend.cli:main"}
    # A fresh environment that sees this one's packages (setuptools, pip, the dependencies) but not the
    # repository: an editable install, offline, then the command from a folder that is not the repository.
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = subprocess.run([env_dir / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([env_dir / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "-e", str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    done = subprocess.run([env_dir / "bin" / cli.CONSOLE_SCRIPT, "generate", "--help"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {cli.CONSOLE_SCRIPT} generate")
    assert f"example:\n  {cli.CONSOLE_SCRIPT} generate photo.jpg" in done.stdout


def test_a_typo_in_a_subcommand_option_is_answered_by_that_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["generate", "photo.jpg", "--promt", "a mug", "--out", "mug"])
    lines = capsys.readouterr().err.splitlines()
    assert info.value.code == 2
    assert lines == [f"{cli.MODULE_COMMAND} generate: error: unrecognized arguments: --promt a mug "
                     f"(did you mean --prompt?) (see {cli.MODULE_COMMAND} generate --help)"]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_option_says_what_it_takes_and_its_default_and_help_ends_with_an_example(command):
    parser = _subcommands(cli.build_parser(cli.MODULE_COMMAND))[command]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"{command} {name} has no help text"
        optional_value = action.option_strings and not action.required and action.nargs != 0 and action.default != []
        if optional_value:
            assert "default" in formatter._expand_help(action), f"{command} {name} does not name its default"
    help_text = parser.format_help().rstrip()
    assert help_text.splitlines()[-2:] == ["example:", "  " + cli.EXAMPLES[command].format(prog=cli.MODULE_COMMAND)]


# Each library's noise as it reaches a terminal on a GPU run: diffusers' fp32 warning (Zero123 cast to fp16),
# transformers' "Loading weights" bar, PyTorch's stream warning. Tiny models on the CPU trigger none of them,
# so the run below makes them, from inside the job, where the real ones happen.
_NOISY_RUN = textwrap.dedent("""
    import sys, warnings
    import backend.generate.pipeline as pipeline

    real_load_image = pipeline.load_image

    def noisy_load_image(path):
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.get_logger("diffusers.models.modeling_utils").warning(
            "There are modules in UNet2DConditionModel that should be kept in float32: []")
        for _ in transformers_logging.tqdm(range(3), desc="Loading weights"):
            pass
        warnings.warn("The AccumulateGrad node's stream does not match the stream of the node that produced "
                      "the incoming gradient", UserWarning)
        return real_load_image(path)

    pipeline.load_image = noisy_load_image
    from backend.cli import main

    sys.exit(main(sys.argv[1:]))
""")


def _noisy_generate(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.fromarray(photo_rgb()).save(photo)
    env = {**os.environ, "IMAGE_TO_3D_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    for name in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)
    argv = ["generate", str(photo), "--prompt", "a red blob", "--out", str(tmp_path / "out"),
            *[word for word in SMOKE if word != "-q"], *flags]
    return subprocess.run([sys.executable, "-c", _NOISY_RUN, *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)


@pytest.mark.slow
def test_quiet_generate_prints_only_its_result_line(tmp_path):
    done = _noisy_generate(tmp_path, "-q")
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).splitlines() == [f"wrote {tmp_path / 'out' / 'model.glb'}"]


@pytest.mark.slow
def test_verbose_shows_the_libraries_own_output(tmp_path):
    done = _noisy_generate(tmp_path, "-q", "-v")
    assert done.returncode == 0, done.stderr
    assert "should be kept in float32" in done.stderr and "Loading weights" in done.stderr
    assert "AccumulateGrad" in done.stderr
