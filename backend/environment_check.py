"""Which Python packages the backend needs can be imported, and whether torch sees a CUDA GPU. No bpy here.

Used by the add-on's "Check Python packages" button and by the "Python packages folder" preference, which
adds an existing environment's site-packages (one with a CUDA torch, say) to ``sys.path`` when a job starts.
Packages are found with ``importlib`` specs and dist-info versions, without importing them; only torch is
imported, and only when the check is asked to query CUDA.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import site
import sys
from dataclasses import dataclass
from pathlib import Path

# (import name, distribution name) of what the backend imports. gsplat is needed on CUDA only: on the CPU the
# backend renders Gaussians with its own PyTorch rasterizer.
REQUIRED_PACKAGES: tuple[tuple[str, str], ...] = (
    ("torch", "torch"), ("torchvision", "torchvision"), ("transformers", "transformers"),
    ("diffusers", "diffusers"), ("safetensors", "safetensors"), ("huggingface_hub", "huggingface-hub"),
    ("segment_anything", "segment-anything"), ("gsplat", "gsplat"), ("trimesh", "trimesh"), ("xatlas", "xatlas"),
    ("skimage", "scikit-image"), ("PIL", "pillow"), ("tqdm", "tqdm"), ("numpy", "numpy"),
)
CUDA_ONLY_PACKAGES = frozenset({"gsplat"})


@dataclass(frozen=True)
class PackageStatus:
    """One package: found or not, and which version from which folder."""

    module: str  # import name, e.g. "skimage"
    distribution: str  # name on PyPI, e.g. "scikit-image"
    found: bool
    version: str | None  # from the package's dist-info; None when not found or not installed by pip
    location: str | None  # folder holding the package


@dataclass(frozen=True)
class EnvironmentReport:
    """What :func:`check_environment` found."""

    packages: tuple[PackageStatus, ...]
    torch_cuda: bool | None  # None: not queried, or torch missing or failing to import
    cuda_detail: str  # e.g. "CUDA 13.0, NVIDIA H100" or why torch could not be asked

    @property
    def missing(self) -> tuple[str, ...]:
        """Distribution names of the packages that are not importable."""
        return tuple(p.distribution for p in self.packages if not p.found)

    def version_of(self, distribution: str) -> str | None:
        return next((p.version for p in self.packages if p.distribution == distribution and p.found), None)

    def summary(self) -> str:
        """A few short lines for the preferences: what is missing, torch and CUDA."""
        lines = []
        missing = self.missing
        if missing:
            cuda_only = [m for m in missing if m in CUDA_ONLY_PACKAGES]
            lines.append("Missing: " + ", ".join(missing) + (" (gsplat is needed on CUDA only)" if cuda_only else ""))
        else:
            lines.append(f"All {len(self.packages)} packages found")
        torch_version = self.version_of("torch")
        if torch_version is not None:
            cuda = {True: "CUDA available", False: "CUDA not available (CPU only)", None: "CUDA not checked"}
            detail = f" ({self.cuda_detail})" if self.cuda_detail else ""
            lines.append(f"torch {torch_version}: {cuda[self.torch_cuda]}{detail}")
        return "\n".join(lines)


def add_packages_folder(folder: str | Path) -> bool:
    """Append ``folder`` (and the paths its .pth files name) to ``sys.path``; False if it was there already.

    Appended, not prepended: Blender's own packages (numpy above all) and the extension's bundled wheels stay
    first, and the folder fills in what they lack (torch, say). Raises FileNotFoundError for a missing folder.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Python packages folder does not exist: {str(folder)!r}")
    resolved = str(path.resolve())
    if resolved in sys.path or str(path) in sys.path:
        return False
    site.addsitedir(resolved)
    importlib.invalidate_caches()
    return True


def check_environment(packages_folder: str | Path = "", query_cuda: bool = True,
                      required: tuple[tuple[str, str], ...] = REQUIRED_PACKAGES) -> EnvironmentReport:
    """Look for each required package on ``sys.path`` plus ``packages_folder``; ask torch about CUDA if asked.

    Finding packages changes nothing. Querying CUDA imports torch, so when torch lies in ``packages_folder``
    that folder is added to ``sys.path`` first (as a job would do at its start).
    """
    folder = str(Path(packages_folder).expanduser().resolve()) if packages_folder else ""
    if folder and not Path(folder).is_dir():
        raise FileNotFoundError(f"Python packages folder does not exist: {str(packages_folder)!r}")
    search_path = [*sys.path, folder] if folder else list(sys.path)
    importlib.invalidate_caches()
    packages = tuple(_find_package(module, distribution, search_path) for module, distribution in required)
    torch_found = any(p.module == "torch" and p.found for p in packages)
    torch_cuda, detail = None, ""
    if query_cuda and torch_found:
        if folder:
            add_packages_folder(folder)
        torch_cuda, detail = _query_cuda()
    return EnvironmentReport(packages=packages, torch_cuda=torch_cuda, cuda_detail=detail)


def _find_package(module: str, distribution: str, search_path: list[str]) -> PackageStatus:
    spec = sys.modules[module].__spec__ if module in sys.modules else None
    if spec is None:
        spec = importlib.machinery.PathFinder.find_spec(module, search_path)
    if spec is None:
        return PackageStatus(module, distribution, False, None, None)
    origin = spec.origin if spec.origin not in (None, "namespace") else next(iter(spec.submodule_search_locations
                                                                                   or []), None)
    location = str(Path(origin).parent.parent if spec.submodule_search_locations else Path(origin).parent) \
        if origin else None
    dist_path = [location] if location else search_path
    dist = next(iter(importlib.metadata.distributions(name=distribution, path=dist_path)), None)
    return PackageStatus(module, distribution, True, dist.version if dist is not None else None, location)


def _query_cuda() -> tuple[bool | None, str]:
    """(CUDA usable, detail) from torch itself; imported here and nowhere else in this module."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch install is what the check is for
        return None, f"torch fails to import: {type(exc).__name__}: {exc}"[:200]
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return False, build
    return True, f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
