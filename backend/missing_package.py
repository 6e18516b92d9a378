"""A Python package the environment lacks, said as such (issue 24): which package, and how to install it.

Run with a Python that is not the project's environment, a command used to end in "internal error
(ModuleNotFoundError: No module named 'PIL'); … report it", asking for a bug report about an install. The
command line turns an ImportError of a module outside this project into one line and exit 4 (the
environment lacks something the job needs, as when a model is missing); an import of our own modules that
fails is still a bug (exit 1).
"""

from __future__ import annotations

import sys

MISSING_PACKAGE_EXIT_CODE = 4  # backend.errors.EXIT_CODES: models or Python packages unavailable
# import name → the distribution to install, where they differ (the rest install under their import name)
DISTRIBUTION_OF_MODULE = {
    "PIL": "pillow",
    "skimage": "scikit-image",
    "yaml": "PyYAML",
    "segment_anything": "segment-anything",
    "fast_simplification": "fast-simplification",
}
# modules of optional extras, and the requirements file that installs them
EXTRA_REQUIREMENTS = {"ray": "requirements-ray.txt"}
INSTALL_HINT = ("install the project's environment with `make venv` (in the repository), or "
                "`pip install -r {requirements}` into the Python you run")
_PROJECT_PACKAGES = {"backend", (__package__ or "backend").split(".")[0]}  # inside Blender: image_to_3d


def missing_package_message(error: ImportError) -> str | None:
    """The one line for an import that failed in a package outside this project, else None (our own module,
    or an ImportError that names no module: a bug, said as one)."""
    if not error.name:
        return None
    module = error.name.split(".")[0]
    if module in _PROJECT_PACKAGES:
        return None
    if module in sys.stdlib_module_names:
        return (f"this Python lacks its standard module {module!r} (a build without it): run the command with "
                f"a complete Python {sys.version_info.major}.{sys.version_info.minor}")
    distribution = DISTRIBUTION_OF_MODULE.get(module, module)
    package = f"{module!r}" if distribution == module else f"{module!r} ({distribution})"
    hint = INSTALL_HINT.format(requirements=EXTRA_REQUIREMENTS.get(module, "requirements.txt"))
    if isinstance(error, ModuleNotFoundError) and error.name == module:
        return f"missing Python package {package}: {hint}"
    # a package that is there but fails to import (a part missing, another version than the pinned one)
    return f"Python package {package} is installed but does not import ({error}): {hint}"
