"""Test set-up: isolated caches, tiny models, no network; the bpy add-on harness."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Isolate every per-user cache before anything (bpy, torch, huggingface_hub) reads it.
_SCRATCH = Path(tempfile.mkdtemp(prefix="image_to_3d_tests_"))
for _var, _sub in (("BLENDER_USER_RESOURCES", "blender"), ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data"),
                   ("HF_HOME", "hf"), ("TORCH_EXTENSIONS_DIR", "torch_extensions")):
    os.environ.setdefault(_var, str(_SCRATCH / _sub))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("IMAGE_TO_3D_MODELS", "tiny")
# Tiny models do many small ops: one torch thread avoids oversubscription (10-50x slower on a busy 2-core box).
# Set before torch is imported, so this process and every subprocess (CLI tests) start with one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bundled_photo() -> Path:
    """coffee.png that ships with scikit-image (public domain, see README)."""
    import skimage

    return Path(skimage.__file__).parent / "data" / "coffee.png"


@pytest.fixture(scope="session")
def addon_package():
    """The extension imported from this checkout as the package ``image_to_3d`` (not yet registered).

    The checkout's folder may have any name, so a temp folder holds a link named ``image_to_3d``.
    """
    from tests.blender_harness import import_addon_from_checkout

    return import_addon_from_checkout(REPO_ROOT)


@pytest.fixture
def registered_addon(addon_package):
    """The add-on registered in the bpy module, with a fresh factory-default scene; unregistered after."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_package.register()
    try:
        yield addon_package
    finally:
        addon_package.unregister()


from tests.blender_fixtures import addon_settings, job_backend, small_photo  # noqa: E402,F401  (bpy test fixtures)
from tests.reliability_table import MODULES as TABLE_MODULES  # noqa: E402
from tests.reliability_table import table_text, write_table_if_complete  # noqa: E402

_TABLE_AT_START = pytest.StashKey[str]()


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``make test`` runs two workers, ``--dist loadgroup``): each test module runs whole on one
    worker (module fixtures run once, modules that share files on disk never overlap), and the modules that feed
    docs/reliability.md share one worker so that worker sees every row of the table."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else item.nodeid.split("::")[0]
        group = "reliability-table" if module in TABLE_MODULES else module
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_sessionstart(session):
    session.config.stash[_TABLE_AT_START] = table_text()


def pytest_sessionfinish(session, exitstatus):
    """docs/reliability.md is regenerated from what the reliability tests observed (tests/reliability_table.py).

    The worker that ran the reliability modules rewrites a stale table; the controlling process (or the only
    process, without xdist) fails the session when the table changed during the run, so CI catches it."""
    write_table_if_complete(session)
    is_xdist_controller = bool(getattr(session.config.option, "numprocesses", None)) and not hasattr(
        session.config, "workerinput")
    if is_xdist_controller and table_text() != session.config.stash.get(_TABLE_AT_START, None):
        print("\ndocs/reliability.md was stale and has been regenerated: commit it.")
        session.exitstatus = 1
from tests.reliability_fixtures import real_generate_work, real_settings  # noqa: E402,F401
