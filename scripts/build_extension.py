"""Build the extension zips: the small one without wheels, or one per platform and Python with wheels bundled.

    python scripts/build_extension.py --platform any [--repo dist/repo]          # small: any Python, any platform
    python scripts/build_extension.py --platform linux-x64 [--python 3.11] [--no-torch] [--only PKG …] [--out dist/]

The small zip (``image_to_3d-<version>.zip``) holds the add-on alone: the backend runs in a worker process whose
Python environment "Set up backend" creates after install (docs/install.md). The bundled builds
(``image_to_3d-<version>-<platform>-py<XY>.zip``) carry the wheels for Blender's own Python, for machines that
must stay offline. ``--repo DIR`` copies the zip into DIR and writes DIR/index.json with Blender's
``extension server-generate`` (the bpy module's copy of that CLI), a static repository to add in
Preferences → Get Extensions.

Steps: 1. copy the add-on into a staging folder; 2. ``pip download`` every wheel for the target platform and
Blender's Python (dependencies included, binary wheels only); 3. drop the packages Blender already bundles;
4. write ``wheels = […]`` and ``platforms = […]`` into the staged copy of blender_manifest.toml (the repository's
own manifest is never touched); 5. write THIRD_PARTY_LICENSES.txt from each wheel's METADATA; 6. validate and
build ``<out>/image_to_3d-<version>-<platform>.zip`` with the extension CLI that ships with Blender (here: the one
inside the bpy wheel); 7. check that the zip holds the add-on and nothing that should stay out.

``--no-torch`` leaves out torch, torchvision and gsplat, for users who point the preference
*Python packages folder* at an environment that already has a CUDA torch.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# What the zip holds besides wheels/ and THIRD_PARTY_LICENSES.txt. Everything else (tests/, scripts/, docs/,
# .venv, caches, outputs) stays out because it is never copied into the staging folder.
ADDON_PATHS = ("__init__.py", "blender_manifest.toml", "LICENSE", "operators", "panels", "properties", "backend",
               "requirements-worker.txt")
ANY_PLATFORM = "any"  # the small build: no wheels, no platforms line in the manifest
FORBIDDEN_IN_ZIP = ("tests/", "scripts/", "docs/", ".venv/", "__pycache__/", ".git/", "out/", "dist/", ".ci/")

# Blender platform → pip --platform tags, best first. Blender 4.2+ needs glibc 2.28 on Linux, so wheels for any
# manylinux up to 2_28 run; pip does not widen manylinux_2_28 to older tags by itself. For macOS pip widens
# macosx_14_0_arm64 to every arm64 release down to 11.0 (Blender 4.2–5.0 run on macOS 11.2+); a wheel that only
# exists for a newer macOS then needs that macOS.
PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "linux-x64": (*(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)), "manylinux2014_x86_64",
                  "manylinux2010_x86_64", "manylinux1_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64", "macosx_14_0_arm64"),
}

# Top-level packages the backend imports (docs/design.md §1). Versions come from requirements.txt (the tested set).
RUNTIME_PACKAGES = ("torch", "torchvision", "transformers", "diffusers", "safetensors", "huggingface-hub",
                    "segment-anything", "gsplat", "trimesh", "xatlas", "scikit-image", "pillow", "tqdm")
TORCH_PACKAGES = ("torch", "torchvision", "gsplat")  # left out by --no-torch
# With --no-torch nothing may drag these in behind our back (CUDA runtime wheels are gigabytes).
TORCH_STACK_PREFIXES = ("torch", "torchvision", "gsplat", "triton", "nvidia-", "cuda-")

# Packages Blender 4.2–5.0 already ship in their own site-packages (bpy 5.0.1's wheel declares numpy<2,>=1.26,
# requests, zstandard and cython; requests brings certifi, charset-normalizer, idna and urllib3; Blender's
# Python also has autopep8 and pycodestyle for its text editor). Bundling a second copy would shadow Blender's
# own and could break it (numpy above all), so they are resolved against Blender's versions and then dropped.
BLENDER_BUNDLED = ("numpy", "requests", "certifi", "charset-normalizer", "idna", "urllib3", "zstandard", "cython",
                   "autopep8", "pycodestyle")
BLENDER_CONSTRAINTS = ("numpy>=1.26,<2",)  # resolve our wheels against Blender's numpy 1.26

EXTENSION_CLI = Path("bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py")  # inside site-packages


@dataclass(frozen=True)
class BundledWheel:
    """One wheel that goes into the zip, with the licence its METADATA declares."""

    path: Path
    project: str  # normalised name: lower case, runs of -_. → -
    version: str
    licence: str


@dataclass(frozen=True)
class BuildResult:
    zip_path: Path
    wheels: tuple[BundledWheel, ...]
    platform: str


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(path: Path) -> tuple[str, str]:
    """(normalised project name, version) from a wheel's file name."""
    parts = path.name[:-len(".whl")].split("-")
    if len(parts) < 5:
        raise ValueError(f"not a wheel file name: {path.name}")
    return normalise(parts[0]), parts[1]


def pinned_versions(requirements: Path) -> dict[str, str]:
    """``name==version`` lines of requirements.txt → {normalised name: version}."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def requested_packages(only: list[str] | None, no_torch: bool, pins: dict[str, str]) -> list[str]:
    """Requirement strings for pip: the runtime packages (or just ``only``), pinned where requirements.txt pins."""
    names = only if only else list(RUNTIME_PACKAGES)
    if no_torch:
        names = [name for name in names if normalise(name) not in TORCH_PACKAGES]
    if not names:
        raise SystemExit("nothing to download: --only named only torch packages and --no-torch dropped them")
    return [f"{name}=={pins[normalise(name)]}" if normalise(name) in pins else name for name in names]


def download_wheels(requirements: list[str], platform: str, python: str, dest: Path, pip_extra: list[str],
                    constraints: Path) -> None:
    """``pip download`` binary wheels for the target platform and Python into ``dest`` (dependencies included)."""
    abi = "cp" + python.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest),
               "--python-version", python, "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
               "--constraint", str(constraints), "--progress-bar", "off", *pip_extra]
    for tag in PLATFORM_TAGS[platform]:
        command += ["--platform", tag]
    print("+", " ".join(command + requirements), flush=True)
    subprocess.run(command + requirements, check=True)


def drop_unwanted(wheel_dir: Path, no_torch: bool) -> list[str]:
    """Delete wheels of packages Blender ships (and of the torch stack with --no-torch); returns what went."""
    dropped = []
    for path in sorted(wheel_dir.glob("*.whl")):
        project, _ = wheel_project(path)
        if project in BLENDER_BUNDLED or (no_torch and project.startswith(TORCH_STACK_PREFIXES)):
            path.unlink()
            dropped.append(path.name)
    return dropped


def wheel_licence(path: Path) -> str:
    """The licence a wheel's METADATA declares: License-Expression, else License (first line), else classifiers."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if name is None:
            return "unknown (no METADATA)"
        headers = BytesHeaderParser().parsebytes(archive.read(name))
        licence_file = next((n for n in names if ".dist-info/" in n and "LICEN" in n.rsplit("/", 1)[-1].upper()), None)
        licence_head = archive.read(licence_file).decode("utf-8", "replace").strip() if licence_file else ""
    expression = (headers.get("License-Expression") or "").strip()
    if expression:
        return expression
    classifiers = [c.split("::")[-1].strip() for c in headers.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return "; ".join(classifiers)
    first_line = (headers.get("License") or "").strip().splitlines()
    if first_line and first_line[0].strip().upper() != "UNKNOWN":
        return first_line[0].strip()[:120]
    if licence_head:  # no licence in METADATA: name the licence file's title line
        return f"{licence_head.splitlines()[0].strip()[:80]} (first line of {licence_file.rsplit('/', 1)[-1]})"
    return "see the licence files inside the wheel's .dist-info"


def bundled_wheels(wheel_dir: Path) -> tuple[BundledWheel, ...]:
    wheels = []
    for path in sorted(wheel_dir.glob("*.whl")):
        project, version = wheel_project(path)
        wheels.append(BundledWheel(path, project, version, wheel_licence(path)))
    return tuple(wheels)


def write_manifest(source: Path, target: Path, wheels: tuple[BundledWheel, ...], platform: str) -> dict:
    """The manifest with ``wheels`` and ``platforms`` set (neither for the any-platform build), written to
    ``target``; returns it parsed."""
    lines = [line for line in source.read_text().splitlines()
             if not re.match(r"^\s*(wheels|platforms)\s*=", line)]
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    wheel_lines = ["wheels = ["] + [f'  "./wheels/{w.path.name}",' for w in wheels] + ["]"]
    added = [f'platforms = ["{platform}"]', *(wheel_lines if wheels else []), ""]
    if platform == ANY_PLATFORM:
        added = [""]
    target.write_text("\n".join(lines[:first_table] + added + lines[first_table:]) + "\n")
    manifest = tomllib.loads(target.read_text())
    if platform == ANY_PLATFORM:
        if "platforms" in manifest or "wheels" in manifest:
            raise RuntimeError("the any-platform manifest must name no platforms and no wheels")
    elif manifest.get("platforms") != [platform]:
        raise RuntimeError(f"staged manifest has platforms {manifest.get('platforms')!r}, expected [{platform!r}]")
    return manifest


def write_third_party_licences(path: Path, wheels: tuple[BundledWheel, ...], platform: str) -> None:
    lines = [f"Third-party Python packages bundled in this build ({platform}) as wheels under wheels/.",
             "Each wheel keeps its full licence text in its .dist-info folder. Licences as declared in each",
             "wheel's METADATA (License-Expression, License classifier or License field):", ""]
    lines += [f"{w.project} {w.version}: {w.licence}" for w in wheels] or ["(none)"]
    lines += ["", "Image to 3D itself is GPL-3.0-or-later (see LICENSE). Model weights are not bundled; their",
              "licences are listed in docs/install.md."]
    path.write_text("\n".join(lines) + "\n")


def stage_addon(stage: Path) -> None:
    stage.mkdir(parents=True)
    for name in ADDON_PATHS:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, stage / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, stage / name)


def extension_cli() -> Path:
    """blender_ext.py from the bpy wheel in this Python's site-packages."""
    for folder in map(Path, sys.path):
        candidate = folder / EXTENSION_CLI
        if candidate.is_file():
            return candidate
    raise SystemExit("the bpy module's extension CLI (bpy/5.0/…/blender_ext.py) was not found; run with .venv/bin/python")


def check_zip(zip_path: Path, wheels: tuple[BundledWheel, ...]) -> None:
    """The zip holds the add-on, every wheel and the licences, and none of the excluded folders."""
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
    required = {"__init__.py", "blender_manifest.toml", "LICENSE", "THIRD_PARTY_LICENSES.txt",
                "backend/__init__.py", "operators/__init__.py", "panels/__init__.py", "properties/__init__.py",
                "requirements-worker.txt"}
    required |= {f"wheels/{w.path.name}" for w in wheels}
    missing = sorted(required - names)
    stray = sorted(n for n in names if any(n.startswith(p) or f"/{p}" in n for p in FORBIDDEN_IN_ZIP))
    if missing or stray:
        raise RuntimeError(f"{zip_path.name}: missing {missing}, should not hold {stray[:10]}")


def zip_name(manifest: dict, platform: str, python: str) -> str:
    """Distinct names: the small zip has none of platform or Python, a bundled one both (cp311 ≠ cp313)."""
    if platform == ANY_PLATFORM:
        return f"{manifest['id']}-{manifest['version']}.zip"
    return f"{manifest['id']}-{manifest['version']}-{platform}-py{python.replace('.', '')}.zip"


def build(platform: str, python: str = "3.11", no_torch: bool = False, only: list[str] | None = None,
          out_dir: Path = REPO_ROOT / "dist", pip_extra: list[str] | None = None) -> BuildResult:
    """Build the zip named by :func:`zip_name` into ``out_dir``; see the module docstring for the steps."""
    if platform != ANY_PLATFORM and platform not in PLATFORM_TAGS:
        raise ValueError(f"unknown platform {platform!r}; choose {ANY_PLATFORM} or one of {sorted(PLATFORM_TAGS)}")
    with tempfile.TemporaryDirectory(prefix="image_to_3d_build_") as scratch:
        stage = Path(scratch) / "image_to_3d"
        # 1. The add-on alone, copied out of the checkout.
        stage_addon(stage)
        # 2.–3. Wheels for the target, resolved against Blender's numpy, minus what Blender ships.
        wheel_dir = stage / "wheels"
        wheel_dir.mkdir()
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("\n".join(BLENDER_CONSTRAINTS) + "\n")
        pins = pinned_versions(REPO_ROOT / "requirements.txt")
        if platform != ANY_PLATFORM:
            download_wheels(requested_packages(only, no_torch, pins), platform, python, wheel_dir, pip_extra or [],
                            constraints)
            for name in drop_unwanted(wheel_dir, no_torch):
                print(f"dropped {name} (Blender ships it{' / --no-torch' if no_torch else ''})")
        wheels = bundled_wheels(wheel_dir)
        if not wheels:
            wheel_dir.rmdir()
        # 4.–5. Manifest copy and licences.
        manifest = write_manifest(REPO_ROOT / "blender_manifest.toml", stage / "blender_manifest.toml", wheels,
                                  platform)
        write_third_party_licences(stage / "THIRD_PARTY_LICENSES.txt", wheels, platform)
        # 6. Validate and build with Blender's own extension CLI.
        cli = extension_cli()
        subprocess.run([sys.executable, str(cli), "validate", str(stage)], check=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        zip_path = out_dir.resolve() / zip_name(manifest, platform, python)
        zip_path.unlink(missing_ok=True)
        subprocess.run([sys.executable, str(cli), "build", "--source-dir", str(stage), "--output-filepath",
                        str(zip_path)], check=True)
        # 7. What went in.
        check_zip(zip_path, wheels)
    print(f"built {zip_path} ({zip_path.stat().st_size / 2**20:.1f} MiB, {len(wheels)} wheels)")
    return BuildResult(zip_path=zip_path, wheels=wheels, platform=platform)


def generate_repository(repo_dir: Path, zips: list[Path]) -> Path:
    """Copy ``zips`` into ``repo_dir`` and write its index.json with Blender's ``server-generate``."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    for path in zips:
        if path.resolve().parent != repo_dir.resolve():
            shutil.copy2(path, repo_dir / path.name)
    subprocess.run([sys.executable, str(extension_cli()), "server-generate", "--repo-dir", str(repo_dir)], check=True)
    index = repo_dir / "index.json"
    if not index.is_file():
        raise RuntimeError(f"server-generate wrote no {index}")
    return index


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", required=True, choices=[ANY_PLATFORM, *sorted(PLATFORM_TAGS)],
                        help=f"{ANY_PLATFORM}: the small zip without wheels (the worker's Python is set up after "
                             "install)")
    parser.add_argument("--repo", type=Path, metavar="DIR",
                        help="also put the zip into this static extension repository and regenerate its index.json")
    parser.add_argument("--python", default="3.11", help="Blender's Python (3.11 for Blender 4.2–5.0)")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave out torch, torchvision and gsplat (use the 'Python packages folder' preference)")
    parser.add_argument("--only", nargs="+", metavar="PKG", help="bundle just these packages (and their dependencies)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="folder for the zip (default dist/)")
    parser.add_argument("--torch-index-url", metavar="URL",
                        help="extra package index for CUDA torch, e.g. https://download.pytorch.org/whl/cu130 "
                             "(PyPI's Windows torch is CPU-only)")
    parser.add_argument("--find-links", metavar="DIR", help="also look for wheels in this folder (pip --find-links)")
    parser.add_argument("--no-index", action="store_true", help="use only --find-links, no package index")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pip_extra = []
    if args.torch_index_url:
        pip_extra += ["--extra-index-url", args.torch_index_url]
    if args.find_links:
        pip_extra += ["--find-links", args.find_links]
    if args.no_index:
        pip_extra.append("--no-index")
    result = build(args.platform, args.python, args.no_torch, args.only, args.out, pip_extra)
    if args.repo:
        print(f"repository index: {generate_repository(args.repo, [result.zip_path])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
