"""scripts/bench_batch.py runs on the CPU with tiny models: four rows, the plain runner and two rows per process."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_batch.py"


@pytest.fixture(scope="module")
def bench_batch():
    spec = importlib.util.spec_from_file_location("bench_batch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_batch"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_batch"]


def test_settings_parse_and_best_takes_the_fastest_one_gpu_setting(bench_batch):
    best = bench_batch.Setting(1, 2, 4)
    assert bench_batch.parse_setting("1x4x1", None) == bench_batch.Setting(1, 4, 1)
    assert bench_batch.parse_setting("2xbest", best) == bench_batch.Setting(2, 2, 4)
    assert bench_batch.parse_setting("1x1x1", None).uses_ray is False
    assert bench_batch.parse_setting("2x1x4", None).uses_ray is True
    for bad in ("1x0x1", "two", "2xbest"):
        with pytest.raises(SystemExit):
            bench_batch.parse_setting(bad, None)


def test_steady_rate_starts_when_every_process_has_finished_its_first_group(bench_batch):
    # two processes of 2 rows each: first groups end at 10 s and 11 s, then 2 rows every 5 s
    finished = [10, 10, 11, 11, 15, 15, 16, 16, 21, 21]
    assert bench_batch.steady_rows_per_min(finished, 4) == pytest.approx(6 * 60 / (21 - 11))
    assert bench_batch.steady_rows_per_min(finished, 2) == pytest.approx(8 * 60 / (21 - 10))  # the old, wrong count
    assert bench_batch.steady_rows_per_min(finished[:4], 4) == 0.0
    assert bench_batch.Setting(2, 3, 4).processes == 6


def test_mid_run_rate_leaves_out_the_first_and_the_last_wave(bench_batch):
    # the example above: between the first wave's end (11 s) and the last wave but one's (15 s), two rows
    finished = [10, 10, 11, 11, 15, 15, 16, 16, 21, 21]
    assert bench_batch.mid_run_rows_per_min(finished, 4) == pytest.approx(2 * 60 / (15 - 11))
    # two processes of one row taking turns: a row every ~10.5 s until the last runs alone and ends 4 s after the
    # one before; the steady rate counts that last row, the mid-run rate does not
    turns = [10, 20, 31, 41, 52, 56]
    assert bench_batch.mid_run_rows_per_min(turns, 2) == pytest.approx(2 * 60 / (41 - 20))
    assert bench_batch.mid_run_rows_per_min(turns, 2) < bench_batch.steady_rows_per_min(turns, 2)
    assert bench_batch.mid_run_rows_per_min(finished[:8], 4) == 0.0  # no row between the two waves


def _job(out, index, pid, gpus, stage1, own):
    folder = out / f"{index:04d}-coffee"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({
        "process": {"pid": pid, "cuda_visible_devices": gpus, "torch_threads": 1},
        "timings_s": {"mask": own / 2, "stage1": stage1, "mesh": own / 2, "stage2": 4.0}}))


def test_groups_are_told_apart_by_process_and_end_and_give_cycles_and_offsets(bench_batch, tmp_path):
    # two workers on GPU 0 taking turns (ends 30/40, 60/70: offset 10 s of a 30 s cycle), one on GPU 1 alone;
    # two rows a group; a row with no "done" line (failed) is left out
    ends = {}
    for pid, gpus, group_ends in ((11, "0", (30.0, 60.0)), (12, "0", (40.0, 70.0)), (13, "1", (35.0, 66.0))):
        for g, end in enumerate(group_ends):
            for r in range(2):
                index = len(ends)
                _job(tmp_path, index, pid, gpus, stage1=12.0 + g, own=3.0)
                ends[index] = end + 0.2 * r
    _job(tmp_path, 99, 13, "1", stage1=1.0, own=1.0)
    groups = bench_batch.group_records(tmp_path, ends)
    assert [(g["pid"], g["rows"], g["end_s"]) for g in groups] == [
        (11, 2, 30.2), (13, 2, 35.2), (12, 2, 40.2), (11, 2, 60.2), (13, 2, 66.2), (12, 2, 70.2)]
    assert groups[0]["stage1_s"] == 12.0 and groups[0]["own_s"] == 6.0 and groups[0]["stage2_s"] == 4.0
    medians = bench_batch.group_medians(groups)
    assert medians["stage1_s"] == 13.0  # the later groups only
    assert medians["cycle_s"] == 30.0
    assert medians["mate_offset_s"] == 10.0  # only GPU 0's workers have a mate
    assert medians["torch_threads"] == [1]
    assert bench_batch.group_medians(groups[:3]) == {}  # nobody's second group yet


@pytest.mark.slow
def test_four_tiny_rows_on_the_cpu_give_rates_and_first_row_times(bench_batch, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_TO_3D_MODELS", "tiny")
    out = tmp_path / "bench.json"
    code = bench_batch.main(["--models", "tiny", "--device", "cpu", "--preset", "smoke", "--rows", "4",
                             "--settings", "1x1x2", "--runs", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    run = report["runs"][0]
    assert code == 0, run
    assert run["rows"] == 4 and run["failed_rows"] == 0 and run["exit_code"] == 0
    assert 0 < run["first_row_s"] <= run["seconds"] and run["rows_per_min"] > 0
    assert report["medians"]["1x1x2"]["rows_per_min"] == pytest.approx(run["rows_per_min"], abs=0.01)
    assert run["mid_run_rows_per_min"] == 0.0  # two groups of two: the first wave and the last, none between
    # the two groups of the one process, read back from the rows' job.json files
    assert [g["rows"] for g in run["groups"]] == [2, 2] and len({g["pid"] for g in run["groups"]}) == 1
    assert run["group_medians"]["cycle_s"] > 0 and run["group_medians"]["mate_offset_s"] is None
