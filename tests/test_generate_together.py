"""Jobs generated together (backend.generate.pipeline.generate_together, ``batch --rows-per-process``) share
their stage-2 refine calls, and a job that fails or is cancelled in stage 2 drops out alone, leaving no folder;
a group of one writes what ``generate`` writes. Tiny models, smoke preset, CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.errors import BadInputError, CancelledError, describe_error
from backend.generate import pipeline
from backend.generate.pipeline import generate, generate_together
from backend.generate.request import GenerateRequest
from backend.guidance import zero123_guidance
from backend.job_control import JobControl
from tests.mesh_fixtures import one_torch_thread


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_TO_3D_CACHE", str(tmp_path / "cache"))
    with one_torch_thread():
        yield


def _cutout(path: Path, radius: float, red: int = 200) -> str:
    """A small RGBA photo of an already cut-out disc: generate needs no prompt for it."""
    yy, xx = np.mgrid[:48, :48]
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = red, 120, 40
    rgba[..., 3] = ((xx - 24) ** 2 + (yy - 24) ** 2 < (radius * 24) ** 2) * 255
    Image.fromarray(rgba).save(path)
    return str(path)


def _request(tmp_path: Path, name: str, radius: float, seed: int = 0, force: bool = False) -> GenerateRequest:
    return GenerateRequest(image_path=_cutout(tmp_path / f"{name}.png", radius, red=100 + 40 * seed), prompt=None,
                           out_dir=str(tmp_path / "out" / name), preset="smoke", steps=4, seed=seed, models="tiny",
                           device="cpu", force=force)  # 4 stage-1 steps: stage 2 is what is tested


def test_a_group_shares_stage_2_and_a_row_failing_or_cancelled_there_drops_out_alone(tmp_path, monkeypatch):
    objects_per_refine_call: list[int] = []
    batched = zero123_guidance.refine_together

    def counting_refine_together(guidances, *args, **kwargs):
        objects_per_refine_call.append(len(guidances))
        return batched(guidances, *args, **kwargs)

    monkeypatch.setattr(zero123_guidance, "refine_together", counting_refine_together)
    releases: list[int] = []  # a full gc.collect each: once per group, not per stage and row
    monkeypatch.setattr(pipeline, "release_gpu_memory", lambda: releases.append(1))

    def cancel_in_stage_2(progress):
        if progress.stage == "texture":
            cancelled.cancel()  # noticed at its next report, inside stage 2

    def fail_in_stage_2(progress):
        if progress.stage == "texture":
            raise BadInputError("row 4 broke in stage 2")

    cancelled = JobControl(on_progress=cancel_in_stage_2)
    requests = [_request(tmp_path, name, radius, seed)
                for name, radius, seed in (("a", 0.6, 0), ("b", 0.4, 1), ("c", 0.5, 2), ("d", 0.5, 3))]
    outcomes = generate_together(requests, [None, None, cancelled, JobControl(on_progress=fail_in_stage_2)])

    assert isinstance(outcomes[2], CancelledError) and describe_error(outcomes[2])[0] == 130
    assert isinstance(outcomes[3], BadInputError) and describe_error(outcomes[3])[0] == 2
    assert not (tmp_path / "out" / "c").exists() and not (tmp_path / "out" / "d").exists()
    for result in outcomes[:2]:
        assert result.glb_path.is_file()
    # The smoke preset makes its ring targets in one round: one call for the three rows still there (the fourth
    # failed asking), none per step. Each row's stage-2 seconds are the group's.
    assert objects_per_refine_call == [3]
    assert len(releases) == 1
    stage2 = [json.loads(r.job_json_path.read_text())["timings_s"]["stage2"] for r in outcomes[:2]]
    assert stage2[0] == stage2[1] == round(outcomes[0].timings["stage2"], 4) > 0
    # which process made each row, and with how many CPU threads (what bench_batch reads to tell Ray's workers apart)
    process = json.loads(outcomes[0].job_json_path.read_text())["process"]
    assert process["pid"] == os.getpid() and process["torch_threads"] == torch.get_num_threads()


def test_a_group_of_one_writes_what_generate_writes(tmp_path):
    # force: both fit stage 1 (a cached stage 1 leaves the guidance's noise generator where it started, so
    # stage 2 would draw other noise than after a fit)
    alone = generate(_request(tmp_path, "alone", 0.6, force=True))
    (together,) = generate_together([_request(tmp_path, "together", 0.6, force=True)])
    assert together.reused == alone.reused == ()
    for name in ("model_texture.png", "model.obj"):
        assert (together.out_dir / name).read_bytes() == (alone.out_dir / name).read_bytes(), name
