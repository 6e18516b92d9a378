"""Does every pin of a requirements file install from wheels on each Python and platform we support?

    python scripts/check_wheels.py [requirements-worker.txt] [--markdown]

Asks the package index through pip itself (``pip install --dry-run --only-binary=:all: --python-version …
--platform …``, no dependencies, nothing installed; PyPI's metadata files mean no wheel is downloaded).
Prints one line per package with ok / MISSING per target; exit 0 when all are ok, 1 when any is missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PYTHONS = ("3.11", "3.13")
PLATFORMS = {  # name → pip platform tags (pip also accepts older compatible macOS versions; manylinux needs listing)
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_14_0_arm64",),
}


def read_pins(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def has_wheel(pin: str, python: str, tags: tuple[str, ...]) -> bool:
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
               "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
               "--target", str(Path.home() / ".cache" / "check_wheels_target"), pin]
    for tag in tags:
        command[4:4] = ["--platform", tag]
    return subprocess.run(command, capture_output=True, text=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", nargs="?", default=str(Path(__file__).resolve().parents[1]
                                                                 / "requirements-worker.txt"))
    parser.add_argument("--markdown", action="store_true", help="a table for docs/install.md")
    args = parser.parse_args(argv)
    pins = read_pins(Path(args.requirements))
    targets = [(python, name) for python in PYTHONS for name in PLATFORMS]
    jobs = [(pin, python, name) for pin in pins for python, name in targets]
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = dict(zip(jobs, pool.map(lambda job: has_wheel(job[0], job[1], PLATFORMS[job[2]]), jobs), strict=True))
    header = [f"{name} {python}" for python, name in targets]
    if args.markdown:
        print("| package | " + " | ".join(header) + " |")
        print("|---" * (len(header) + 1) + "|")
    for pin in pins:
        cells = ["ok" if found[(pin, python, name)] else "MISSING" for python, name in targets]
        print(f"| {pin} | " + " | ".join(cells) + " |" if args.markdown else f"{pin:32} " + " ".join(
            f"{h}:{c}" for h, c in zip(header, cells, strict=True)))
    missing = [job for job, ok in found.items() if not ok]
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
