"""Blender fixtures of the reliability tests: the add-on with the real tiny-model backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def real_generate_work(addon_package):
    """The add-on's real generate work (captured before addon_settings swaps in the fake)."""
    from image_to_3d.operators import backend_jobs

    from tests.blender_fakes import fake_generate_work

    assert backend_jobs.build_generate_work is not fake_generate_work
    return backend_jobs.build_generate_work


@pytest.fixture
def real_settings(real_generate_work, addon_settings, monkeypatch):
    """scene.image_to_3d with the real tiny-model backend and the draft preset shrunk to the smoke one."""
    import dataclasses

    from image_to_3d.backend.generate import presets
    from image_to_3d.operators import backend_jobs

    monkeypatch.setattr(backend_jobs, "build_generate_work", real_generate_work)
    smoke = presets.PRESETS["smoke"]
    monkeypatch.setitem(presets.PRESETS, "draft",
                        dataclasses.replace(smoke, stage1=dataclasses.replace(smoke.stage1, steps=2)))
    addon_settings.preset = "draft"
    return addon_settings
