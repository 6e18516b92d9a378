"""The Preview preset (issue 20, requirement 6): a rough shape to try the workflow, cheap enough for a CPU.

Its cost is pinned here by what it does (step counts and sizes), not by a clock: the measured times are in
docs/user-guide.md ("How long Preview takes")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backend import choices
from backend.generate.presets import PRESETS
from backend.quick.config import QUICK_PRESETS

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_best_preview_fits_briefly_at_small_sizes_and_skips_stage_2():
    preview = PRESETS["preview"]
    assert preview.stage1.steps == 30 and preview.stage1.num_init == 1000
    assert preview.stage1.render_sizes == (32, 64) and preview.reference_size == 64
    assert (preview.mesh.resolution, preview.mesh.target_faces) == (48, 3_000)
    assert (preview.texture_size, preview.bake_size) == (128, 64)
    assert preview.texture.steps == 0  # the baked texture is kept: no Zero123 refinement at all


def test_best_preview_costs_less_than_draft_on_every_axis():
    preview, draft = PRESETS["preview"], PRESETS["draft"]
    assert preview.stage1.steps * 8 <= draft.stage1.steps
    assert max(preview.stage1.render_sizes) * 2 <= min(draft.stage1.render_sizes)
    assert preview.mesh.resolution ** 3 * 8 <= draft.mesh.resolution ** 3
    assert preview.texture_size * 4 <= draft.texture_size and preview.bake_size * 4 <= draft.bake_size
    assert preview.texture.steps == 0 < draft.texture.steps


def test_quick_preview_is_a_coarse_grid_and_a_small_texture():
    preview, draft = QUICK_PRESETS["preview"], QUICK_PRESETS["draft"]
    assert (preview.mesh.resolution, preview.mesh.target_faces, preview.texture_size) == (96, 5_000, 256)
    assert preview.mesh.resolution < draft.mesh.resolution and preview.texture_size < draft.texture_size


def test_preview_tooltip_says_what_it_is_for():
    preview = next(choice for choice in choices.PRESETS if choice.name == "preview")
    assert preview.description.startswith("Rough shape to try the workflow; not final quality")
    assert choices.names(choices.PRESETS)[0] == "preview"  # the quickest comes first in the menu


def _wait_policy_after_import(environment: dict[str, str], before: str = "") -> str:
    code = f"{before}import os, backend; print(os.environ.get('OMP_WAIT_POLICY', '(unset)'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_backend_makes_openmp_threads_sleep_unless_told_otherwise_or_inside_blender():
    """A spinning OpenMP thread holds a core its partner needs on a busy CPU (backend/openmp_wait.py)."""
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    assert _wait_policy_after_import(environment) == "PASSIVE"
    assert _wait_policy_after_import({**environment, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    inside_blender = "import sys, types; sys.modules['bpy'] = types.ModuleType('bpy'); "
    assert _wait_policy_after_import(environment, inside_blender) == "(unset)"
