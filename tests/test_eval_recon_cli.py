"""``python -m backend eval-recon``: argument handling and bad input (exit 2, one line)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(repo_root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", "eval-recon", *args], cwd=repo_root,
                          capture_output=True, text=True, timeout=120)


def test_missing_object_file_is_exit_2_one_line(repo_root, tmp_path):
    done = _run(repo_root, "--object", str(tmp_path / "nope.glb"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: --object {tmp_path / 'nope.glb'}: no such file"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_object_file_blender_cannot_read_is_exit_2(repo_root, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a mesh")
    done = _run(repo_root, "-q", "--object", str(bogus), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "unknown mesh file type '.txt'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())  # the atomic output folder left nothing behind


def test_help_lists_the_options(repo_root):
    done = subprocess.run([sys.executable, "-m", "backend", "eval-recon", "--help"], cwd=repo_root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in ("--size", "--object", "--blender", "--out"):
        assert option in done.stdout
