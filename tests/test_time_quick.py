"""scripts/time_quick.py (the H200 timing of issue 22) runs on the CPU with tiny models and reports as it goes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_quick.py"
STAGES = {"triposr_forward", "density_grid", "marching_cubes", "mesh_cpu", "uv_unwrap", "colour_bake"}


@pytest.fixture(scope="module")
def time_quick():
    spec = importlib.util.spec_from_file_location("time_quick", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["time_quick"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["time_quick"]


def test_tiny_cpu_run_times_every_stage_and_the_quick_job_and_prints_as_it_goes(time_quick, tmp_path, capsys):
    out = tmp_path / "time.json"
    code = time_quick.main(["--models", "tiny", "--device", "cpu", "--preset", "smoke", "--repeats", "1",
                            "--methods", "quick", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["models"] == "tiny" and report["preset"] == "smoke" and report["build_s"]["triposr"] >= 0
    assert report["peak_gpu_memory_mb"] == 0.0  # reported, and none on the CPU
    assert set(report["stages"]) == STAGES  # no bf16 comparison on the CPU
    assert all(stage["median_s"] > 0 for stage in report["stages"].values())
    assert report["stages"]["marching_cubes"]["faces"] >= report["stages"]["mesh_cpu"]["faces"] > 0
    job = report["jobs"]["quick"]
    assert job["preset"] == "smoke" and "warmup_wall_s" not in job  # TripoSR was built by the first step
    assert {"triposr", "mesh", "bake", "export"} <= set(job["runs"][0]["stages_s"]) and job["median_wall_s"] > 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert any("stage triposr_forward: median" in line for line in lines)
    assert lines.index(next(line for line in lines if "stage colour_bake" in line)) < \
        lines.index(next(line for line in lines if line.endswith("timed run 1")))


def test_jobs_warm_up_once_per_model_family_and_are_saved_one_by_one(time_quick, tmp_path, monkeypatch):
    """quick needs no warm-up (TripoSR is built first), quick+refine one (Zero123), dreamgaussian none after it;
    when each job starts, every earlier one is already in the JSON on disk."""
    out = tmp_path / "time.json"
    report = time_quick.Report(out, {"models": "tiny"})
    calls = []

    def fake_run_job(models, device_name, preset, method, steps, photo, folder, seed):
        on_disk = json.loads(out.read_text())["jobs"]
        calls.append((method, folder.name, sum(len(job.get("runs", [])) for job in on_disk.values())))
        return 0.5, {"wall_s": 0.5, "stages_s": {"export": 0.1}, "peak_gpu_memory_mb": 0.0}

    monkeypatch.setattr(time_quick, "run_job", fake_run_job)
    time_quick.time_jobs(report, time_quick.ModelMode.TINY, "cpu", "smoke",
                         ["quick", "quick+refine", "dreamgaussian"], 2, 3, tmp_path)
    assert calls == [("quick", "quick_0", 0), ("quick", "quick_1", 1), ("quick+refine", "quick_refine_warmup", 2),
                     ("quick+refine", "quick_refine_0", 2), ("dreamgaussian", "dreamgaussian_0", 3)]
    jobs = json.loads(out.read_text())["jobs"]
    assert len(jobs["quick"]["runs"]) == 2 and jobs["quick"]["steps"] is None
    assert jobs["quick+refine"]["warmup_wall_s"] == 0.5 and jobs["quick+refine"]["steps"] == 3
    assert "warmup_wall_s" not in jobs["dreamgaussian"] and jobs["dreamgaussian"]["median_wall_s"] == 0.5


def test_a_failed_job_is_recorded_and_the_next_method_still_runs(time_quick, tmp_path, monkeypatch):
    out = tmp_path / "time.json"
    report = time_quick.Report(out, {"models": "tiny"})
    calls = []

    def fake_run_job(models, device_name, preset, method, steps, photo, folder, seed):
        calls.append(folder.name)
        if method == "quick+refine":
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
        return 0.5, {"wall_s": 0.5, "stages_s": {}, "peak_gpu_memory_mb": 0.0}

    monkeypatch.setattr(time_quick, "run_job", fake_run_job)
    failed = time_quick.time_jobs(report, time_quick.ModelMode.TINY, "cpu", "smoke",
                                  ["quick+refine", "dreamgaussian"], 1, None, tmp_path)
    assert failed == ["quick+refine"]
    # Zero123 never got built by the failed warm-up, so dreamgaussian warms up itself
    assert calls == ["quick_refine_warmup", "dreamgaussian_warmup", "dreamgaussian_0"]
    jobs = json.loads(out.read_text())["jobs"]
    assert jobs["quick+refine"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert jobs["dreamgaussian"]["median_wall_s"] == 0.5
